"""The points room's public services (the cross-room contract), re-exported from their modules.

Other rooms import from here: `earn_points`, `spend_points`, `reverse_points`, `record_consumption`,
`refund_consumption`, `record_qualified_referral`, `customer_has_consumption`; vouchers live in
`points_mall.vouchers` (`issue_vouchers`, `cancel_vouchers`).
"""

from points_mall.consumption import customer_has_consumption, record_consumption, refund_consumption
from points_mall.errors import InsufficientPoints
from points_mall.ledger import earn_points, ensure_account, lock_account, reverse_points, spend_points
from points_mall.tiers import evaluate_tier, record_qualified_referral
from points_mall.vouchers import cancel_vouchers, issue_vouchers

__all__ = [
    "InsufficientPoints",
    "cancel_vouchers",
    "customer_has_consumption",
    "earn_points",
    "ensure_account",
    "evaluate_tier",
    "issue_vouchers",
    "lock_account",
    "record_consumption",
    "record_qualified_referral",
    "refund_consumption",
    "reverse_points",
    "spend_points",
]
