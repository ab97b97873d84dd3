"""Campaigns: orders and WeChat Pay, group buys and bestie cards (闺蜜卡), referrals and settlement."""
