"""A member sees only the menus of their roles; a typed address to another role's page shows the API's refusal."""

from __future__ import annotations

from tests.factories import make_staff

PASSWORD = "reception tablet jingan 7"


async def test_front_desk_sees_no_finance_menu_and_a_finance_page_shows_the_refusal(tab):
    desk = await make_staff("front_desk", password=PASSWORD)
    await tab.login(desk.username, PASSWORD)
    page = tab.page
    menu = page.locator("[data-test=menu]")
    await menu.locator("text=今日队列").wait_for()
    assert await menu.locator("text=结算批次").count() == 0
    assert await menu.locator("text=财务").count() == 0

    await tab.visit("/finance/settlements")
    refusal = page.locator("[data-test=refusal]")
    await refusal.wait_for()
    assert "无权访问" in await refusal.inner_text()
    assert "财务" in await refusal.inner_text()
    await page.locator("text=无法加载").wait_for()  # no rows, and not the empty state of a real list


async def test_a_disabled_member_is_logged_out_at_the_next_call(tab, console_base):
    from kernel.db import transaction
    from kernel.identity.service import update_staff

    desk = await make_staff("front_desk", password=PASSWORD)
    await tab.login(desk.username, PASSWORD)
    async with transaction() as conn:
        await update_staff(conn, desk.id, roles=None, is_active=False, password=None, display_name=None)
    await tab.visit("/frontdesk/follow-ups")
    await tab.page.reload()
    await tab.page.wait_for_selector("[data-test=login]")
    assert await tab.page.evaluate("sessionStorage.getItem('clinic.console.session')") is None
    assert await tab.page.evaluate("localStorage.length") == 0
