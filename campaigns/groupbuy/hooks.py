"""Registers the group-buy order line kind ("campaign_entry") with the orders room."""

from campaigns.groupbuy import groups
from campaigns.orders.hooks import LineKind, register_line_kind

register_line_kind(
    LineKind(
        groups.LINE_KIND,
        release=groups.release_entry,
        on_payment_applied=groups.entry_payment_applied,
        on_paid=groups.entry_paid,
        on_refund_requested=groups.entry_refund_requested,
        on_refunded=groups.entry_refunded,
    )
)
