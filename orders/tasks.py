"""arq jobs of the orders room: close unpaid orders, run paid-order side effects, push refunds, reconcile."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog
from arq import Retry, cron, func

from orders import payments, service
from orders.gateway import GatewayUnavailable, gateway_from
from orders.models import Order, OrderStatus, Refund, RefundStatus
from kernel import clock
from kernel.jobs import run_job_transaction
from kernel.settings import get_settings

log = structlog.get_logger(__name__)

# An order still pending this long after its window is reconciled by the cron (the deferred job
# should have closed it; the notification may never have come).
RECONCILE_GRACE = timedelta(seconds=60)
# A refund not confirmed after this long is pushed again by the cron, whatever happened to its job.
REFUND_STALE_AFTER = timedelta(minutes=10)
SWEEP_BATCH = 100


def retry_delay(ctx: dict[str, Any]) -> float:
    pay = get_settings().pay
    base = float(ctx.get("pay_retry_base_seconds", pay.retry_base_seconds))
    return min(base * 2 ** max(0, ctx.get("job_try", 1) - 1), pay.retry_max_seconds)


async def close_unpaid_order(ctx: dict[str, Any], order_id: int) -> str:
    """At the end of the payment window: confirm with the gateway or close, releasing holds once."""
    try:
        return await payments.close_or_confirm(gateway_from(ctx), order_id)
    except (payments.TryLater, GatewayUnavailable) as exc:
        log.info("orders.close_retry", order_id=order_id, reason=str(exc))
        raise Retry(defer=retry_delay(ctx)) from exc


async def order_paid(ctx: dict[str, Any], order_id: int) -> bool:
    """The side effects of a payment (fulfilment, consumption), once per order."""
    # A deadlock that outlives the quick retries goes back to arq: nothing sweeps paid orders whose
    # side effects never ran, so the job must not fail for good.
    return await run_job_transaction(ctx, service.handle_paid_order, order_id, retry_defer=retry_delay(ctx))


async def send_refund(ctx: dict[str, Any], refund_id: int) -> str:
    """Push a refund to the gateway and keep asking until it is confirmed (or refused for good)."""
    try:
        status = await payments.push_refund(gateway_from(ctx), refund_id)
    except GatewayUnavailable as exc:
        await run_job_transaction(ctx, service.note_refund_attempt, refund_id, f"unavailable: {exc.detail}")
        raise Retry(defer=retry_delay(ctx)) from exc
    if status in (RefundStatus.pending, RefundStatus.processing):
        raise Retry(defer=retry_delay(ctx))
    return status.value


async def reconcile(ctx: dict[str, Any]) -> dict[str, int]:
    """Safety net: settle orders still pending after their window, and push refunds left unconfirmed."""
    gateway = gateway_from(ctx)
    now = clock.now()
    counts = {"orders": 0, "refunds": 0}
    overdue = await Order.filter(
        status=OrderStatus.pending_payment, expires_at__lt=now - RECONCILE_GRACE
    ).order_by("expires_at").limit(SWEEP_BATCH).values_list("id", flat=True)
    for order_id in overdue:
        try:
            await payments.close_or_confirm(gateway, order_id)
            counts["orders"] += 1
        except (payments.TryLater, GatewayUnavailable) as exc:
            log.info("orders.reconcile_deferred", order_id=order_id, reason=str(exc))
    stale = await Refund.filter(
        status__in=(RefundStatus.pending, RefundStatus.processing), updated_at__lt=now - REFUND_STALE_AFTER
    ).order_by("id").limit(SWEEP_BATCH).values_list("id", flat=True)
    for refund_id in stale:
        try:
            await payments.push_refund(gateway, refund_id)
            counts["refunds"] += 1
        except GatewayUnavailable as exc:
            await run_job_transaction(ctx, service.note_refund_attempt, refund_id, f"unavailable: {exc.detail}")
    if any(counts.values()):
        log.info("orders.reconciled", **counts)
    return counts


FUNCTIONS = [
    func(close_unpaid_order, name="orders.close_unpaid", timeout=60, max_tries=12),
    func(order_paid, name="orders.order_paid", timeout=60, max_tries=5),
    func(send_refund, name="orders.send_refund", timeout=60, max_tries=30),
    func(reconcile, name="orders.reconcile", timeout=280, max_tries=1),
]
CRON_JOBS = [cron(reconcile, name="cron:orders.reconcile", second={7}, run_at_startup=False, timeout=280,
                  max_tries=1)]
