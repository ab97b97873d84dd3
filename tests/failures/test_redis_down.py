"""Redis is cut off (a TCP proxy drops every connection) while customers buy and WeChat confirms payments:
the requests commit, the jobs wait in the outbox, and once Redis is back they run, once."""

from __future__ import annotations

import asyncio
import os
from urllib.parse import urlparse

from arq.connections import ArqRedis

from campaigns.groupbuy.models import CampaignEntry, CampaignKind, EntryStatus
from orders.models import NotificationOutcome, Order, OrderStatus, PaymentEvent
from kernel.outbox.models import OutboxMessage
from kernel.outbox.service import run_relay
from points_mall.models import Consumption, Voucher
from tests.orders.factories import QUEUE, run_jobs
from tests.campaigns.groupbuy_factories import make_campaign
from tests.factories import customer_headers, make_customer
from tests.failures.support import RedisCut, wait_for

NOTIFY = "/payments/wechat/notify"


async def paid_jobs_of(order_id: int) -> list[OutboxMessage]:
    return [m for m in await OutboxMessage.filter(job_name="orders.order_paid") if m.args == [order_id]]


async def test_requests_commit_while_redis_is_cut_off_and_jobs_run_once_when_it_returns(
    app, client, redis, api_pays_through_fake, worker_processes
):
    wechat = api_pays_through_fake
    upstream = urlparse(os.environ["REDIS_URL"])
    proxy = await RedisCut(upstream.hostname or "127.0.0.1", upstream.port or 6379).start()
    redis_url = f"{proxy.url_base}{upstream.path}"
    # The API, a worker process and a second relay (as every worker runs one) reach Redis through the proxy.
    through_proxy = ArqRedis.from_url(redis_url, socket_connect_timeout=0.5, socket_timeout=1)
    real_redis, app.state.redis = app.state.redis, through_proxy
    stop_relay = asyncio.Event()
    relay = asyncio.create_task(
        run_relay(through_proxy, stop_relay, poll_seconds=0.05, batch_size=200, queue_name=QUEUE))
    try:
        campaign, sku = await make_campaign(CampaignKind.category, stock=5, group_price_fen=19_900)
        customer = await make_customer()
        headers = customer_headers(customer)
        first = await worker_processes(REDIS_URL=redis_url)
        await wait_for(lambda: _logged(first, "Starting worker"), what="the worker to start")

        proxy.partition()
        # arq's poll loop does not survive a lost connection: the process exits and its supervisor
        # (systemd, Kubernetes) starts it again; this test plays the supervisor below.
        await wait_for(lambda: _exited(first), what="the worker to exit without Redis")

        ready = await client.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["detail"]["checks"]["redis"].startswith("error")
        bought = await client.post(f"/app/campaigns/{campaign.id}/purchases", json={"sku_id": sku.id},
                                   headers=headers)
        assert bought.status_code == 201, bought.text
        order = await Order.get(id=bought.json()["order_id"])
        assert (await client.post(f"/app/orders/{order.id}/pay", headers=headers)).status_code == 200
        headers_, body = wechat.notification("TRANSACTION.SUCCESS", wechat.customer_pays(order.out_trade_no))
        for _ in range(2):  # WeChat delivers it, then delivers it again
            answer = await client.post(NOTIFY, content=body, headers=headers_)
            assert answer.status_code == 204, answer.text
        assert (await Order.get(id=order.id)).status == OrderStatus.paid  # committed without Redis

        # The relay keeps trying (each pass stops at the oldest row, to keep the order) and keeps the jobs.
        async def relay_failing() -> bool:
            oldest = await OutboxMessage.filter(delivered_at=None).order_by("id").first()
            [job] = await paid_jobs_of(order.id)
            kept = oldest is not None and oldest.attempts >= 2 and bool(oldest.last_error)
            return kept and job.delivered_at is None

        await wait_for(relay_failing, what="the relay to fail against the cut-off Redis")

        proxy.heal()
        second = await worker_processes(REDIS_URL=redis_url)

        async def fulfilled() -> bool:
            return (await Order.get(id=order.id)).status == OrderStatus.fulfilled

        await wait_for(fulfilled, timeout=20, what="the restarted worker to run the paid-order job")
        await second.stop()
    finally:
        stop_relay.set()
        await relay
        app.state.redis = real_redis
        await through_proxy.aclose()
        await proxy.stop()

    assert (await client.get("/health/ready")).status_code == 200
    totals = await run_jobs(redis)  # another worker pass (and relay) finds nothing left to apply
    assert totals.jobs_failed == 0

    [job] = await paid_jobs_of(order.id)
    assert job.delivered_at is not None
    assert (await CampaignEntry.get(order_id=order.id)).status == EntryStatus.fulfilled
    assert await Voucher.filter(source_type="group_order", source_id=str(order.id)).count() == 1
    consumption = await Consumption.filter(external_ref=f"order:{order.id}")
    assert [c.amount_fen for c in consumption] == [19_900]
    outcomes = await PaymentEvent.filter(out_trade_no=order.out_trade_no).order_by("id").values_list(
        "outcome", flat=True)
    assert outcomes == [NotificationOutcome.applied, NotificationOutcome.duplicate]


async def _logged(worker, text: str) -> bool:
    return text in worker.log_path.read_text(errors="replace") if worker.log_path.exists() else False


async def _exited(worker) -> bool:
    return worker.proc.returncode is not None
