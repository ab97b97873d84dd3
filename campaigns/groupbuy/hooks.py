"""The group-buy order line kind ("campaign_entry"): what a campaign entry does when its order moves.

Registered with the orders room by the composition root (rooms/__init__.py).
"""

from campaigns.groupbuy import groups
from orders.hooks import LineKind

CAMPAIGN_ENTRY = LineKind(
    groups.LINE_KIND,
    release=groups.release_entry,
    on_payment_applied=groups.entry_payment_applied,
    on_paid=groups.entry_paid,
    on_refund_requested=groups.entry_refund_requested,
    on_refunded=groups.entry_refunded,
    on_refund_ended_unpaid=groups.entry_refund_ended_unpaid,
)
