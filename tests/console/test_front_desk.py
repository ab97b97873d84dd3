"""Front desk at a 1024×768 reception tablet: mark an arrival from the queue, redeem a voucher once."""

from __future__ import annotations

import secrets
from datetime import timedelta

from booking.bookings import book
from booking.models import Booking, BookingStatus
from kernel import clock
from kernel.db import transaction
from points_mall.models import Voucher, VoucherStatus
from points_mall.vouchers import issue_vouchers
from tests.booking.factories import make_branch, make_department, make_slot
from tests.factories import make_customer, make_staff

PASSWORD = "reception tablet jingan 7"


async def booked_today(nickname: str):
    branch = await make_branch(name="静安院区 " + secrets.token_hex(2))
    department = await make_department(name="皮肤科")
    customer = await make_customer(nickname=nickname, phone="13800138000")
    # A visit starting in a minute, booked earlier (the booking rule wants two hours' notice).
    slot = await make_slot(branch=branch, department=department, starts_in=timedelta(minutes=1))
    clock.set_now(clock.now() - timedelta(hours=3))
    try:
        async with transaction() as conn:
            booking = await book(conn, customer_id=customer.id, slot_id=slot.id)
    finally:
        clock.set_now(None)
    return branch, customer, booking


async def test_front_desk_marks_an_arrival_from_todays_queue(tab):
    nickname = "顾客" + secrets.token_hex(3)
    branch, _, booking = await booked_today(nickname)
    desk = await make_staff("front_desk", password=PASSWORD)
    await tab.login(desk.username, PASSWORD)
    page = tab.page
    await page.wait_for_selector("text=今日队列")
    await tab.pick("filter-branch_id", branch.name)
    row = page.locator(".el-table__row", has_text=nickname)
    await row.wait_for()
    await row.locator(f"[data-test=arrive-{booking.id}]").click()
    await page.locator(".el-table__row", has_text=nickname).locator(".el-tag", has_text="已到院").wait_for()
    assert (await Booking.get(id=booking.id)).status == BookingStatus.arrived


async def test_front_desk_redeems_a_voucher_and_a_second_redemption_is_refused(tab):
    branch = await make_branch(name="徐汇院区 " + secrets.token_hex(2))
    customer = await make_customer(nickname="顾客" + secrets.token_hex(3))
    async with transaction() as conn:
        [voucher] = await issue_vouchers(
            conn, customer_id=customer.id, source_type="group_order", source_id=secrets.token_hex(6),
            title="补水护理", quantity=1, valid_until=clock.now() + timedelta(days=30),
        )
    desk = await make_staff("front_desk", password=PASSWORD)
    await tab.login(desk.username, PASSWORD)
    page = tab.page
    await tab.visit("/frontdesk/vouchers")
    await tab.pick("voucher-branch", branch.name)
    await page.fill("input[data-test=voucher-code]", voucher.code)
    await page.click("[data-test=voucher-lookup]")
    card = page.locator("[data-test=voucher-card]")
    await card.locator("text=补水护理").wait_for()
    await card.locator("text=未使用").wait_for()
    await page.click("[data-test=voucher-redeem]")
    await card.locator("text=已核销").wait_for()
    stored = await Voucher.get(id=voucher.id)
    assert stored.status == VoucherStatus.redeemed and stored.redeemed_branch_id == branch.id

    # The desk tries again: the card already says why not, and the API's refusal is shown as it comes.
    await page.locator("[data-test=voucher-refusal]").wait_for()
    await page.click("[data-test=voucher-redeem]")
    refusal = page.locator("[data-test=voucher-card] [data-test=refusal]")
    await refusal.wait_for()
    assert "redeemed" in (await refusal.inner_text()).lower() or "核销" in await refusal.inner_text()
    assert (await Voucher.get(id=voucher.id)).redeemed_at == stored.redeemed_at
