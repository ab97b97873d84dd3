"""Line kinds: what each kind of order line does when its order is paid, closed unpaid, or refunded.

The orders room knows nothing about seats or stock. A room that sells through orders declares a
`LineKind` for the lines it creates (group buys: "campaign_entry") and the composition root
(rooms/__init__.py) registers it at start-up. A line of a kind nobody registered is refused (it
would otherwise count as delivered on payment, fail open). The orders service
calls the hooks inside the transaction that changes the order, so the hold and the order change
together or not at all. Hooks take the caller's connection and never commit.

One owner per state: the orders room alone moves orders (paid, fulfilled, refunding...), the selling
room alone moves what it holds (seats, entries, stock). A hook never calls back into the orders room:
when its room has delivered orders or needs money sent back (a group succeeded, a group failed, a
payment landed after its group closed) it answers with a `LineOutcome`, which the orders room follows
once the hook has returned (`orders.service.follow`). So no hook ever runs inside another.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tortoise.backends.base.client import BaseDBAsyncClient

    from orders.models import Order, OrderLine, Refund


@dataclass(frozen=True)
class RefundAsk:
    """Send back everything left on an order (what was paid less what is already reserved), for `reason`."""

    order_id: int
    reason: str


@dataclass(frozen=True)
class LineOutcome:
    """A selling room's answer to a hook: the orders it has delivered and the orders whose money must go back.

    In `on_paid`, the order asked about is fulfilled when its id is in `delivered` (and every other line
    of it says so too); a bestie-card seat waits for its group and answers with nothing until then.
    """

    delivered: tuple[int, ...] = ()
    refunds: tuple[RefundAsk, ...] = ()

    def __add__(self, other: LineOutcome) -> LineOutcome:
        return LineOutcome(self.delivered + other.delivered, self.refunds + other.refunds)


NOTHING = LineOutcome()


def delivered(order: "Order") -> LineOutcome:
    """The answer of a line that is fulfilled the moment its order is paid (goods, cards, category purchases)."""
    return LineOutcome(delivered=(order.id,))


ReleaseHook = Callable[["BaseDBAsyncClient", "Order", "OrderLine"], Awaitable[LineOutcome]]
PaymentAppliedHook = Callable[["BaseDBAsyncClient", "Order", "OrderLine"], Awaitable[None]]
PaidHook = Callable[["BaseDBAsyncClient", "Order", "OrderLine"], Awaitable[LineOutcome]]
RefundHook = Callable[["BaseDBAsyncClient", "Order", "OrderLine", "Refund"], Awaitable[None]]
EndedUnpaidHook = Callable[["BaseDBAsyncClient", "Order", "OrderLine", "Refund"], Awaitable["LineOutcome | None"]]


async def _nothing_to_release(conn, order, line) -> LineOutcome:
    return NOTHING


async def _fulfilled_at_once(conn, order, line) -> LineOutcome:
    return delivered(order)


async def _nothing_on_refund(conn, order, line, refund) -> None:
    return None


async def _nothing_at_payment(conn, order, line) -> None:
    return None


@dataclass(frozen=True)
class LineKind:
    name: str
    # The order closed unpaid (or was refunded in full before its paid-order job): give back what it holds.
    release: ReleaseHook = _nothing_to_release
    # Called in the transaction that marks the order paid, so what a customer sees right after the payment
    # is already true (a leader's group is joinable); keep it to quick local updates. `on_paid` does the
    # rest in the paid-order job.
    on_payment_applied: PaymentAppliedHook = _nothing_at_payment
    on_paid: PaidHook = _fulfilled_at_once
    # Called when a refund of the order is requested (before money moves) and when it is confirmed.
    on_refund_requested: RefundHook = _nothing_on_refund
    on_refunded: RefundHook = _nothing_on_refund
    # Called once when the gateway ends a refund without paying it (closed, abnormal, refused): give back what
    # `on_refund_requested` took, since the money never left. A line that cannot take it back (a seat in a group
    # that settled since) answers with a `RefundAsk`: the orders room then asks that refund again, once, when its
    # end is final (not ABNORMAL, which finance may still pay by hand).
    on_refund_ended_unpaid: EndedUnpaidHook = _nothing_on_refund
    # Called once when an ABNORMAL refund is paid after all (finance paid it out by hand in the merchant
    # platform and WeChat Pay says SUCCESS): take again what `on_refund_ended_unpaid` gave back.
    on_refund_paid_after_all: RefundHook = _nothing_on_refund


class UnknownLineKind(RuntimeError):
    """An order line whose kind no room registered: nothing is sold, released or fulfilled for it.

    A wiring fault, not a customer's mistake: the order is not created, a job touching it fails loudly.
    """


_KINDS: dict[str, LineKind] = {}


def register_line_kinds(kinds: list[LineKind]) -> None:
    for kind in kinds:
        registered = _KINDS.setdefault(kind.name, kind)
        if registered is not kind:
            raise RuntimeError(f"order line kind {kind.name!r} is registered twice")


def line_kind(name: str) -> LineKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise UnknownLineKind(f"order line kind {name!r} is not registered (rooms/__init__.py)") from None
