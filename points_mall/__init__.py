"""Points (积分): the ledger, daily check-in, tiers, expiry; the points mall, vouchers and redemption (核销)."""
