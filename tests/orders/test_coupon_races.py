"""Coupons given out under concurrency: a customer's taps on 领券 and a staff issue retried at once never
give more than the template's per-customer limit, nor the same issue twice."""

from __future__ import annotations

import asyncio

from orders.product_models import Coupon
from tests.factories import customer_headers, make_customer, make_staff, staff_headers
from tests.orders.shop_factories import make_template


async def test_concurrent_claims_stop_at_the_per_customer_limit(client):
    customer = await make_customer()
    template = await make_template("cash_off", value_fen=500, threshold_fen=0, claimable=True, per_customer_limit=2)
    answers = await asyncio.gather(*[
        client.post("/app/shop/coupons/claim", json={"template_id": template.id}, headers=customer_headers(customer))
        for _ in range(20)])
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] * 2 + [409] * 18, [a.text for a in answers]
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"coupon_limit_reached"}
    assert await Coupon.filter(template_id=template.id, customer_id=customer.id).count() == 2


async def test_a_staff_issue_sent_many_times_at_once_gives_each_customer_one_coupon(client):
    campaign = await make_staff("campaign")
    customers = [await make_customer() for _ in range(3)]
    template = await make_template("cash_off", value_fen=500, threshold_fen=0, per_customer_limit=5)
    headers = {**staff_headers(campaign), "Idempotency-Key": f"coupon-issue-{template.id}"}
    body = {"customer_ids": [c.id for c in customers]}
    answers = await asyncio.gather(*[
        client.post(f"/admin/shop/coupon-templates/{template.id}/issue", json=body, headers=headers)
        for _ in range(10)])
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert sum(a.json()["issued"] for a in answers) == 3
    for customer in customers:
        assert await Coupon.filter(template_id=template.id, customer_id=customer.id).count() == 1


async def test_one_idempotency_key_sent_for_two_templates_issues_both(client):
    """The key identifies one issue of one template: reusing it for another template is a new issue, not
    'already held' (which gave the customer nothing)."""
    campaign = await make_staff("campaign")
    customer = await make_customer()
    first = await make_template("cash_off", value_fen=500, threshold_fen=0)
    second = await make_template("cash_off", value_fen=800, threshold_fen=0)
    headers = {**staff_headers(campaign), "Idempotency-Key": f"coupon-issue-shared-{first.id}"}
    for template in (first, second):
        answer = await client.post(f"/admin/shop/coupon-templates/{template.id}/issue",
                                   json={"customer_ids": [customer.id]}, headers=headers)
        assert answer.status_code == 200 and answer.json()["issued"] == 1, answer.text
    assert await Coupon.filter(customer_id=customer.id).count() == 2
