"""Finance: the maker creates a batch and cannot approve it, a second finance member approves, the CSV total is the
screen's; a report's range, a new batch and the prepaid liability start on the clinic's day, whatever the PC's zone."""

from __future__ import annotations

import csv
import io
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from campaigns.referrals.models import SettlementBatch
from tests.booking.factories import make_branch
from tests.campaigns.referrals.test_settlement import payable_reward
from tests.console.shots import shot
from tests.factories import make_customer, make_staff

PASSWORD = "ledgers balance on fridays 9"


async def test_finance_batch_maker_cannot_approve_a_second_member_does_and_the_csv_matches(tab):
    for amount in (12345, 678):
        await payable_reward(await make_customer(nickname="推荐人"), amount)
    maker = await make_staff("finance", password=PASSWORD)
    checker = await make_staff("finance", password=PASSWORD)
    page = tab.page

    await tab.login(maker.username, PASSWORD)
    await tab.visit("/finance/settlements")
    await page.click("[data-test=batch-new]")
    await page.click("[data-test=batch-create]")
    note = page.locator("[data-test=maker-note]")
    await note.wait_for()
    assert "另一位财务人员" in await note.inner_text()
    assert await page.locator("[data-test=batch-approve]").is_disabled()
    batch = await SettlementBatch.filter(created_by_id=maker.id).get()
    assert batch.status == "draft"
    await page.keyboard.press("Escape")  # close the batch
    await tab.logout()

    await tab.login(checker.username, PASSWORD)
    await tab.visit("/finance/settlements")
    await page.click(f"[data-test=batch-open-{batch.id}]")
    await page.locator("[data-test=maker-note]").wait_for(state="detached")
    await page.click("[data-test=batch-approve]")
    await page.locator(".el-dialog").locator("text=已审批").first.wait_for()
    await batch.refresh_from_db()
    assert batch.status == "approved" and batch.approved_by_id == checker.id

    shown = await page.inner_text("[data-test=batch-total]")
    async with page.expect_download() as waiting:
        await page.click("[data-test=batch-csv]")
    download = await waiting.value
    rows = list(csv.reader(io.StringIO(open(await download.path(), encoding="utf-8-sig").read())))
    header, total = rows[0], rows[-1]
    assert total[0] == "TOTAL"
    assert shown == f"¥{total[header.index('net_yuan')]}"
    assert int(total[header.index("net_fen")]) == batch.total_fen
    assert download.suggested_filename == f"settlement-{batch.id}.csv"


async def _days_the_screens_start_on(tab, moment: datetime, label: str) -> dict[str, str]:
    """Log a finance member in on a PC whose clock reads `moment`, and read the day each screen starts on:
    a report's range (its end), a new batch's 截至日期 and the prepaid liability's date."""
    finance = await make_staff("finance", password=PASSWORD)
    page = tab.page
    await page.clock.set_system_time(moment)
    await tab.login(finance.username, PASSWORD)
    assert await page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") == "UTC"
    assert await page.evaluate("new Date().toISOString().slice(0, 10)") == moment.date().isoformat()
    await tab.visit("/reports/points")
    figures = page.locator("[data-test=report-figures]")
    await figures.wait_for()
    days = {"report": await figures.get_attribute("data-to")}
    await shot(page, f"{label}-report")
    await tab.visit("/finance/settlements")
    await page.click("[data-test=batch-new]")
    days["batch"] = await page.locator(".el-dialog .el-date-editor input").input_value()
    await shot(page, f"{label}-batch")
    await page.keyboard.press("Escape")
    await tab.visit("/finance/stored-value")
    await page.locator("[data-test=liability-total]").wait_for()
    days["liability"] = await page.locator(".toolbar .el-date-editor input").input_value()
    await shot(page, f"{label}-liability")
    return days


async def test_a_pc_on_utc_opens_finance_screens_on_the_clinics_day(utc_tab):
    """At 20:00 UTC it is already 04:00 the next day at the clinic (Asia/Shanghai): a finance member whose PC
    is set to UTC gets the clinic's day, not the PC's, as a report's last day, a new batch's 截至日期 and the
    prepaid liability's date."""
    moment = datetime.combine(datetime.now(timezone.utc).date() - timedelta(days=2), time(20), tzinfo=timezone.utc)
    clinic_day = moment.astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
    assert clinic_day != moment.date().isoformat()
    days = await _days_the_screens_start_on(utc_tab, moment, "finance-utc-pc")
    assert days == {"report": clinic_day, "batch": clinic_day, "liability": clinic_day}


async def test_a_clinic_not_on_shanghai_time_opens_finance_screens_on_its_own_day(tokyo_clinic_utc_tab):
    """A clinic whose CLINIC_TIMEZONE is Asia/Tokyo (its branches are on Shanghai): at 15:30 UTC it is 00:30
    the next day there, while Shanghai and the PC are still on the day before. The screens take the zone the
    login answered, not a zone written into the page nor a branch's."""
    await make_branch()  # a branch on Asia/Shanghai, so a branch's day is not the clinic's
    moment = datetime.combine(datetime.now(timezone.utc).date() - timedelta(days=2), time(15, 30),
                              tzinfo=timezone.utc)
    clinic_day = moment.astimezone(ZoneInfo("Asia/Tokyo")).date().isoformat()
    assert clinic_day != moment.astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
    days = await _days_the_screens_start_on(tokyo_clinic_utc_tab, moment, "finance-tokyo-clinic")
    assert days == {"report": clinic_day, "batch": clinic_day, "liability": clinic_day}
