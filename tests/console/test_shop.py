"""Money-product screens: campaign staff create and edit a course card with a member price (fixing the field
the API names), create a top-up plan customers then see, create a coupon template and issue it (a second
press of "send" gives nobody a second coupon), edit and switch it off, set the points-as-cash rule a quote then
follows, take a product off sale; finance reads the prepaid liability
the API computes; on a PC set to UTC, a coupon's 最晚到期 is typed and shown on the clinic's clock.

Set CONSOLE_SCREENSHOTS=<dir> to keep the screenshots the tests take (docs/console/shop-*.png come from there).
"""

from __future__ import annotations

import secrets
import uuid

import httpx

from kernel import clock
from orders.product_models import Coupon, CouponTemplate, Product
from points_mall.models import MemberTier
from tests.console.shots import shot
from tests.factories import customer_headers, make_customer, make_staff, staff_headers
from tests.orders.shop_factories import give_points, give_stored_value, make_product, make_template

PASSWORD = "top ups and coupons on sale 7"


async def test_campaign_staff_create_a_course_card_with_a_member_price_fix_the_named_field_and_edit_it(tab):
    level = 700_000 + secrets.randbelow(99_999)
    tier = await MemberTier.create(name=f"金卡 {uuid.uuid4().hex[:4]}", level=level, min_spend_fen=1,
                                   created_at=clock.now(), updated_at=clock.now())
    name = "水光针 3 次卡 " + secrets.token_hex(3)
    staff = await make_staff("campaign", password=PASSWORD)
    await tab.login(staff.username, PASSWORD)
    page = tab.page
    await tab.visit("/campaign/catalogue")
    await page.click("[data-test=product-new]")
    form = page.locator("[data-test=product-form]")
    await form.wait_for()
    await tab.pick("product-kind", "次卡")
    await page.fill("input[data-test=product-name]", name)
    await page.fill("input[data-test=product-category]", "skin")
    await page.fill("input[data-test=product-price]", "2980")
    await page.fill("input[data-test=product-item-0-title]", "水光针")
    await page.fill(f"input[data-test=member-price-{level}]", "3000")  # above the list price: the API refuses
    await page.click("[data-test=product-save]")

    # The API names member_prices[0].price_fen; the form shows it under that tier's row, and only there.
    error = form.locator(f'[data-field="member_prices[tier:{tier.id}]"] .el-form-item__error')
    await error.wait_for()
    assert "above the list price" in await error.inner_text()
    assert await form.locator(".el-form-item__error").count() == 1
    await shot(page, "shop-product-editor-error", full_page=True)
    assert not await Product.filter(name=name).exists()  # nothing was created by the refused save

    await page.fill(f"input[data-test=member-price-{level}]", "2680.5")
    await page.click("[data-test=product-save]")
    await form.wait_for(state="detached")
    row = page.locator(".el-table__row", has_text=name)
    await row.wait_for()
    assert "¥2980.00" in await row.inner_text() and f"{tier.name} ¥2680.50" in await row.inner_text()
    product = await Product.get(name=name)
    assert (product.kind, product.price_fen, product.items, product.validity_days) == \
        ("course", 298_000, [{"title": "水光针", "sessions": 3}], 365)

    # Edit: the price drops below the member price, which the API refuses under that tier again; then both change.
    await page.click(f"[data-test=product-edit-{product.id}]")
    await form.wait_for()
    assert await page.locator("input[data-test=product-item-0-title]").is_disabled()  # sold cards keep their sessions
    await page.fill("input[data-test=product-price]", "2500")
    await page.click("[data-test=product-save]")
    await error.wait_for()
    await page.fill(f"input[data-test=member-price-{level}]", "2300")
    await page.click("[data-test=product-save]")
    await form.wait_for(state="detached")
    await page.locator(".el-table__row", has_text=name).locator(f"text={tier.name} ¥2300.00").wait_for()
    await shot(page, "shop-catalogue", full_page=True)
    async with httpx.AsyncClient(base_url=tab.base) as http:
        listed = (await http.get("/admin/shop/products?kind=course&limit=200",
                                 headers=staff_headers(staff))).json()["items"]
    [seen] = [p for p in listed if p["id"] == product.id]
    assert seen["price_fen"] == 250_000 and seen["member_prices"] == [{"tier_id": tier.id, "price_fen": 230_000}]


