"""Campaign staff create a bestie-card campaign, fix the field the API names, publish it, and customers see it;
they retitle an existing campaign and save it with its items, and switch virtual completion off by clearing
it."""

from __future__ import annotations

import secrets

import httpx
import pytest

from tests.console.shots import shot
from tests.factories import customer_headers, make_customer, make_staff

PASSWORD = "bestie cards sell in march 8"


async def new_campaign_form(page, title: str, *, group_price: str):
    """The campaign editor opened from the list, with a title and one item (原价 ¥199) at `group_price` typed in."""
    await page.click("[data-test=campaign-new]")
    form = page.locator("[data-test=campaign-form]")
    await form.wait_for()
    await page.fill("input[data-test=campaign-title]", title)
    await page.fill("input[data-test=sku-0-title]", "水光针双人体验")
    await page.fill("input[data-test=sku-0-original]", "199")
    await page.fill("input[data-test=sku-0-group]", group_price)
    return form


async def test_campaign_staff_create_fix_a_field_error_and_publish_a_bestie_card(tab, console_base):
    staff = await make_staff("campaign", password=PASSWORD)
    title = "闺蜜卡 " + secrets.token_hex(3)
    await tab.login(staff.username, PASSWORD)
    page = tab.page
    await page.wait_for_selector("text=拼团活动")
    form = await new_campaign_form(page, title, group_price="299.5")  # dearer than the original: the API refuses
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


async def test_a_pc_on_utc_enters_a_campaigns_times_on_the_clinics_clock(utc_tab, console_base):
    """A campaign member whose PC is set to UTC (the clinic is on Asia/Shanghai) types a start of 10:00: the
    campaign starts at 10:00 clinic time (02:00Z), not at 10:00 UTC (18:00 in the clinic); the list and the
    reopened editor show 10:00 again."""
    from datetime import datetime, timedelta, timezone
    from zoneinfo import ZoneInfo

    from campaigns.models import Campaign
    from tests.factories import staff_headers

    day = datetime.now(ZoneInfo("Asia/Shanghai")).date() + timedelta(days=3)
    end = day + timedelta(days=10)
    staff = await make_staff("campaign", password=PASSWORD)
    title = "开学季 " + secrets.token_hex(3)
    await utc_tab.login(staff.username, PASSWORD)
    page = utc_tab.page
    assert await page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") == "UTC"
    form = await new_campaign_form(page, title, group_price="99")
    await type_time(page, "starts_at", f"{day} 10:00:00")
    await type_time(page, "ends_at", f"{end} 22:00:00")
    await page.click("[data-test=campaign-save]")
    await form.wait_for(state="detached")

    campaign = await Campaign.get(title=title)
    async with httpx.AsyncClient(base_url=console_base, headers=staff_headers(staff)) as http:
        stored = (await http.get(f"/admin/campaigns/{campaign.id}")).json()
    assert datetime.fromisoformat(stored["starts_at"]) == datetime(day.year, day.month, day.day, 2, tzinfo=timezone.utc)
    assert datetime.fromisoformat(stored["ends_at"]) == datetime(end.year, end.month, end.day, 14, tzinfo=timezone.utc)
    row = page.locator(".el-table__row", has_text=title)
    assert f"{day} 10:00" in await row.inner_text()

    await page.click(f"[data-test=campaign-edit-{campaign.id}]")
    await form.wait_for()
    assert await page.input_value("[data-field=starts_at] input") == f"{day} 10:00:00"
    assert await page.input_value("[data-field=ends_at] input") == f"{end} 22:00:00"
    await shot(page, "campaign-editor-utc.png")


async def type_time(page, field: str, wall_clock: str) -> None:
    """Type a date-time into the Element Plus picker of a form field, as staff do, and confirm it with Enter."""
    typed = page.locator(f'[data-field="{field}"] input')
    await typed.fill(wall_clock)
    await typed.press("Enter")


