"""Line kinds: what each kind of order line does when its order is paid, closed unpaid, or refunded.

The orders room knows nothing about seats or stock. A room that sells through orders registers a
`LineKind` for the lines it creates (e.g. group buys register "campaign_entry"); the orders service
calls the hooks inside the transaction that changes the order, so the hold and the order change
together or not at all. Hooks take the caller's connection and never commit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kernel.modules import import_present

if TYPE_CHECKING:
    from tortoise.backends.base.client import BaseDBAsyncClient

    from campaigns.orders.models import Order, OrderLine, Refund

# Modules that register line kinds when imported (rooms register by convention, like tasks.py).
LINE_KIND_MODULES = ["campaigns.groupbuy.hooks"]

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


_KINDS: dict[str, LineKind] = {}
_loaded = False


def register_line_kind(kind: LineKind) -> LineKind:
    _KINDS[kind.name] = kind
    return kind


def line_kind(name: str) -> LineKind:
    global _loaded
    if not _loaded:
        import_present(LINE_KIND_MODULES)
        _loaded = True
    # A kind nobody registered holds nothing and is fulfilled on payment.
    return _KINDS.get(name) or LineKind(name)
