"""Line kinds: what each kind of order line does when its order is paid, closed unpaid, or refunded.

The orders room knows nothing about seats or stock. A room that sells through orders declares a
`LineKind` for the lines it creates (group buys: "campaign_entry") and the composition root
(rooms/__init__.py) registers it at start-up. A line of a kind nobody registered is refused (it
would otherwise count as delivered on payment, fail open). The orders service
calls the hooks inside the transaction that changes the order, so the hold and the order change
together or not at all. Hooks take the caller's connection and never commit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tortoise.backends.base.client import BaseDBAsyncClient

    from orders.models import Order, OrderLine, Refund

ReleaseHook = Callable[["BaseDBAsyncClient", "Order", "OrderLine"], Awaitable[None]]
# Returns True when the line is fulfilled now (the order may become `fulfilled`), False when its
# room fulfils it later (a bestie-card seat waits for the group to succeed).
PaidHook = Callable[["BaseDBAsyncClient", "Order", "OrderLine"], Awaitable[bool]]
RefundHook = Callable[["BaseDBAsyncClient", "Order", "OrderLine", "Refund"], Awaitable[None]]


async def _nothing_to_release(conn, order, line) -> None:
    return None


async def _fulfilled_at_once(conn, order, line) -> bool:
    return True


async def _nothing_on_refund(conn, order, line, refund) -> None:
    return None


async def _nothing_at_payment(conn, order, line) -> None:
    return None


@dataclass(frozen=True)
class LineKind:
    name: str
    release: ReleaseHook = _nothing_to_release
    # Called in the transaction that marks the order paid, so what a customer sees right after the payment
    # is already true (a leader's group is joinable); keep it to quick local updates. `on_paid` does the
    # rest in the paid-order job.
    on_payment_applied: ReleaseHook = _nothing_at_payment
    on_paid: PaidHook = _fulfilled_at_once
    # Called when a refund of the order is requested (before money moves) and when it is confirmed.
    on_refund_requested: RefundHook = _nothing_on_refund
    on_refunded: RefundHook = _nothing_on_refund


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