async def test_campaign_staff_retitle_an_existing_campaign_and_its_items_stay_as_they_were(tab, console_base):
    """The editor sends every item back with its stock (unchanged here) in the same request as the campaign:
    the save succeeds, the list shows the new title, and the item's stock and price are as they were."""
    from campaigns.models import CampaignSku
    from tests.campaigns.groupbuy_factories import make_campaign

    campaign, sku = await make_campaign(stock=30, live=False)
    staff = await make_staff("campaign", password=PASSWORD)
    title = "三八节 闺蜜卡 " + secrets.token_hex(3)
    await tab.login(staff.username, PASSWORD)
    page = tab.page
    await page.click(f"[data-test=campaign-edit-{campaign.id}]")
    form = page.locator("[data-test=campaign-form]")
    await form.wait_for()
    assert await page.input_value("input[data-test=campaign-title]") == campaign.title
    await page.fill("input[data-test=campaign-title]", title)
    await page.click("[data-test=campaign-save]")

    await page.locator(".el-message--success", has_text="已保存").wait_for()
    await form.wait_for(state="detached")
    row = page.locator(".el-table__row", has_text=title)
    await row.wait_for()
    assert "剩 30" in await row.inner_text()
    item = await CampaignSku.get(id=sku.id)
    assert (item.stock_total, item.stock_left, item.group_price_fen) == (30, 30, sku.group_price_fen)
    await shot(page, "campaign-retitled.png")


@pytest.mark.parametrize("kind", ["bestie_card", "category"])
async def test_campaign_staff_retitle_a_running_campaign(tab, console_base, kind):
    """A running campaign opened in the editor and saved with only its title changed: the editor sends every
    field back (group size, time limit, start... as they are), and the API refused them as changes of a live
    campaign, so staff could not retitle it. A category group buy's time limit (0) was sent back as 1440."""
    from campaigns.groupbuy.models import Campaign, CampaignKind, CampaignSku
    from tests.campaigns.groupbuy_factories import make_campaign

    tiers = [(10, 8_800)] if kind == "category" else None
    campaign, sku = await make_campaign(CampaignKind(kind), stock=30, tiers=tiers)  # live, started 5 minutes ago
    staff = await make_staff("campaign", password=PASSWORD)
    title = "进行中 改名 " + secrets.token_hex(3)
    await tab.login(staff.username, PASSWORD)
    page = tab.page
    await page.locator(".el-table__row", has_text=campaign.title).locator(".el-tag", has_text="进行中").wait_for()
    await page.click(f"[data-test=campaign-edit-{campaign.id}]")
    form = page.locator("[data-test=campaign-form]")
    await form.wait_for()
    # The hint says what the API enforces: a live campaign's end may also move earlier, while in the future.
    hint = await page.locator("[data-test=campaign-locked-hint]").inner_text()
    assert "结束时间可提前或延后但须晚于现在" in hint and "只能延后" not in hint, hint
    # Each locked item price by the name its input has: tiers only where the form shows them.
    assert ("以下内容不可修改：开始时间、仅限新客、项目原价、项目团购价、项目阶梯价。" in hint) == (kind == "category"), hint
    assert ("项目拼团价" in hint) == (kind == "bestie_card"), hint
    await shot(page, f"campaign-running-editor-{kind}.png")
    await page.fill("input[data-test=campaign-title]", title)
    await page.click("[data-test=campaign-save]")

    await page.locator(".el-message--success", has_text="已保存").wait_for()
    await form.wait_for(state="detached")
    row = page.locator(".el-table__row", has_text=title)
    await row.locator(".el-tag", has_text="进行中").wait_for()
    saved, item = await Campaign.get(id=campaign.id), await CampaignSku.get(id=sku.id)
    assert saved.title == title
    assert (saved.starts_at, saved.ends_at, saved.group_size, saved.time_limit_minutes) == (
        campaign.starts_at, campaign.ends_at, campaign.group_size, campaign.time_limit_minutes)
    assert (item.group_price_fen, item.tiers, item.stock_total) == (sku.group_price_fen, sku.tiers, 30)
    await shot(page, f"campaign-running-retitled-{kind}.png")