async def test_campaign_staff_create_a_top_up_plan_customers_then_see(tab):
    name = "充 1000 送 200 " + secrets.token_hex(3)
    staff = await make_staff("campaign", password=PASSWORD)
    await tab.login(staff.username, PASSWORD)
    page = tab.page
    await tab.visit("/campaign/topup-plans")
    await page.click("[data-test=product-new]")
    form = page.locator("[data-test=product-form]")
    await form.wait_for()
    assert await form.locator("[data-test=product-kind]").count() == 0  # a plan is always a top-up
    assert await form.locator("[data-test^=member-price-]").count() == 0  # and has no member price
    await page.fill("input[data-test=product-name]", name)
    await page.fill("input[data-test=product-price]", "1000")
    await page.fill("input[data-test=product-bonus]", "2OO")  # letters O, not zeros: refused before sending
    await page.click("[data-test=product-save]")
    await form.locator('[data-field="topup_bonus_fen"] .el-form-item__error').wait_for()
    await page.fill("input[data-test=product-bonus]", "200")
    await page.click("[data-test=product-save]")
    await form.wait_for(state="detached")
    await page.locator(".el-table__row", has_text=name).locator("text=¥1200.00").wait_for()
    await shot(page, "shop-topup-plans", full_page=True)
    async with httpx.AsyncClient(base_url=tab.base) as http:
        seen = (await http.get("/app/shop/products?kind=topup&limit=200",
                               headers=customer_headers(await make_customer()))).json()["items"]
    [plan] = [p for p in seen if p["name"] == name]
    assert (plan["price_fen"], plan["topup_bonus_fen"]) == (100_000, 20_000)


async def new_coupon_form(tab, name: str, *, threshold: str, value: str):
    """The coupon editor opened from the list, with a name, a threshold and an amount off typed in (yuan)."""
    page = tab.page
    await tab.visit("/campaign/coupons")
    await page.click("[data-test=coupon-new]")
    form = page.locator("[data-test=coupon-form]")
    await form.wait_for()
    await page.fill("input[data-test=coupon-name]", name)
    await page.fill("input[data-test=coupon-threshold]", threshold)
    await page.fill("input[data-test=coupon-value]", value)
    return form


async def test_campaign_staff_create_a_coupon_fix_the_named_field_issue_it_once_then_edit_and_switch_it_off(tab):
    name = "满 300 减 30 " + secrets.token_hex(3)
    customers = [await make_customer(), await make_customer()]
    staff = await make_staff("campaign", password=PASSWORD)
    await tab.login(staff.username, PASSWORD)
    page = tab.page
    # Takes nothing off: the API refuses value_fen.
    form = await new_coupon_form(tab, name, threshold="300", value="0")
    await page.click("[data-test=coupon-save]")
    error = form.locator('[data-field="value_fen"] .el-form-item__error')
    await error.wait_for()
    assert "at least 1 fen" in await error.inner_text()
    await shot(page, "shop-coupon-editor-error", full_page=True)
    await page.fill("input[data-test=coupon-value]", "30")
    await page.click("[data-test=coupon-save]")
    await form.wait_for(state="detached")
    row = page.locator(".el-table__row", has_text=name)
    await row.locator("text=满 ¥300.00 减 ¥30.00").wait_for()

    await row.locator("[data-test^=coupon-issue-]").click()
    await page.fill("textarea[data-test=issue-ids]", f"{customers[0].id}, {customers[1].id}")
    await page.click("[data-test=issue-send]")
    await page.locator("[data-test=issue-result]", has_text="已发放 2 张").wait_for()
    # Sent again from the same dialog (a double press, a retry): the same key, nobody gets a second one.
    await page.click("[data-test=issue-send]")
    await page.locator("[data-test=issue-result]", has_text="已发放 0 张；已持有 2 人").wait_for()
    await shot(page, "shop-coupon-issue", full_page=True)
    for customer in customers:
        assert await Coupon.filter(customer_id=customer.id, template__name=name).count() == 1

    # Edit: the amounts are fixed (issued coupons are priced by them); the name and the limit change.
    await page.click("[data-test=issue-dialog-close]")
    template = await CouponTemplate.get(name=name)
    await page.click(f"[data-test=coupon-edit-{template.id}]")
    await form.wait_for()
    assert await page.locator("input[data-test=coupon-value]").is_disabled()
    await page.fill("input[data-test=coupon-name]", name + " 会员日")
    await page.fill('[data-field="per_customer_limit"] input', "3")
    await page.click("[data-test=coupon-save]")
    await form.wait_for(state="detached")
    await page.locator(".el-table__row", has_text=name + " 会员日").wait_for()
    template = await CouponTemplate.get(id=template.id)
    assert (template.name, template.per_customer_limit, template.value_fen) == (name + " 会员日", 3, 3000)
    await page.click(f"[data-test=coupon-switch-{template.id}]")
    row = page.locator(".el-table__row", has_text=name + " 会员日")
    await row.locator(".el-tag", has_text="已停用").wait_for()
    assert await row.locator("[data-test^=coupon-issue-]").count() == 0


