"""Campaign staff create a bestie-card campaign, fix the field the API names, publish it, and customers see it."""

from __future__ import annotations

import secrets

import httpx

from tests.factories import customer_headers, make_customer, make_staff

PASSWORD = "bestie cards sell in march 8"


async def test_campaign_staff_create_fix_a_field_error_and_publish_a_bestie_card(tab, console_base):
    staff = await make_staff("campaign", password=PASSWORD)
    title = "闺蜜卡 " + secrets.token_hex(3)
    await tab.login(staff.username, PASSWORD)
    page = tab.page
    await page.wait_for_selector("text=拼团活动")
    await page.click("[data-test=campaign-new]")
    form = page.locator("[data-test=campaign-form]")
    await form.wait_for()
    await page.fill("input[data-test=campaign-title]", title)
    await page.fill("input[data-test=sku-0-title]", "水光针双人体验")
    await page.fill("input[data-test=sku-0-original]", "199")
    await page.fill("input[data-test=sku-0-group]", "299.5")  # dearer than the original: the API refuses
    await page.click("[data-test=campaign-save]")

    # The API's detail.field is skus[0].group_price_fen: its message sits under that very input.
    field = form.locator('[data-field="skus[0].group_price_fen"]')
    error = field.locator(".el-form-item__error")
    await error.wait_for()
    assert "original price" in (await error.inner_text())
    assert await form.locator(".el-form-item__error").count() == 1

    await page.fill("input[data-test=sku-0-group]", "99.90")
    await page.click("[data-test=campaign-save]")
    await form.wait_for(state="detached")
    row = page.locator(".el-table__row", has_text=title)
    await row.locator(".el-tag", has_text="草稿").wait_for()
    assert "¥99.90" in await row.inner_text()  # shown in yuan, sent in fen
    await row.locator("[data-test^=publish-]").click()
    await page.locator(".el-table__row", has_text=title).locator(".el-tag", has_text="进行中").wait_for()

    customer = await make_customer()
    async with httpx.AsyncClient(base_url=console_base) as http:
        listed = (await http.get("/app/campaigns", headers=customer_headers(customer))).json()
    [campaign] = [c for c in listed if c["title"] == title]
    assert campaign["kind"] == "bestie_card"
    assert campaign["skus"][0]["group_price_fen"] == 9990 and campaign["skus"][0]["original_price_fen"] == 19900