async def test_campaign_staff_switch_virtual_completion_off_by_clearing_it(tab, console_base):
    """A draft bestie card completes virtually at 2 paid seats; staff clear 虚拟成团 in the editor and save. The
    editor sent null, which PATCH reads as "not sent", so virtual completion stayed on; cleared now means off
    (stored as NULL), and the reopened editor shows the field empty."""
    from campaigns.groupbuy.models import Campaign
    from tests.campaigns.groupbuy_factories import make_campaign
    from tests.factories import staff_headers

    campaign, _ = await make_campaign(live=False, virtual_min_paid=2)
    staff = await make_staff("campaign", password=PASSWORD)
    await tab.login(staff.username, PASSWORD)
    page = tab.page
    virtual = page.locator('[data-field="virtual_min_paid"] input')
    await page.click(f"[data-test=campaign-edit-{campaign.id}]")
    form = page.locator("[data-test=campaign-form]")
    await form.wait_for()
    assert await virtual.input_value() == "2"
    await virtual.fill("")
    await virtual.press("Tab")
    await page.click("[data-test=campaign-save]")
    await page.locator(".el-message--success", has_text="已保存").wait_for()
    await form.wait_for(state="detached")

    assert (await Campaign.get(id=campaign.id)).virtual_min_paid is None
    async with httpx.AsyncClient(base_url=console_base, headers=staff_headers(staff)) as http:
        assert (await http.get(f"/admin/campaigns/{campaign.id}")).json()["virtual_min_paid"] is None
    await page.click(f"[data-test=campaign-edit-{campaign.id}]")
    await form.wait_for()
    assert await virtual.input_value() == ""
    await shot(page, "campaign-virtual-off.png")


async def test_the_lock_hint_shows_for_a_running_campaign_only_and_names_the_locked_fields(tab, console_base):
    """The hint showed for every published campaign, a scheduled one not started yet too (which the API lets
    change everything), and did not say which fields were locked. It now comes from the API's locked_fields:
    none for the scheduled campaign; for the running one each locked field by its name in the form, disabled."""
    from datetime import timedelta

    from campaigns.groupbuy.models import Campaign, CampaignStatus
    from kernel import clock
    from tests.campaigns.groupbuy_factories import make_campaign

    scheduled, _ = await make_campaign(live=False, starts_at=clock.now() + timedelta(days=2))
    await Campaign.filter(id=scheduled.id).update(status=CampaignStatus.scheduled)
    running, _ = await make_campaign(stock=30)
    staff = await make_staff("campaign", password=PASSWORD)
    await tab.login(staff.username, PASSWORD)
    page = tab.page
    form = page.locator("[data-test=campaign-form]")

    await page.locator(".el-table__row", has_text=scheduled.title).locator(".el-tag", has_text="待开始").wait_for()
    await page.click(f"[data-test=campaign-edit-{scheduled.id}]")
    await form.wait_for()
    assert await page.locator(".el-dialog p").count() == 0
    assert await page.locator('[data-field="group_size"] input').is_enabled()
    assert await page.locator("input[data-test=sku-0-group]").is_enabled()
    await shot(page, "campaign-scheduled-editor.png")
    await page.keyboard.press("Escape")
    await form.wait_for(state="detached")

    await page.click(f"[data-test=campaign-edit-{running.id}]")
    await form.wait_for()
    hint = await page.locator("[data-test=campaign-locked-hint]").inner_text()
    assert "以下内容不可修改：开始时间、成团人数、成团时限、仅限新客、虚拟成团、团长奖励积分、项目原价、项目拼团价。" in hint, hint
    assert "每人限购只能放宽" in hint and "库存不能低于已售出和占用的数量" in hint, hint
    for field in ("starts_at", "group_size", "time_limit_minutes", "leader_bonus_points"):
        assert await page.locator(f'[data-field="{field}"] input').is_disabled(), field
    assert await page.locator("input[data-test=sku-0-group]").is_disabled()
    assert await page.locator("input[data-test=campaign-title]").is_enabled()
    assert await page.locator('[data-field="skus[0].stock"] input').is_enabled()
    await shot(page, "campaign-running-locked-hint.png")