async def test_campaign_staff_take_a_product_off_sale(tab, console_base):
    product = await make_product("course", name="水光 " + secrets.token_hex(3))
    template = await make_template("cash_off", name="满减 " + secrets.token_hex(3))
    staff = await make_staff("campaign", password=PASSWORD)
    await tab.login(staff.username, PASSWORD)
    page = tab.page
    await tab.visit("/campaign/catalogue")
    row = page.locator(".el-table__row", has_text=product.name)
    await row.locator(".el-tag", has_text="在售").wait_for()
    await page.click(f"[data-test=product-switch-{product.id}]")
    await row.locator(".el-tag", has_text="已下架").wait_for()
    async with httpx.AsyncClient(base_url=console_base) as http:
        seen = await http.get("/app/shop/products?limit=200", headers=customer_headers(await make_customer()))
    assert product.id not in [p["id"] for p in seen.json()["items"]]
    await tab.visit("/campaign/coupons")
    await page.locator(".el-table__row", has_text=template.name).wait_for()


async def test_finance_reads_the_prepaid_liability_the_api_computes(tab, console_base):
    await give_stored_value((await make_customer()).id, 12_345, 678)
    finance = await make_staff("finance", password=PASSWORD)
    async with httpx.AsyncClient(base_url=console_base) as http:
        api = (await http.get(f"/admin/stored-value/liability?date={clock.local_today().isoformat()}",
                              headers=staff_headers(finance))).json()
    await tab.login(finance.username, PASSWORD)
    await tab.visit("/finance/stored-value")
    shown = page_text = await tab.page.locator("[data-test=liability-total]").inner_text()
    assert page_text == f"¥{api['total_fen'] // 100}.{api['total_fen'] % 100:02d}", shown
    assert api["bonus_fen"] >= 678


async def test_campaign_staff_set_the_points_as_cash_rule_a_quote_then_follows(tab):
    staff = await make_staff("campaign", password=PASSWORD)
    async with httpx.AsyncClient(base_url=tab.base) as http:
        before = (await http.get("/admin/shop/checkout-rule", headers=staff_headers(staff))).json()
        try:
            await tab.login(staff.username, PASSWORD)
            page = tab.page
            await tab.visit("/campaign/catalogue")
            rule = page.locator("[data-test=checkout-rule]")
            await rule.locator("input").first.wait_for()
            await rule.locator('[data-field="points_per_yuan"] input').fill("50")
            await rule.locator('[data-field="points_max_share_bp"] input').fill("30")
            await page.click("[data-test=rule-save]")
            await page.locator(".el-message", has_text="已保存").wait_for()
            await shot(page, "shop-checkout-rule", full_page=True)
            saved = (await http.get("/admin/shop/checkout-rule", headers=staff_headers(staff))).json()
            assert saved == {"points_per_yuan": 50, "points_max_share_bp": 3000}
            # A customer's quote uses it: 50 points a yuan, at most 30% of ¥100.
            customer = await make_customer()
            product = await make_product("product", price_fen=10_000)
            await give_points(customer.id, 5_000)
            quote = (await http.post("/app/orders/quote", headers=customer_headers(customer), json={
                "items": [{"product_id": product.id}], "use_points": True})).json()
            assert (quote["points_cash_fen"], quote["points_used"]) == (3_000, 1_500)
        finally:
            await http.put("/admin/shop/checkout-rule", headers=staff_headers(staff), json=before)


