"""Booking's jobs with real burst workers: a reminder is sent once, follow-ups are created once,
no-shows are marked once, whatever runs twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from arq import Retry

from booking import service
from booking import tasks as booking_tasks
from booking.models import Booking, BookingStatus, FollowUpTask, Notification
from booking.settings import override
from kernel import clock
from kernel.db import transaction
from kernel.outbox import enqueue
from kernel.wechat.miniprogram import SandboxMiniProgram, WeChatUnavailable
from tests.booking.factories import make_slot
from tests.factories import customer_headers, make_customer, run_worker
from tests.orders.factories import deadlock


@pytest.fixture(autouse=True)
async def drained_queue(redis):
    """Run whatever earlier tests left in the outbox first, so job counts below are this test's."""
    await run_worker(redis)


async def _book(client, customer, **slot_kwargs) -> dict:
    slot = await make_slot(**slot_kwargs)
    r = await client.post("/app/bookings", json={"slot_id": slot.id}, headers=customer_headers(customer))
    assert r.status_code == 201, r.text
    return r.json()


async def test_reminder_is_sent_once_however_often_the_jobs_run(client, redis):
    customer = await make_customer()
    due = await _book(client, customer, starts_in=timedelta(hours=20))
    not_yet = await _book(client, customer, starts_in=timedelta(days=4))
    silent = await _book(client, await make_customer(), starts_in=timedelta(hours=20))
    await Booking.filter(id=silent["id"]).update(remind=False)
    async with transaction() as conn:
        for _ in range(2):
            await enqueue(conn, "booking.send_due_reminders")
            await enqueue(conn, "booking.send_reminder", due["id"])
        await enqueue(conn, "booking.send_reminder", silent["id"])
    wechat = SandboxMiniProgram()
    worker = await run_worker(redis, ctx={"miniprogram": wechat})
    assert worker.jobs_failed == 0
    again = await run_worker(redis, ctx={"miniprogram": wechat}, functions=None)
    assert again.jobs_failed == 0
    async with transaction() as conn:
        await enqueue(conn, "booking.send_due_reminders")
    await run_worker(redis, ctx={"miniprogram": wechat})

    mine = [m for m in wechat.sent if m.openid == customer.openid]
    assert len(mine) == 1
    assert mine[0].page == f"pages/booking/detail?id={due['id']}"
    assert mine[0].data["time2"] == due["local_start"][:16].replace("T", " ")
    notes = await Notification.filter(booking_id=due["id"])
    assert len(notes) == 1 and notes[0].status == "sent"
    assert not await Notification.filter(booking_id__in=[not_yet["id"], silent["id"]]).exists()


class FlakyWeChat(SandboxMiniProgram):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def send_subscribe_message(self, openid, template_id, data, page=""):
        if self.failures:
            self.failures -= 1
            raise WeChatUnavailable(errcode=-1)
        await super().send_subscribe_message(openid, template_id, data, page)


async def test_failed_reminder_is_retried_then_sent_once(client, redis):
    customer = await make_customer()
    booking = await _book(client, customer, starts_in=timedelta(hours=10))
    wechat = FlakyWeChat(failures=1)
    for _ in range(3):
        async with transaction() as conn:
            await enqueue(conn, "booking.send_reminder", booking["id"])
        await run_worker(redis, ctx={"miniprogram": wechat})
    note = await Notification.get(booking_id=booking["id"])
    assert note.status == "sent" and note.attempts == 2 and note.last_error
    assert len([m for m in wechat.sent if m.openid == customer.openid]) == 1


async def test_follow_ups_are_created_once(client, redis):
    customer = await make_customer()
    booking = await _book(client, customer, starts_in=timedelta(days=3))
    clock.set_now(clock.now() + timedelta(days=3, minutes=5))
    # Staff tokens last 12 hours, so the front desk's steps go through the service here.
    async with transaction() as conn:
        await service.transition(conn, booking["id"], "arrive")
    async with transaction() as conn:
        completed = await service.transition(conn, booking["id"], "complete")  # enqueues the follow-ups
    assert completed.status == BookingStatus.completed
    # A second delivery of the same job, as arq may do.
    async with transaction() as conn:
        await enqueue(conn, "booking.create_follow_ups", booking["id"])
    with override(follow_up_days=(1, 3, 7, 15, 30)):
        worker = await run_worker(redis)
        await run_worker(redis)
    assert worker.jobs_failed == 0
    tasks = await FollowUpTask.filter(booking_id=booking["id"]).order_by("days_after")
    assert [t.days_after for t in tasks] == [1, 3, 7, 15, 30]
    visit_day = clock.local_today()
    assert [t.due_date for t in tasks] == [visit_day + timedelta(days=d) for d in (1, 3, 7, 15, 30)]
    assert all(t.status == "open" and t.customer_id == customer.id for t in tasks)


async def test_a_deadlocked_booking_job_runs_again_and_a_lasting_deadlock_goes_back_to_arq(client, monkeypatch):
    """Booking's jobs ran in a plain transaction: one InnoDB deadlock failed an outbox-delivered
    booking.create_follow_ups for good (nothing delivers it again), and the visit had no follow-ups."""
    customer = await make_customer()
    booking = await _book(client, customer, starts_in=timedelta(days=3))
    clock.set_now(clock.now() + timedelta(days=3, minutes=5))
    async with transaction() as conn:
        await service.transition(conn, booking["id"], "arrive")
        await service.transition(conn, booking["id"], "complete")
    real = service.create_follow_ups
    victims = {"left": 1}

    async def deadlocked_first(conn, booking_id):
        if victims["left"]:
            victims["left"] -= 1
            raise deadlock()
        return await real(conn, booking_id)

    monkeypatch.setattr(service, "create_follow_ups", deadlocked_first)
    with override(follow_up_days=(1, 3)):
        assert await booking_tasks.create_follow_ups({"job_try": 1}, booking["id"]) == 2
        victims["left"] = 100
        with pytest.raises(Retry):
            await booking_tasks.create_follow_ups({"job_try": 1}, booking["id"])
    assert await FollowUpTask.filter(booking_id=booking["id"]).count() == 2


async def test_no_show_job_marks_only_unarrived_bookings_of_past_days(client, redis):
    missed = await _book(client, await make_customer(), starts_in=timedelta(days=1))
    came = await _book(client, await make_customer(), starts_in=timedelta(days=1))
    future = await _book(client, await make_customer(), starts_in=timedelta(days=5))
    clock.set_now(clock.now() + timedelta(days=1, minutes=10))
    async with transaction() as conn:
        await service.transition(conn, came["id"], "arrive")
    clock.set_now(clock.now() + timedelta(days=1))  # the visit's local day is over
    async with transaction() as conn:
        await enqueue(conn, "booking.mark_no_shows")
        await enqueue(conn, "booking.mark_no_shows")
    worker = await run_worker(redis)
    assert worker.jobs_failed == 0
    statuses = {b.id: b.status for b in await Booking.filter(id__in=[missed["id"], came["id"], future["id"]])}
    assert statuses == {missed["id"]: BookingStatus.no_show, came["id"]: BookingStatus.arrived,
                        future["id"]: BookingStatus.booked}
    stamped = (await Booking.get(id=missed["id"])).no_show_at
    await run_worker(redis, functions=None)
    async with transaction() as conn:
        await enqueue(conn, "booking.mark_no_shows")
    await run_worker(redis)
    assert (await Booking.get(id=missed["id"])).no_show_at == stamped
