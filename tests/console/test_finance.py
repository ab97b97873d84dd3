"""Finance: the maker creates a batch and cannot approve it, a second finance member approves, the CSV total is the screen's."""

from __future__ import annotations

import csv
import io

from campaigns.referrals.models import SettlementBatch
from tests.campaigns.referrals.test_settlement import payable_reward
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
