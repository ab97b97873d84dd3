"""Migrations of the referrals app."""
