"""Money products end to end through the API: catalogue, quote steps and rounding, purchase with each source,
top-up, package cards redeemed and refunded, refunds unwinding each source, coupons coming back."""

from __future__ import annotations

import uuid

import pytest

from kernel.db import transaction
from orders import stored_value
from orders.models import Order, OrderStatus, Refund
from orders.product_models import Coupon, CouponStatus, PackageCard, PackageSession
from points_mall.ledger import spendable
from points_mall.models import MemberTier, PointsAccount
from kernel import clock
from tests.factories import customer_headers, make_customer, make_staff, staff_headers
from tests.orders.factories import run_jobs
from tests.orders.shop_factories import (
    assert_ledgers_hold,
    give_coupon,
    give_points,
    give_stored_value,
    make_product,
    make_template,
)


async def buy(client, customer, body, status=201):
    response = await client.post("/app/orders", json=body, headers=customer_headers(customer))
    assert response.status_code == status, response.text
    return response.json()


async def pay(client, customer, order):
    paid = await client.post(f"/sandbox/payments/{order['out_trade_no']}/succeed", headers=customer_headers(customer))
    assert paid.status_code == 200, paid.text
    return paid.json()


async def refund(client, order_id, amount_fen=None):
    finance = await make_staff("finance")
    body = {"reason": "customer_request"} | ({"amount_fen": amount_fen} if amount_fen else {})
    response = await client.post(f"/admin/orders/{order_id}/refunds", json=body,
                                 headers=staff_headers(finance) | {"Idempotency-Key": uuid.uuid4().hex})
    assert response.status_code == 201, response.text
    return response.json()


async def redeem_every_session(client, card) -> None:
    from tests.booking.factories import make_branch

    branch, desk = await make_branch(), await make_staff("front_desk")
    for _ in range(card.sessions_total):
        redeemed = await client.post("/admin/package-cards/redeem", json={"code": card.code, "branch_id": branch.id},
                                     headers=staff_headers(desk))
        assert redeemed.status_code == 200, redeemed.text


async def test_staff_build_the_catalogue_and_customers_see_it(client):
    campaign = await make_staff("campaign")
    created = await client.post("/admin/shop/products", headers=staff_headers(campaign), json={
        "kind": "course", "name": "水光针 3次卡", "price_fen": 298000, "category": "skin",
        "items": [{"title": "水光针", "sessions": 3}], "validity_days": 365})
    assert created.status_code == 201, created.text
    bad = await client.post("/admin/shop/products", headers=staff_headers(campaign), json={
        "kind": "course", "name": "x", "price_fen": 100, "items": []})
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "items"
    seen = await client.get("/app/shop/products?kind=course&limit=200", headers=customer_headers(await make_customer()))
    assert created.json()["id"] in [p["id"] for p in seen.json()["items"]]
    front_desk = await make_staff("front_desk")
    refused = await client.post("/admin/shop/products", headers=staff_headers(front_desk), json={
        "kind": "product", "name": "x", "price_fen": 100})
    assert refused.status_code == 403


async def test_quote_shows_each_step_in_order_and_rounds_down(client):
    customer = await make_customer()
    tier = await MemberTier.create(name=f"gold-{uuid.uuid4().hex[:6]}", level=900 + customer.id % 90000,
                                   min_spend_fen=1, created_at=clock.now(), updated_at=clock.now())
    async with transaction() as conn:
        from points_mall.ledger import ensure_account

        await ensure_account(conn, customer.id)
    await PointsAccount.filter(customer_id=customer.id).update(tier_id=tier.id)
    product = await make_product("course", price_fen=10001, member_prices=[{"tier_id": tier.id, "price_fen": 9999}])
    template = await make_template("percent_off", discount_bp=1500)  # 15% of 9999 = 1499.85 → 1499
    coupon = await give_coupon(customer.id, template.id)
    await give_points(customer.id, 1001)
    await give_stored_value(customer.id, 3000, 500)
    body = {"items": [{"product_id": product.id}], "coupon_id": coupon.id, "use_points": True,
            "use_stored_value": True}
    q = (await client.post("/app/orders/quote", json=body, headers=customer_headers(customer))).json()
    assert [s["step"] for s in q["steps"]] == ["list_price", "member_price", "coupon", "points", "stored_value",
                                               "wechat_pay"]
    assert q["list_fen"] == 10001 and q["member_discount_fen"] == 2 and q["coupon_fen"] == 1499
    # Points: at most 50% of 8500 = 4250 fen; 1001 points at 100 points/yuan are 1001 fen.
    assert (q["points_used"], q["points_cash_fen"]) == (1001, 1001)
    assert q["stored_value_fen"] == 3500 and q["wechat_fen"] == 9999 - 1499 - 1001 - 3500
    assert q["steps"][-1]["to_pay_fen"] == 0 and q["rounding"]
    # A switched-off tier gives no member price.
    await MemberTier.filter(id=tier.id).update(is_active=False)
    q2 = (await client.post("/app/orders/quote", json=body, headers=customer_headers(customer))).json()
    assert q2["member_discount_fen"] == 0 and q2["coupon_fen"] == 1500  # 15% of 10001 = 1500.15 → 1500


