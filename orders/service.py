"""The orders room's contract for callers: create, pay (apply a confirmed payment once), fulfil, close unpaid,
refund. The rules live by stage in `placing.py`, `fulfilment.py` and `refunds.py`; other rooms, the jobs and
the controllers call them through this module.
"""

from orders.fulfilment import (
    apply_payment,
    close_unpaid,
    follow,
    handle_paid_order,
    mark_fulfilled,
    mark_paid_without_gateway,
    record_event,
)
from orders.placing import (
    MAX_ORDER_FEN,
    LineSpec,
    add_order,
    create_order,
    customer_orders,
    get_customer_order,
    get_customer_order_by_trade_no,
    get_order,
    lines_of,
    lock_order,
    new_out_trade_no,
    payment_window_end,
    record_prepay,
)
from orders.refunds import (
    REFUNDABLE,
    apply_refund_result,
    note_refund_attempt,
    out_refund_no_for,
    out_refund_no_for_key,
    refund_ended_unpaid,
    request_refund,
    staff_refund,
)

__all__ = [
    "MAX_ORDER_FEN", "REFUNDABLE", "LineSpec", "add_order", "apply_payment", "apply_refund_result", "close_unpaid",
    "create_order", "customer_orders", "follow", "get_customer_order", "get_customer_order_by_trade_no",
    "get_order", "handle_paid_order", "lines_of", "lock_order", "mark_fulfilled", "mark_paid_without_gateway",
    "new_out_trade_no", "note_refund_attempt", "out_refund_no_for", "out_refund_no_for_key",
    "payment_window_end", "record_event", "record_prepay", "refund_ended_unpaid", "request_refund", "staff_refund",
]
