"""Referrals (老带新): programs, binding, rewards, and finance settlement batches."""