async def test_quote_refuses_a_total_the_purchase_would_refuse(client):
    customer = await make_customer()
    product = await make_product("service", price_fen=2**31 - 1)
    body = {"items": [{"product_id": product.id, "quantity": 2}]}
    quoted = await client.post("/app/orders/quote", json=body, headers=customer_headers(customer))
    bought = await client.post("/app/orders", json=body, headers=customer_headers(customer))
    assert quoted.status_code == bought.status_code == 422, (quoted.text, bought.text)
    assert quoted.json()["detail"]["field"] == bought.json()["detail"]["field"] == "quantity"
    assert await Order.filter(customer_id=customer.id).count() == 0


async def test_purchase_with_every_source_then_full_refund_returns_each_once(client, redis):
    customer = await make_customer()
    product = await make_product("package", price_fen=20000)
    coupon = await give_coupon(customer.id, (await make_template("cash_off", value_fen=2000, threshold_fen=15000)).id)
    await give_points(customer.id, 5000)
    await give_stored_value(customer.id, 4000, 1000)
    order = await buy(client, customer, {"items": [{"product_id": product.id}], "coupon_id": coupon.id,
                                         "use_points": True, "max_points": 3000, "use_stored_value": True})
    assert order["total_fen"] == order["coupon_fen"] + order["points_cash_fen"] + order["stored_value_fen"] + \
        order["wechat_fen"] == 20000
    assert (order["coupon_fen"], order["points_used"], order["stored_value_fen"], order["wechat_fen"]) == \
        (2000, 3000, 5000, 10000)
    assert await stored_value.balance_of(customer.id) == (0, 0)
    assert (await Coupon.get(id=coupon.id)).status == CouponStatus.locked
    await pay(client, customer, order)
    await run_jobs(redis)
    assert (await Coupon.get(id=coupon.id)).status == CouponStatus.used
    card = await PackageCard.get(order_id=order["id"])
    assert card.paid_fen == 18000 and card.sessions_total == 3
    # Every session used, so a partial order refund is finance's to give (while a session is unused, its money
    # leaves through the card's refund: tests/orders/test_package_card_refunds.py).
    await redeem_every_session(client, card)
    # Partial refund inside the WeChat part: nothing else moves.
    await refund(client, order["id"], 6000)
    await run_jobs(redis)
    assert await stored_value.balance_of(customer.id) == (0, 0)
    # The rest: 4000 WeChat, 5000 stored value (principal 4000, bonus 1000 back), 3000 points; the coupon comes back.
    await refund(client, order["id"])
    await run_jobs(redis)
    final = await Order.get(id=order["id"])
    assert final.status == OrderStatus.refunded and final.refunded_fen == 18000
    assert await stored_value.balance_of(customer.id) == (4000, 1000)
    async with transaction() as conn:
        assert await spendable(conn, customer.id) == 5000
    assert (await Coupon.get(id=coupon.id)).status == CouponStatus.available
    refunds = await Refund.filter(order_id=order["id"]).order_by("id")
    assert [r.wechat_fen if r.wechat_fen is not None else r.amount_fen for r in refunds] == [6000, 4000]
    await assert_ledgers_hold([customer.id])


