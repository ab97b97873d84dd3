"""MariaDB kills the connection of a request in the middle of its write transaction (a failover, a DBA's
KILL, a proxy restart): the customer gets a clear 503, nothing is half-applied, the pool recovers and
the same request, retried with its Idempotency-Key, is applied once."""

from __future__ import annotations

import asyncio
import secrets

from points_mall.models import MallItem, MallRedemption, PointsLedgerEntry, Voucher
from tests.factories import customer_headers
from tests.failures.support import RowLock, blocked_statements, connection_gone, kill_connection, wait_for
from tests.points_mall.factories import assert_ledger_consistent, funded_customer, make_item

REDEEM = "/app/mall/redemptions"


async def test_connection_killed_inside_a_redemption_transaction(client):
    customer = await funded_customer(1_000)
    item = await make_item(points_price=300, stock_total=5)
    headers = {**customer_headers(customer), "Idempotency-Key": "redeem-" + secrets.token_hex(6)}
    ledger_before = await PointsLedgerEntry.filter(customer_id=customer.id).count()

    # The stock update comes last in the redemption: by then the redemption row, the points spent and
    # the voucher are written. Holding the item row makes the request wait right there.
    async with RowLock("mall_item", "id = %s", item.id) as lock:
        request = asyncio.create_task(client.post(REDEEM, json={"item_id": item.id}, headers=headers))
        [(victim, _)] = await wait_for(
            # The last statement of the batch the redemption's writes go in (kernel.batch).
            lambda: blocked_statements("UPDATE mall_item SET stock_reserved%", exclude=lock.thread_id),
            what="the redemption to wait on the item row")
        await kill_connection(victim)
        response = await request
    await wait_for(lambda: connection_gone(victim), what="the killed connection to go")

    assert response.status_code == 503, response.text
    assert response.json()["code"] == "database_unavailable" and response.headers["retry-after"]
    # Nothing of the transaction survived.
    assert await assert_ledger_consistent(customer.id) == 1_000
    assert await PointsLedgerEntry.filter(customer_id=customer.id).count() == ledger_before
    assert not await MallRedemption.filter(customer_id=customer.id).exists()
    assert not await Voucher.filter(customer_id=customer.id).exists()
    assert (await MallItem.get(id=item.id)).stock_reserved == 0

    # The client retries with the same key: the pool hands out a live connection and it is applied once.
    retried = await client.post(REDEEM, json={"item_id": item.id}, headers=headers)
    assert retried.status_code == 201, retried.text
    again = await client.post(REDEEM, json={"item_id": item.id}, headers=headers)
    assert again.status_code == 200 and again.json()["id"] == retried.json()["id"]
    assert await assert_ledger_consistent(customer.id) == 700
    assert await MallRedemption.filter(customer_id=customer.id).count() == 1
    assert await Voucher.filter(customer_id=customer.id).count() == 1
    assert (await MallItem.get(id=item.id)).stock_reserved == 1
