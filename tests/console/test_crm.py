"""CRM screens: campaign staff find a customer by the phone's last four digits, tag them on the card, and
build a segment whose live count is the API's own preview count; the front desk has no segment menu; an
outreach's results and a recipient's card say why its coupons were not given, and show no voucher figure for a
coupon-only one;
on a PC set to UTC, the results and a recipient's card read the clinic's time and say, in Chinese, what each
recipient got and why one was skipped."""

from __future__ import annotations

import secrets

import httpx

from crm import service
from crm.models import CustomerTag
from kernel.db import transaction
from tests.crm.factories import make_tag
from tests.factories import make_customer, make_staff

PASSWORD = "campaign desk pudong 2026"


async def preview_count(base: str, username: str, rules: dict) -> int:
    async with httpx.AsyncClient(base_url=base) as client:
        login = await client.post("/admin/auth/login", json={"username": username, "password": PASSWORD})
        token = login.json()["access_token"]
        answer = await client.post("/admin/crm/segments/preview", json=rules,
                                   headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        return answer.json()["count"]


async def test_campaign_staff_tag_a_customer_found_by_phone_tail_and_count_a_segment_live(tab, console_base):
    last4 = f"{secrets.randbelow(10_000):04d}"
    nickname = "林小姐" + secrets.token_hex(2)
    customer = await make_customer(nickname=nickname, phone="139" + f"{secrets.randbelow(10_000):04d}" + last4)
    marker = await make_tag(name="高意向" + secrets.token_hex(2), category="concern")
    excluded = await make_tag(name="已流失" + secrets.token_hex(2), category="concern")
    others = [await make_customer() for _ in range(3)]
    async with transaction() as conn:
        for other in others:
            await service.put_manual_tag(conn, other.id, marker.id, staff_id=None)
        await service.put_manual_tag(conn, others[0].id, excluded.id, staff_id=None)
    staff = await make_staff("campaign", password=PASSWORD)
    await tab.login(staff.username, PASSWORD)
    page = tab.page

    # Search by the phone's last four digits; the row shows the masked phone only.
    await tab.visit("/crm/customers")
    await page.fill("input[data-test=filter-q]", last4)
    await page.press("input[data-test=filter-q]", "Enter")
    row = page.locator(".el-table__row", has_text=nickname)
    await row.wait_for()
    assert "****" + last4 in await row.inner_text()
    await row.locator(f"[data-test=card-open-{customer.id}]").click()
    card = page.locator("[data-test=customer-card]")
    await card.locator("text=RFM 历史").wait_for()

    # Put the tag on from the card: it shows on the card and is stored as a manual tag.
    await tab.pick("tag-pick", marker.name)
    await page.click("[data-test=tag-put]")
    await card.locator("[data-test=card-tags] .el-tag", has_text=marker.name).wait_for()
    assert await CustomerTag.filter(customer_id=customer.id, tag_id=marker.id).exists()

    # A segment: has the marker AND has not the excluded tag. The live count follows each change.
    await tab.visit("/crm/segments")
    await page.click("[data-test=segment-new]")
    editor = page.locator("[data-test=segment-editor]")
    await editor.wait_for()
    await page.fill("input[data-test=segment-name]", "高意向未流失")
    await tab.pick("cond-0-0-field", "标签")
    await tab.pick("cond-0-0-value", marker.name)
    await page.keyboard.press("Escape")
    live = page.locator("[data-test=live-count]")
    await live.filter(has_text="4 人").wait_for()

    await page.click("[data-test=segment-and]")
    await tab.pick("cond-1-0-field", "标签")
    await tab.pick("cond-1-0-op", "都没有")
    await tab.pick("cond-1-0-value", excluded.name)
    await page.keyboard.press("Escape")
    await live.filter(has_text="3 人").wait_for()
    rules = {"groups": [[{"field": "tag", "op": "in", "value": [marker.id]}],
                        [{"field": "tag", "op": "not_in", "value": [excluded.id]}]]}
    assert await preview_count(console_base, staff.username, rules) == 3

    await page.click("[data-test=segment-save]")
    await page.locator(".el-table__row", has_text="高意向未流失").wait_for()


async def test_front_desk_sees_customer_search_but_no_segment_menu(tab):
    desk = await make_staff("front_desk", password=PASSWORD)
    await tab.login(desk.username, PASSWORD)
    menu = tab.page.locator("[data-test=menu]")
    await menu.locator("text=客户搜索").wait_for()
    assert await menu.locator("text=人群分组").count() == 0
    assert await menu.locator("text=精准触达").count() == 0

    await tab.visit("/crm/segments")
    refusal = tab.page.locator("[data-test=refusal]")
    await refusal.wait_for()
    assert "无权访问" in await refusal.inner_text()


async def test_campaign_staff_give_a_coupon_by_outreach_on_birthdays_and_after_visits(tab, tmp_path):
    from crm.models import CouponRule, Outreach
    from tests.crm.factories import make_segment, only
    from tests.orders.shop_factories import make_template

    marker = await make_tag(name="老客" + secrets.token_hex(2), category="concern")
    segment = await make_segment({"groups": [only(marker.id)]}, name="老客唤醒" + secrets.token_hex(2))
    coupon_name = "满300减50-" + secrets.token_hex(2)
    template = await make_template("cash_off", value_fen=5000, threshold_fen=30000, name=coupon_name)
    staff = await make_staff("campaign", password=PASSWORD)
    await CouponRule.all().delete()
    try:
        await tab.login(staff.username, PASSWORD)
        page = tab.page
        await tab.visit("/crm/outreach")
        await page.click("[data-test=outreach-new]")
        dialog = page.locator(".el-dialog", has_text="新建触达")
        await dialog.wait_for()
        await dialog.locator(".el-form-item", has_text="名称").locator("input").fill("老客满减")
        await dialog.locator(".el-form-item", has_text="人群分组").locator(".el-select").click()
        await page.locator(".el-select-dropdown__item:visible", has_text=segment.name).first.click()
        await tab.pick("outreach-coupon", coupon_name)
        await page.screenshot(path=str(tmp_path / "outreach-coupon.png"))
        await dialog.locator("button", has_text="保存草稿").click()
        await page.locator(".el-table__row", has_text="老客满减").locator(
            f"text=优惠券 #{template.id}").wait_for()
        saved = await Outreach.get(name="老客满减", segment_id=segment.id)
        assert saved.coupon_template_id == template.id and saved.voucher_title == ""

        # The occasions: a coupon instead of the birthday voucher, and one after each completed visit.
        await page.click("[data-test=coupon-rules]")
        await page.locator("[data-test=coupon-rules-editor]").wait_for()
        await tab.pick("rule-birthday-coupon", coupon_name)
        # The first list closes with an animation: wait until it is gone, or the next pick finds its item.
        await page.wait_for_function("() => ![...document.querySelectorAll('.el-select-dropdown')]"
                                     ".some((e) => e.offsetParent !== null)")
        await page.click("[data-test=rule-birthday-voucher]")
        await tab.pick("rule-visit-coupon", coupon_name)
        await page.screenshot(path=str(tmp_path / "coupon-rules.png"))
        await page.click("[data-test=coupon-rules-save]")
        await page.locator(".el-message", has_text="已保存赠券规则").wait_for()
        rules = {r.occasion.value: (r.coupon_template_id, r.with_voucher) for r in await CouponRule.all()}
        assert rules == {"birthday": (template.id, False), "after_visit": (template.id, False)}
    finally:
        await CouponRule.all().delete()


async def test_outreach_results_say_why_coupons_were_not_given(tab, tmp_path):
    """An outreach whose coupon template was switched off before it ran: its results dialog shows the coupons
    not given as 模板已停用 (template off), with the count, beside those issued; so does a recipient's card."""
    from datetime import datetime, time
    from zoneinfo import ZoneInfo

    from crm import outreach as outreach_service
    from crm import tasks
    from crm.models import Outreach
    from kernel import clock
    from kernel.wechat.miniprogram import SandboxMiniProgram
    from orders.product_models import CouponTemplate
    from tests.crm.factories import make_segment, only
    from tests.orders.shop_factories import make_template

    marker = await make_tag(name="沉睡" + secrets.token_hex(2), category="concern")
    tail = "s" + secrets.token_hex(2)  # a letter first: four digits would search the phone's last four
    members = [await make_customer(nickname="沉睡" + tail) for _ in range(3)]
    async with transaction() as conn:
        for member in members:
            await service.put_manual_tag(conn, member.id, marker.id, staff_id=None)
    segment = await make_segment({"groups": [only(marker.id)]}, name="沉睡唤醒" + secrets.token_hex(2))
    template = await make_template("cash_off", value_fen=1000, threshold_fen=0)
    name = "唤醒券" + secrets.token_hex(2)
    async with transaction() as conn:
        outreach = await outreach_service.create_outreach(
            conn, dict(name=name, segment_id=segment.id, coupon_template_id=template.id), staff_id=1)
        await outreach_service.schedule(conn, outreach.id, at=None)
    await CouponTemplate.filter(id=template.id).update(is_active=False)
    sh = ZoneInfo("Asia/Shanghai")
    clock.set_now(datetime.combine(datetime.now(sh).date(), time(10), tzinfo=sh))  # outside quiet hours
    try:
        assert await tasks.run_outreach({"miniprogram": SandboxMiniProgram()}, outreach.id) == "done"
    finally:
        clock.set_now(None)
    assert (await Outreach.get(id=outreach.id)).status.value == "done"

    staff = await make_staff("campaign", password=PASSWORD)
    await tab.login(staff.username, PASSWORD)
    page = tab.page
    await tab.visit("/crm/outreach")
    await page.click(f"[data-test=outreach-results-{outreach.id}]")
    results = page.locator("[data-test=outreach-results]")
    await results.wait_for()
    off = results.locator(".el-descriptions__cell", has_text="优惠券：模板已停用")
    await off.wait_for()
    # The dialog fades in: look at it (the screenshot) once the animation is over.
    await page.wait_for_function("() => !document.querySelector('.dialog-fade-enter-active')")
    await page.screenshot(path=str(tmp_path / "outreach-results.png"))
    text = await results.inner_text()
    assert "优惠券：模板已停用\n3" in text.replace("\t", "\n") or "优惠券：模板已停用 3" in text, text
    assert "已发优惠券" in text
    # A coupon-only outreach: no "已发券 0" (vouchers issued) beside its coupons, which staff read as none given.
    assert "已发券" not in text and "已发消息" not in text, text
    await page.keyboard.press("Escape")

    # A recipient's card says the same of their coupon, in its own 优惠券 column (the API left it out: 券 read —).
    await tab.visit("/crm/customers")
    await page.fill("input[data-test=filter-q]", tail)
    await page.press("input[data-test=filter-q]", "Enter")
    await page.locator(f"[data-test=card-open-{members[0].id}]").click()
    card = page.locator("[data-test=customer-card]")
    await card.locator(".el-tabs__item", has_text="触达").click()
    pane = card.locator(".el-tab-pane:visible")
    row = pane.locator(".el-table__row", has_text=name)
    await row.wait_for()
    headers = (await pane.locator(".el-table__header-wrapper th").all_inner_texts())
    cells = await row.locator("td").all_inner_texts()
    shown = dict(zip([h.strip() for h in headers], [c.strip() for c in cells]))
    assert (shown["券"], shown["优惠券"]) == ("—", "模板已停用"), shown
    await page.wait_for_function("() => document.getAnimations().every((a) => a.playState !== 'running')")
    await page.screenshot(path=str(tmp_path / "card-outreach-coupon.png"))


async def test_a_pc_on_utc_reads_the_clinic_time_and_why_an_outreach_skipped_each_customer(utc_tab, tmp_path):
    """A campaign member whose PC is set to UTC (the clinic is on Asia/Shanghai): an outreach run at 10:00
    clinic time reads 10:00, not 02:00, in its results' 统计窗口 and on a recipient's card; the card's 券, 消息
    and 跳过原因 and the results' skipped counts are in Chinese, and a WeChat refusal the console has no words
    for stays as it is."""
    from datetime import datetime, time, timedelta
    from zoneinfo import ZoneInfo

    from crm import outreach as outreach_service
    from crm import tasks
    from crm.models import CustomerTag, OutreachRecipient, TagKind
    from crm.settings import get_crm_settings
    from kernel import clock
    from kernel.settings import WeChatSettings
    from kernel.wechat.miniprogram import LiveMiniProgram
    from tests.crm.factories import make_segment, only
    from tests.fakes.wechat import FakeWeChat

    sh = ZoneInfo("Asia/Shanghai")
    day = datetime.now(sh).date() - timedelta(days=1)
    run_at = datetime.combine(day, time(10), tzinfo=sh)  # 02:00 UTC; outside quiet hours
    template = get_crm_settings().outreach_template_ids[0]
    marker = await make_tag(name="回访唤醒" + secrets.token_hex(2), category="concern")
    tail = "t" + secrets.token_hex(2)  # a letter first: four digits would search the phone's last four
    opted_out = await make_customer(nickname="退订" + tail)
    unsubscribed = await make_customer(nickname="未订阅" + tail)
    refused = await make_customer(nickname="被拒" + tail)
    for member in (opted_out, unsubscribed, refused):
        await CustomerTag.create(customer_id=member.id, tag_id=marker.id, source=TagKind.manual,
                                 created_at=run_at)
    async with transaction() as conn:
        await outreach_service.set_opt_out(conn, opted_out.id, True)
        # Our rows say `refused` accepted the template; WeChat has no acceptance left and answers 43101.
        await outreach_service.record_acceptances(conn, refused.id, [template])
    segment = await make_segment({"groups": [only(marker.id)]}, name="唤醒" + tail)
    async with transaction() as conn:
        outreach = await outreach_service.create_outreach(conn, dict(
            name="唤醒消息" + tail, segment_id=segment.id, voucher_title="回店礼", template_id=template,
            message_data={"thing1": "回店礼"}), staff_id=1)
        await outreach_service.schedule(conn, outreach.id, at=None)
    fake = FakeWeChat()
    fake.enforce_subscriptions = True
    await fake.start()
    adapter = LiveMiniProgram(WeChatSettings(mode="live", appid=fake.appid, secret=fake.secret,
                                             api_base=fake.base_url, timeout_seconds=3))
    clock.set_now(run_at)
    try:
        assert await tasks.run_outreach({"miniprogram": adapter}, outreach.id) == "done"
    finally:
        clock.set_now(None)
        await adapter.aclose()
        await fake.stop()
    reasons = dict(await OutreachRecipient.filter(outreach_id=outreach.id).values_list(
        "customer_id", "skip_reason"))
    assert reasons == {opted_out.id: "opted_out", unsubscribed.id: "no_consent", refused.id: "wechat_43101"}

    staff = await make_staff("campaign", password=PASSWORD)
    await utc_tab.login(staff.username, PASSWORD)
    page = utc_tab.page
    assert await page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") == "UTC"
    clinic_time = f"{day.isoformat()} 10:00"

    await utc_tab.visit("/crm/outreach")
    await page.click(f"[data-test=outreach-results-{outreach.id}]")
    results = page.locator("[data-test=outreach-results]")
    await results.locator(".el-descriptions__cell", has_text="跳过：未订阅该消息").wait_for()
    await page.wait_for_function("() => !document.querySelector('.dialog-fade-enter-active')")
    await page.screenshot(path=str(tmp_path / "outreach-results-utc.png"))
    text = (await results.inner_text()).replace("\t", "\n")
    assert f"{clinic_time} 起 {outreach.lift_days} 天" in text, text
    for label in ("跳过：已退订营销消息", "跳过：未订阅该消息", "跳过：wechat_43101"):
        assert f"{label}\n1" in text or f"{label} 1" in text, (label, text)
    assert "skipped_" not in text, text
    await page.keyboard.press("Escape")

    await utc_tab.visit("/crm/customers")
    await page.reload()  # the zone is kept with the session, as the token is, through a reload of the tab
    seen = {}
    for member in (opted_out, unsubscribed, refused):
        await page.fill("input[data-test=filter-q]", tail)
        await page.press("input[data-test=filter-q]", "Enter")
        await page.locator(f"[data-test=card-open-{member.id}]").click()
        card = page.locator("[data-test=customer-card]")
        await card.locator(".el-tabs__item", has_text="触达").click()
        row = card.locator(".el-tab-pane:visible .el-table__row", has_text="唤醒消息" + tail)
        await row.wait_for()
        seen[member.id] = await row.inner_text()
        if member is unsubscribed:
            # Looked at once the tabs and tags have finished moving.
            await page.wait_for_function(
                "() => document.getAnimations().every((a) => a.playState !== 'running')")
            await page.screenshot(path=str(tmp_path / "card-outreach-utc.png"))
        await page.click("[data-test=card-back]")
    assert "已退订营销消息" in seen[opted_out.id] and "未订阅该消息" in seen[unsubscribed.id], seen
    assert "wechat_43101" in seen[refused.id], seen
    assert all(clinic_time in shown and "opted_out" not in shown and "no_consent" not in shown
               for shown in seen.values()), seen
    # What each got, in the same words: the voucher given (issued), the message skipped or refused by WeChat.
    assert "已发放" in seen[unsubscribed.id] and "已跳过" in seen[unsubscribed.id], seen
    assert "已发放" in seen[refused.id] and "发送失败" in seen[refused.id], seen
    assert not any(key in shown for shown in seen.values() for key in ("issued", "skipped", "failed")), seen