async def test_closed_unpaid_order_gives_coupon_points_and_stored_value_back(client, redis):
    from orders import service

    customer = await make_customer()
    product = await make_product("product", price_fen=5000)
    coupon = await give_coupon(customer.id, (await make_template("cash_off", value_fen=500, threshold_fen=0)).id)
    await give_points(customer.id, 1000)
    await give_stored_value(customer.id, 1000)
    order = await buy(client, customer, {"items": [{"product_id": product.id}], "coupon_id": coupon.id,
                                         "use_points": True, "use_stored_value": True})
    assert order["wechat_fen"] == 5000 - 500 - 1000 - 1000
    async with transaction() as conn:
        assert await service.close_unpaid(conn, order["id"], "expired")
        assert not await service.close_unpaid(conn, order["id"], "expired")
    assert (await Coupon.get(id=coupon.id)).status == CouponStatus.available
    assert await stored_value.balance_of(customer.id) == (1000, 0)
    async with transaction() as conn:
        assert await spendable(conn, customer.id) == 1000
    await assert_ledgers_hold([customer.id])


async def test_order_covered_by_stored_value_is_paid_at_once(client, redis):
    customer = await make_customer()
    product = await make_product("product", price_fen=3000)
    await give_stored_value(customer.id, 2000, 2000)
    order = await buy(client, customer, {"items": [{"product_id": product.id}], "use_stored_value": True})
    assert order["status"] == "paid" and order["wechat_fen"] == 0
    # Principal first, then bonus.
    assert await stored_value.balance_of(customer.id) == (0, 1000)
    await run_jobs(redis)
    assert (await Order.get(id=order["id"])).status == OrderStatus.fulfilled
    await refund(client, order["id"], 1500)  # no WeChat part: back to stored value at once, in proportion
    assert await stored_value.balance_of(customer.id) == (1000, 1500)
    await assert_ledgers_hold([customer.id])


async def test_topup_credits_principal_and_bonus_and_refund_returns_only_unused_principal(client, redis):
    customer = await make_customer()
    plan = await make_product("topup", price_fen=500000, topup_bonus_fen=500000, name="充5000得10000")
    order = await buy(client, customer, {"items": [{"product_id": plan.id}]})
    refused = await buy(client, customer, {"items": [{"product_id": plan.id}], "use_points": True}, status=422)
    assert refused["detail"]["field"] == "use_points"
    await pay(client, customer, order)
    assert await stored_value.balance_of(customer.id) == (500000, 500000)
    cream = await make_product("product", price_fen=200000)
    await buy(client, customer, {"items": [{"product_id": cream.id}], "use_stored_value": True})
    assert await stored_value.balance_of(customer.id) == (300000, 500000)
    finance = await make_staff("finance")
    too_much = await client.post(f"/admin/orders/{order['id']}/refunds", json={"reason": "customer_request"},
                                 headers=staff_headers(finance) | {"Idempotency-Key": uuid.uuid4().hex})
    assert too_much.status_code == 422 and too_much.json()["detail"]["left_fen"] == 300000
    await refund(client, order["id"], 300000)
    await run_jobs(redis)
    assert await stored_value.balance_of(customer.id) == (0, 0)  # bonus forfeited
    liability = await client.get(f"/admin/stored-value/liability?date={clock.local_today().isoformat()}",
                                 headers=staff_headers(finance))
    assert liability.status_code == 200 and liability.json()["principal_fen"] >= 0
    await assert_ledgers_hold([customer.id])


async def test_course_card_sessions_redeemed_once_and_unused_refunded_at_price_paid(client, redis):
    from tests.booking.factories import make_branch

    branch = await make_branch()
    customer = await make_customer()
    course = await make_product("course", price_fen=10000, sessions=3)
    order = await buy(client, customer, {"items": [{"product_id": course.id}]})
    await pay(client, customer, order)
    await run_jobs(redis)
    card = await PackageCard.get(order_id=order["id"])
    values = [s.value_fen for s in await PackageSession.filter(card_id=card.id).order_by("seq")]
    assert values == [3333, 3333, 3334] and sum(values) == 10000
    desk = await make_staff("front_desk")
    redeemed = await client.post("/admin/package-cards/redeem", json={"code": card.code, "branch_id": branch.id},
                                 headers=staff_headers(desk))
    assert redeemed.status_code == 200 and redeemed.json()["sessions_left"] == 2
    finance = await make_staff("finance")
    key = uuid.uuid4().hex
    first = await client.post(f"/admin/package-cards/{card.id}/refunds", headers=staff_headers(finance) |
                              {"Idempotency-Key": key})
    assert first.status_code == 201 and first.json()["amount_fen"] == 6667
    again = await client.post(f"/admin/package-cards/{card.id}/refunds", headers=staff_headers(finance) |
                              {"Idempotency-Key": key})
    assert again.status_code == 200 and again.json()["refund_id"] == first.json()["refund_id"]
    gone = await client.post("/admin/package-cards/redeem", json={"code": card.code, "branch_id": branch.id},
                             headers=staff_headers(desk))
    assert gone.status_code == 409 and gone.json()["code"] == "session_not_redeemable"
    await run_jobs(redis)
    assert (await Order.get(id=order["id"])).refunded_fen == 6667


