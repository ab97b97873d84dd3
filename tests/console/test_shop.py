"""Money-product screens: campaign staff take a product off sale from the catalogue (customers no longer see
it), see top-up plans and coupon templates; finance reads the prepaid liability the API computes."""

from __future__ import annotations

import secrets

import httpx

from kernel import clock
from tests.factories import customer_headers, make_customer, make_staff, staff_headers
from tests.orders.shop_factories import give_stored_value, make_product, make_template

PASSWORD = "top ups and coupons on sale 7"


async def test_campaign_staff_take_a_product_off_sale_and_see_plans_and_coupons(tab, console_base):
    product = await make_product("course", name="水光 " + secrets.token_hex(3))
    plan = await make_product("topup", price_fen=100_000, topup_bonus_fen=20_000, name="充值 " + secrets.token_hex(3))
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

    await tab.visit("/campaign/topup-plans")
    await page.locator(".el-table__row", has_text=plan.name).locator("text=¥1200.00").wait_for()
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