async def test_a_save_from_an_editor_someone_changed_meanwhile_is_refused_and_reloads(tab, console_base):
    """A opens a running campaign's editor; B raises its item's stock from 30 to 40; A retitles and saves. The
    editor sent its whole form back and put the stock back to 30. Now the save is refused, A is told in Chinese
    that someone else changed the campaign and reloads it: the form shows 40, and A's retitle is saved over it."""
    from campaigns.groupbuy.models import Campaign, CampaignSku
    from tests.campaigns.groupbuy_factories import make_campaign
    from tests.factories import staff_headers

    campaign, sku = await make_campaign(stock=30)
    a, b = await make_staff("campaign", password=PASSWORD), await make_staff("campaign")
    title = "A 改名 " + secrets.token_hex(3)
    await tab.login(a.username, PASSWORD)
    page = tab.page
    form = page.locator("[data-test=campaign-form]")
    await page.click(f"[data-test=campaign-edit-{campaign.id}]")
    await form.wait_for()
    stock = page.locator('[data-field="skus[0].stock"] input')
    assert await stock.input_value() == "30"

    async with httpx.AsyncClient(base_url=console_base, headers=staff_headers(b)) as http:
        raised = await http.patch(f"/admin/campaigns/{campaign.id}/skus/{sku.id}", json={"stock": 40})
        assert raised.status_code == 200, raised.text
    await page.fill("input[data-test=campaign-title]", title)
    await page.click("[data-test=campaign-save]")

    # Asked in the middle of the screen; declined, the note at the head of the editor keeps the reload button.
    asked = page.locator(".el-message-box", has_text="活动已被他人修改")
    await asked.wait_for()
    assert "其他人修改了这个活动或其项目" in await asked.inner_text()
    saved, item = await Campaign.get(id=campaign.id), await CampaignSku.get(id=sku.id)
    assert (saved.title, item.stock_total) == (campaign.title, 40)
    await shot(page, "campaign-edited-meanwhile.png")
    await asked.locator("button", has_text="暂不").click()
    await asked.wait_for(state="hidden")
    stale = page.locator("[data-test=campaign-stale]")
    assert "其他人修改了这个活动" in await stale.inner_text()
    assert await page.input_value("input[data-test=campaign-title]") == title  # A's typing is still there
    await stale.scroll_into_view_if_needed()
    await shot(page, "campaign-edited-meanwhile-note.png")

    await page.click("[data-test=campaign-reload]")
    await stale.wait_for(state="detached")
    assert await stock.input_value() == "40"
    assert await page.input_value("input[data-test=campaign-title]") == campaign.title
    await page.fill("input[data-test=campaign-title]", title)
    await page.click("[data-test=campaign-save]")
    await page.locator(".el-message--success", has_text="已保存").wait_for()
    await form.wait_for(state="detached")
    saved, item = await Campaign.get(id=campaign.id), await CampaignSku.get(id=sku.id)
    assert (saved.title, item.stock_total, item.stock_left) == (title, 40, 40)


async def test_the_points_rules_say_whether_expiry_reminders_are_sent(tab, console_base):
    """Without the clinic's WeChat template no expiry reminder is sent (points_mall.tasks); the rules screen says
    so, and shows the template and the days once it is set."""
    from kernel.db import transaction
    from points_mall.rules import update_rules

    async def template(template_id: str) -> None:
        async with transaction() as conn:
            await update_rules(conn, None, {"expiry_reminder_template_id": template_id, "expiry_reminder_days": 30})

    await template("")
    staff = await make_staff("campaign", password=PASSWORD)
    await tab.login(staff.username, PASSWORD)
    page = tab.page
    await tab.visit("/campaign/points")
    off = page.locator("[data-test=expiry-reminder-off]")
    await off.wait_for()
    assert await off.inner_text() == "未设置订阅消息模板，不发送"
    await shot(page, "points-rules-reminder-off.png")

    await template("tmpl-points-expiry")
    await page.reload()
    reminder = page.locator(".el-descriptions__cell", has_text="到期前 30 天").first
    await reminder.wait_for()
    assert "模板 tmpl-points-expiry" in await reminder.inner_text()
    assert await off.count() == 0
    await shot(page, "points-rules-reminder-on.png")