async def test_staff_change_a_coupon_template_but_not_its_amounts_and_a_switched_off_one_is_not_issued(client):
    campaign = await make_staff("campaign")
    template = await make_template("cash_off", value_fen=2000, threshold_fen=10000)
    url = f"/admin/shop/coupon-templates/{template.id}"
    changed = await client.patch(url, headers=staff_headers(campaign), json={
        "name": "满 100 减 20（会员日）", "per_customer_limit": 3, "claimable": True})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["name"], changed.json()["per_customer_limit"], changed.json()["claimable"],
            changed.json()["value_fen"]) == ("满 100 减 20（会员日）", 3, True, 2000)
    # The amount priced coupons already issued: not a field of the update.
    refused = await client.patch(url, headers=staff_headers(campaign), json={"value_fen": 1})
    assert refused.status_code == 400 and refused.json()["detail"]["field"] == "value_fen", refused.text
    assert (await client.patch(url, headers=staff_headers(await make_staff("front_desk")),
                               json={"is_active": False})).status_code == 403
    off = await client.patch(url, headers=staff_headers(campaign), json={"is_active": False})
    assert off.status_code == 200 and off.json()["is_active"] is False
    customer = await make_customer()
    issued = await client.post(f"{url}/issue", headers=staff_headers(campaign) | {"Idempotency-Key": uuid.uuid4().hex},
                               json={"customer_ids": [customer.id]})
    assert issued.status_code == 200 and issued.json()["issued"] == 0 and issued.json()["refused"] == [customer.id]
    missing = await client.patch("/admin/shop/coupon-templates/999999999", headers=staff_headers(campaign),
                                 json={"name": "x"})
    assert missing.status_code == 404 and missing.json()["code"] == "coupon_template_not_found"


async def test_issue_coupon_is_idempotent_per_source_ref_and_customer():
    from orders.coupons import issue_coupon

    customer = await make_customer()
    template = await make_template("cash_off", per_customer_limit=2)
    async with transaction() as conn:
        first, created = await issue_coupon(conn, customer.id, template.id, "outreach", "campaign-7")
        again, created_again = await issue_coupon(conn, customer.id, template.id, "outreach", "campaign-7")
    assert created and not created_again and first.id == again.id


@pytest.mark.parametrize("n", [20])
async def test_one_stored_value_balance_spent_by_concurrent_orders_never_goes_below_zero(client, n):
    import asyncio

    customer = await make_customer()
    product = await make_product("product", price_fen=1000)
    await give_stored_value(customer.id, 5000, 0)
    body = {"items": [{"product_id": product.id}], "use_stored_value": True}
    answers = await asyncio.gather(*[client.post("/app/orders", json=body, headers=customer_headers(customer))
                                     for _ in range(n)])
    assert all(a.status_code == 201 for a in answers), [a.text for a in answers if a.status_code != 201]
    covered = [a.json() for a in answers if a.json()["stored_value_fen"] > 0]
    assert sum(o["stored_value_fen"] for o in covered) == 5000 and len(covered) == 5
    assert await stored_value.balance_of(customer.id) == (0, 0)
    await assert_ledgers_hold([customer.id])


async def test_one_coupon_applied_to_concurrent_orders_is_used_once(client):
    import asyncio

    customer = await make_customer()
    product = await make_product("product", price_fen=1000)
    coupon = await give_coupon(customer.id, (await make_template("cash_off", value_fen=100, threshold_fen=0)).id)
    body = {"items": [{"product_id": product.id}], "coupon_id": coupon.id}
    answers = await asyncio.gather(*[client.post("/app/orders", json=body, headers=customer_headers(customer))
                                     for _ in range(10)])
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [409] * 9, [a.text for a in answers]
    assert await Order.filter(coupon_id=coupon.id).count() == 1