async def test_front_desk_redeem_a_course_card_session_and_are_refused_at_another_branch(tab, redis):
    from orders.product_models import PackageCard
    from tests.booking.factories import make_branch
    from tests.orders.factories import run_jobs

    here = await make_branch(name="静安店 " + secrets.token_hex(2))
    elsewhere = await make_branch(name="徐汇店 " + secrets.token_hex(2))
    customer = await make_customer()
    course = await make_product("course", price_fen=30_000, sessions=3, branch_id=here.id)
    await give_stored_value(customer.id, 30_000)
    async with httpx.AsyncClient(base_url=tab.base) as http:  # paid by stored value alone: paid at once
        order = await http.post("/app/orders", headers=customer_headers(customer), json={
            "items": [{"product_id": course.id}], "use_stored_value": True})
    assert order.status_code == 201 and order.json()["status"] == "paid", order.text
    await run_jobs(redis)  # the paid-order job makes the card
    card = await PackageCard.get(order_id=order.json()["id"])
    desk = await make_staff("front_desk", password=PASSWORD)
    await tab.login(desk.username, PASSWORD)
    page = tab.page
    await tab.visit("/frontdesk/package-cards")
    await tab.pick("card-branch", here.name)
    await page.fill("input[data-test=card-code]", card.code)
    await page.click("[data-test=card-redeem]")
    await page.locator("[data-test=card-left]", has_text="2").wait_for()
    await shot(page, "shop-card-desk", full_page=True)
    await tab.pick("card-branch", elsewhere.name)  # the card's sessions are redeemed at its branch only
    await page.click("[data-test=card-redeem]")
    await page.locator("[data-test=refusal]").wait_for()
    assert "session_not_redeemable" in await page.locator("[data-test=refusal]").inner_text()
    async with httpx.AsyncClient(base_url=tab.base) as http:
        cards = (await http.get("/app/shop/package-cards", headers=customer_headers(customer))).json()
    assert [c["sessions_left"] for c in cards if c["id"] == card.id] == [2]


async def test_a_pc_on_utc_enters_a_coupons_last_day_on_the_clinics_clock(utc_tab, console_base):
    """A campaign member whose PC is set to UTC (the clinic is on Asia/Shanghai) gives a coupon template a
    最晚到期 of 10:00: it ends at 10:00 clinic time (02:00Z), not 10:00 UTC, and reads 10:00 when edited."""
    from datetime import datetime, timedelta, timezone
    from zoneinfo import ZoneInfo

    day = datetime.now(ZoneInfo("Asia/Shanghai")).date() + timedelta(days=30)
    name = "满 500 减 50 " + secrets.token_hex(3)
    staff = await make_staff("campaign", password=PASSWORD)
    await utc_tab.login(staff.username, PASSWORD)
    page = utc_tab.page
    form = await new_coupon_form(utc_tab, name, threshold="500", value="50")
    picked = page.locator('[data-field="valid_until"] input')
    await picked.click()
    footer = page.locator(".el-picker-panel:visible .el-picker-panel__footer")
    await footer.locator("button:visible", has_text="确定").wait_for()
    # No "此刻" (now): it would fill in the PC's clock, eight hours behind the clinic's.
    assert await footer.locator("button:visible", has_text="此刻").count() == 0
    await shot(page, "coupon-picker-utc", full_page=True)
    await picked.fill(f"{day} 10:00:00")
    await picked.press("Enter")
    await page.click("[data-test=coupon-save]")
    await form.wait_for(state="detached")

    template = await CouponTemplate.get(name=name)
    async with httpx.AsyncClient(base_url=console_base, headers=staff_headers(staff)) as http:
        listed = (await http.get("/admin/shop/coupon-templates")).json()
    [stored] = [t for t in listed if t["id"] == template.id]
    assert datetime.fromisoformat(stored["valid_until"]) == datetime(day.year, day.month, day.day, 2,
                                                                     tzinfo=timezone.utc)

    await page.click(f"[data-test=coupon-edit-{template.id}]")
    await form.wait_for()
    assert await picked.input_value() == f"{day} 10:00:00"
    await shot(page, "coupon-editor-utc", full_page=True)
