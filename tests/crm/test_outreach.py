"""Outreach: each voucher once per outreach and customer (a worker process killed with SIGKILL at a chunk
boundary, then the job run twice), stock respected, and subscribe messages never sent to the opted-out, the
over-cap, the non-consenting or the holdout. Messages go through the live adapter to a local fake of WeChat
that enforces subscriptions."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from crm import outreach as outreach_service
from crm import tasks
from crm.errors import UnknownMessageTemplate
from crm.models import MarketingProfile, MessageConsent, OutreachRecipient, OutreachStatus
from crm.outreach import in_holdout, record_acceptances, set_opt_out
from crm.partners import OUTREACH_VOUCHER_SOURCE
from crm.settings import get_crm_settings, override
from kernel import clock
from kernel.db import transaction
from kernel.outbox.models import OutboxMessage
from kernel.settings import WeChatSettings
from kernel.wechat.miniprogram import LiveMiniProgram
from points_mall.models import Voucher
from tests.crm.factories import make_segment, make_tag, only
from tests.factories import make_customer, run_worker
from tests.fakes.wechat import FakeWeChat

ROOT = Path(__file__).resolve().parents[2]
SH = ZoneInfo("Asia/Shanghai")
DAYTIME = datetime(2026, 5, 20, 10, 0, tzinfo=SH)
TEMPLATE = "tmpl-spring-offer"


@pytest.fixture
async def fake_wechat():
    fake = FakeWeChat()
    fake.enforce_subscriptions = True
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def adapter(fake_wechat):
    live = LiveMiniProgram(WeChatSettings(mode="live", appid=fake_wechat.appid, secret=fake_wechat.secret,
                                          api_base=fake_wechat.base_url, timeout_seconds=3))
    yield live
    await live.aclose()


async def _consenting(fake: FakeWeChat, tag_id: int, **overrides):
    customer = await make_customer(**overrides)
    from crm.models import CustomerTag, TagKind

    await CustomerTag.create(customer_id=customer.id, tag_id=tag_id, source=TagKind.manual, created_at=clock.now())
    async with transaction() as conn:
        await record_acceptances(conn, customer.id, [TEMPLATE])
    fake.accept_subscription(customer.openid, TEMPLATE)
    return customer


async def _draft(segment_id: int, **values):
    fields = dict(name="spring", segment_id=segment_id, voucher_title="Spring facial ¥100 off", template_id=TEMPLATE,
                  message_data={"thing1": "Spring offer", "time2": "2026-05-31"}, holdout_bp=3000)
    fields.update(values)
    async with transaction() as conn:
        outreach = await outreach_service.create_outreach(conn, fields, staff_id=1)
        await outreach_service.schedule(conn, outreach.id, at=None)
    return outreach


async def test_run_twice_and_killed_midway_issues_once_and_sends_only_where_allowed(redis, fake_wechat, adapter):
    clock.set_now(DAYTIME)
    marker = await make_tag()
    ok = [await _consenting(fake_wechat, marker.id) for _ in range(24)]
    opted_out = await _consenting(fake_wechat, marker.id)
    over_cap = await _consenting(fake_wechat, marker.id)
    no_consent = await make_customer()
    from crm.models import CustomerTag, TagKind

    await CustomerTag.create(customer_id=no_consent.id, tag_id=marker.id, source=TagKind.manual, created_at=DAYTIME)
    async with transaction() as conn:
        await set_opt_out(conn, opted_out.id, True)
    await MarketingProfile.bulk_create([MarketingProfile(customer_id=over_cap.id)], ignore_conflicts=True)
    await MarketingProfile.filter(customer_id=over_cap.id).update(last_marketing_at=DAYTIME - timedelta(days=2))
    segment = await make_segment({"groups": [only(marker.id)]})
    outreach = await _draft(segment.id)
    everyone = [*ok, opted_out, over_cap, no_consent]
    openid = {c.id: c.openid for c in everyone}
    holdout = {c.id for c in everyone if in_holdout(outreach.id, c.id, 3000)}
    assert holdout and len(holdout) < len(everyone)

    # Chunks of 3 recipients in customer order (the recipients are written in member order). The worker
    # process is killed at the first send of the first chunk from the 4th on that claims a message: that
    # chunk has committed (vouchers issued, messages claimed, consent spent), nothing of it is sent.
    chunk = 3
    in_order = sorted(c.id for c in everyone)
    should_get = {c.id for c in ok} - holdout
    kill_chunk = next(i for i in range(3, len(in_order) // chunk + 1)
                      if should_get & set(in_order[i * chunk:(i + 1) * chunk]))
    kill_at = next(c for c in in_order[kill_chunk * chunk:(kill_chunk + 1) * chunk] if c in should_get)
    killed = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.crm.outreach_worker_process", str(outreach.id), DAYTIME.isoformat(),
        fake_wechat.base_url, openid[kill_at], cwd=ROOT,
        # The process is the same clinic: the same chunk size and the same templates the clinic sends (a run
        # checks its template against that list, and the test's own list is an in-process override).
        env={**os.environ, "CRM_OUTREACH_CHUNK": str(chunk),
             "CRM_OUTREACH_TEMPLATE_IDS": ",".join(get_crm_settings().outreach_template_ids)},
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(killed.communicate(), timeout=120)
    assert killed.returncode == -signal.SIGKILL, stderr.decode()[-2000:]

    # What the killed process left: the chunks before the kill handled and their messages sent, the killed
    # chunk handled with its messages claimed and unsent, the chunks after it untouched.
    state = {r.customer_id: r for r in await OutreachRecipient.filter(outreach_id=outreach.id)}
    before, at_kill = in_order[:kill_chunk * chunk], in_order[kill_chunk * chunk:(kill_chunk + 1) * chunk]
    after = in_order[(kill_chunk + 1) * chunk:]
    assert all(state[c].state == "handled" for c in before + at_kill)
    assert all(state[c].state == "pending" for c in after)
    sent_before = {m["touser"] for m in fake_wechat.subscribe_messages}
    assert sent_before == {openid[c] for c in before if c in should_get}
    lost = {c for c in at_kill if c in should_get}
    assert {c for c in at_kill if state[c].message_outcome == "claimed"} == lost
    await outreach.refresh_from_db()
    assert outreach.status == OutreachStatus.running

    # Then as arq would after a lost worker: the same job again, twice, by burst workers.
    with override(outreach_chunk=chunk):
        for _ in range(2):
            await redis.enqueue_job("crm.run_outreach", outreach.id, _queue_name=_queue())
            worker = await run_worker(redis, ctx={"miniprogram": adapter})
            assert worker.jobs_failed == 0

    rows = {r.customer_id: r for r in await OutreachRecipient.filter(outreach_id=outreach.id)}
    assert set(rows) == {c.id for c in everyone}
    assert {c for c, r in rows.items() if r.holdout} == holdout
    vouchers = Counter(await Voucher.filter(source_type=OUTREACH_VOUCHER_SOURCE,
                                            source_id__startswith=f"{outreach.id}:").values_list("customer_id", flat=True))
    # Vouchers: once each, to every member outside the holdout who has not opted out (consent is for messages).
    entitled = {c.id for c in everyone} - holdout - {opted_out.id}
    assert dict(vouchers) == {c: 1 for c in entitled}

    sent_to = Counter(m["touser"] for m in fake_wechat.subscribe_messages)
    forbidden = {openid[c] for c in holdout | {opted_out.id, over_cap.id, no_consent.id}}
    assert not forbidden & set(sent_to)
    assert all(n == 1 for n in sent_to.values())
    assert fake_wechat.refused == []  # WeChat never had to refuse a message for want of consent
    # At most once: the messages claimed in the killed chunk were lost, never sent twice; the rest got theirs.
    assert {c for c, r in rows.items() if r.message_outcome == "claimed"} == lost
    assert set(sent_to) == {openid[c] for c in should_get - lost}
    reasons = {c: r.skip_reason for c, r in rows.items() if c not in holdout}
    if opted_out.id not in holdout:
        assert reasons[opted_out.id] == "opted_out"
    if over_cap.id not in holdout:
        assert reasons[over_cap.id] == "over_cap"
    if no_consent.id not in holdout:
        assert reasons[no_consent.id] == "no_consent"
    await outreach.refresh_from_db()
    assert outreach.status == OutreachStatus.done
    assert outreach.vouchers_issued == len(entitled)


def _queue() -> str:
    from kernel.settings import get_settings

    return get_settings().redis.queue_name


async def test_stock_is_respected_by_runs_racing(adapter):
    clock.set_now(DAYTIME)
    marker = await make_tag()
    from crm.models import CustomerTag, TagKind

    members = [await make_customer() for _ in range(12)]
    for c in members:
        await CustomerTag.create(customer_id=c.id, tag_id=marker.id, source=TagKind.manual, created_at=DAYTIME)
    segment = await make_segment({"groups": [only(marker.id)]})
    outreach = await _draft(segment.id, template_id="", message_data={}, holdout_bp=0, voucher_stock=5)
    with override(outreach_chunk=2):
        await asyncio.gather(*[tasks.run_outreach({"miniprogram": adapter}, outreach.id) for _ in range(4)])
        await tasks.run_outreach({"miniprogram": adapter}, outreach.id)
    issued = await Voucher.filter(source_type=OUTREACH_VOUCHER_SOURCE, source_id__startswith=f"{outreach.id}:").count()
    assert issued == 5
    outcomes = Counter(await OutreachRecipient.filter(outreach_id=outreach.id).values_list("voucher_outcome", flat=True))
    assert outcomes == {"issued": 5, "no_stock": 7}


async def test_no_message_at_night_the_run_waits_for_the_morning(adapter, fake_wechat):
    night = datetime(2026, 5, 20, 22, 30, tzinfo=SH)
    clock.set_now(night)
    marker = await make_tag()
    await _consenting(fake_wechat, marker.id)
    segment = await make_segment({"groups": [only(marker.id)]})
    outreach = await _draft(segment.id, holdout_bp=0)
    assert await tasks.run_outreach({"miniprogram": adapter}, outreach.id) == "deferred"
    assert fake_wechat.subscribe_messages == []
    assert not await OutreachRecipient.filter(outreach_id=outreach.id, state="handled").exists()
    deferred = await OutboxMessage.filter(job_name="crm.run_outreach", args=[outreach.id]).order_by("-id").first()
    assert deferred.run_at == datetime(2026, 5, 21, 9, 0, tzinfo=SH)
    clock.set_now(datetime(2026, 5, 21, 9, 0, tzinfo=SH))
    assert await tasks.run_outreach({"miniprogram": adapter}, outreach.id) == "done"
    assert len(fake_wechat.subscribe_messages) == 1
    # The deferred row belongs to this test's invented night in the past: no later relay should meet it.
    await OutboxMessage.filter(job_name="crm.run_outreach", args=[outreach.id]).delete()


@pytest.mark.parametrize("hour, quiet", [(8, True), (9, False), (20, False), (21, True), (0, True)])
def test_quiet_hours_in_clinic_time(hour, quiet):
    instant = datetime(2026, 5, 20, hour, 59 if quiet else 0, tzinfo=SH)
    assert (outreach_service.quiet_until(instant) is not None) is quiet


async def test_a_template_the_clinic_no_longer_sends_stops_the_messages_of_a_running_outreach(adapter, fake_wechat):
    """The operator takes the outreach's template out of `CRM_OUTREACH_TEMPLATE_IDS` after it was scheduled: the
    run gives the gift but sends no message, records `template_off` per recipient, and spends no consent credit
    and no weekly cap; scheduling another outreach naming it is refused naming `template_id`."""
    clock.set_now(DAYTIME)
    marker = await make_tag()
    customers = [await _consenting(fake_wechat, marker.id) for _ in range(3)]
    segment = await make_segment({"groups": [only(marker.id)]})
    outreach = await _draft(segment.id, holdout_bp=0)  # scheduled while the clinic sends TEMPLATE
    async with transaction() as conn:
        draft = await outreach_service.create_outreach(conn, dict(
            name="later", segment_id=segment.id, template_id=TEMPLATE, message_data={"thing1": "x"}), staff_id=1)
    ids = [c.id for c in customers]
    with override(outreach_template_ids=("tmpl-a",)):  # the operator removed it
        assert await tasks.run_outreach({"miniprogram": adapter}, outreach.id) == "done"
    assert fake_wechat.subscribe_messages == []
    rows = await OutreachRecipient.filter(outreach_id=outreach.id).order_by("customer_id")
    assert [(r.voucher_outcome, r.message_outcome, r.skip_reason) for r in rows] == [
        ("issued", "skipped", "template_off")] * 3
    credits = await MessageConsent.filter(customer_id__in=ids, template_id=TEMPLATE).values_list("credits", flat=True)
    assert list(credits) == [1, 1, 1]
    assert not await MarketingProfile.filter(customer_id__in=ids, last_marketing_at__isnull=False).exists()
    with override(outreach_template_ids=("tmpl-a",)):
        async with transaction() as conn:
            with pytest.raises(UnknownMessageTemplate) as refused:
                await outreach_service.schedule(conn, draft.id, at=None)
        assert refused.value.detail.get("field") == "template_id"
