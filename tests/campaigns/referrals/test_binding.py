"""Binding at login: first touch wins, the binding validity, every refusal reason recorded and shown to staff."""

from __future__ import annotations

import asyncio
import base64
import secrets
from datetime import timedelta

from campaigns.referrals.models import AttemptOutcome, BindingAttempt, ReferralBinding, ReferralProgram
from kernel import clock
from kernel.db import transaction
from booking.bookings import book
from points_mall.service import record_consumption
from tests.booking.factories import make_slot
from tests.campaigns.referrals.factories import login, make_program
from tests.factories import customer_headers, make_customer, make_staff, staff_headers


async def last_attempt(referee_id: int) -> BindingAttempt:
    return await BindingAttempt.filter(referee_id=referee_id).order_by("-id").first()


async def test_login_with_a_code_binds_and_first_touch_wins(client):
    program = await make_program()
    first, second = await login(client), await login(client)
    friend_name = "friend-" + secrets.token_hex(5)
    friend = await login(client, friend_name, referral_code=first.referral_code.lower())  # codes are case-blind
    binding = await ReferralBinding.get(referee_id=friend.id)
    assert binding.referrer_id == first.id and binding.program_id == program.id
    assert binding.expires_at - binding.bound_at == timedelta(days=program.binding_valid_days)
    assert (await last_attempt(friend.id)).outcome == AttemptOutcome.bound

    # The same link opened again records nothing new.
    await login(client, friend_name, referral_code=first.referral_code)
    assert await BindingAttempt.filter(referee_id=friend.id).count() == 1

    # The same friend logs in again with another code: the first referrer keeps the friend.
    again = await login(client, friend_name, referral_code=second.referral_code)
    assert again.id == friend.id
    assert (await ReferralBinding.get(referee_id=friend.id)).referrer_id == first.id
    refused = await last_attempt(friend.id)
    assert refused.outcome == AttemptOutcome.refused and refused.reason == "already_bound"
    assert refused.referrer_id == second.id


async def test_every_refusal_reason_is_recorded_and_visible_to_staff(client):
    program = await make_program()
    referrer = await login(client)
    reasons: dict[str, int] = {}

    # A code nobody owns.
    stranger = await login(client, referral_code="ZZZZ9999")
    reasons["unknown_code"] = stranger.id

    # A customer using their own code.
    name = "self-" + secrets.token_hex(5)
    selfish = await login(client, name)
    await login(client, name, referral_code=selfish.referral_code)
    reasons["self_referral"] = selfish.id

    # A customer who already paid for something was not brought by the referral.
    consumer_name = "consumer-" + secrets.token_hex(5)
    consumer = await login(client, consumer_name)
    async with transaction() as conn:
        await record_consumption(conn, customer_id=consumer.id, amount_fen=30000, source="front_desk",
                                 external_ref="fd-" + secrets.token_hex(6))
    await login(client, consumer_name, referral_code=referrer.referral_code)
    reasons["referee_has_history"] = consumer.id

    # A customer who already booked a visit (booking.service.customer_has_booking).
    booker_name = "booker-" + secrets.token_hex(5)
    booker = await login(client, booker_name)
    slot = await make_slot()
    async with transaction() as conn:
        await book(conn, customer_id=booker.id, slot_id=slot.id, remind=False)
    await login(client, booker_name, referral_code=referrer.referral_code)

    # A loop: the referrer's own referrer (who never consumed) tries to join through the referrer.
    top_name = "top-" + secrets.token_hex(5)
    top = await login(client, top_name)
    middle = await login(client, referral_code=top.referral_code)
    await login(client, top_name, referral_code=middle.referral_code)
    reasons["loop"] = top.id
    # ... and a longer loop: top → middle → bottom, then top through bottom.
    bottom = await login(client, referral_code=middle.referral_code)
    await login(client, top_name, referral_code=bottom.referral_code)

    # No active program.
    await ReferralProgram.filter(id=program.id).update(is_active=False)
    late = await login(client, referral_code=referrer.referral_code)
    reasons["program_inactive"] = late.id

    reasons["booking"] = booker.id
    for reason, referee_id in reasons.items():
        attempt = await last_attempt(referee_id)
        expected = "referee_has_history" if reason == "booking" else reason
        assert attempt.outcome == AttemptOutcome.refused and attempt.reason == expected, (reason, attempt.reason)
        assert not await ReferralBinding.filter(referee_id=referee_id).exists()
    loops = await BindingAttempt.filter(referee_id=top.id, reason="loop").count()
    assert loops == 2
    assert not await ReferralBinding.filter(referee_id=top.id).exists()

    # Staff see the refusals with their reasons; a customer token does not reach them.
    staff = await make_staff("campaign")
    listed = await client.get(
        "/admin/referrals/attempts", params={"outcome": "refused", "limit": 200}, headers=staff_headers(staff)
    )
    assert listed.status_code == 200, listed.text
    seen = {(item["referee_id"], item["reason"]) for item in listed.json()["items"]}
    for reason, referee_id in reasons.items():
        assert (referee_id, "referee_has_history" if reason == "booking" else reason) in seen
    by_reason = await client.get(
        "/admin/referrals/attempts", params={"reason": "loop"}, headers=staff_headers(staff)
    )
    assert {i["reason"] for i in by_reason.json()["items"]} == {"loop"}
    assert (await client.get("/admin/referrals/attempts", headers=customer_headers(referrer))).status_code == 403


async def test_an_expired_unqualified_binding_can_be_taken_over_once(client):
    program = await make_program(binding_valid_days=10, qualify_within_days=10)
    first, second, third = await login(client), await login(client), await login(client)
    name = "drifter-" + secrets.token_hex(5)
    friend = await login(client, name, referral_code=first.referral_code)

    clock.set_now(clock.now() + timedelta(days=program.binding_valid_days, minutes=1))
    await login(client, name, referral_code=second.referral_code)
    binding = await ReferralBinding.get(referee_id=friend.id)
    assert binding.referrer_id == second.id
    assert (await last_attempt(friend.id)).outcome == AttemptOutcome.rebound
    # Within the new validity the new referrer keeps the friend.
    await login(client, name, referral_code=third.referral_code)
    assert (await ReferralBinding.get(referee_id=friend.id)).referrer_id == second.id


async def test_concurrent_logins_with_different_codes_bind_once(client):
    await make_program()
    referrers = [await login(client) for _ in range(6)]
    name = "popular-" + secrets.token_hex(5)
    await login(client, name)  # the customer exists; now many codes arrive at once
    responses = await asyncio.gather(
        *[client.post("/app/auth/login", json={"code": f"sandbox:{name}", "referral_code": r.referral_code})
          for r in referrers]
    )
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    customer_id = responses[0].json()["customer_id"]
    assert await ReferralBinding.filter(referee_id=customer_id).count() == 1
    outcomes = await BindingAttempt.filter(referee_id=customer_id).values_list("outcome", "reason")
    assert sorted(outcomes).count((AttemptOutcome.bound, None)) == 1
    assert len(outcomes) == len(referrers)
    assert all(reason == "already_bound" for outcome, reason in outcomes if outcome == AttemptOutcome.refused)


async def test_my_code_share_path_and_qr_code(client, app):
    program = await make_program(name="Spring friends")
    me = await login(client)
    response = await client.get("/app/referrals/me", headers=customer_headers(me))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["referral_code"] == me.referral_code
    assert body["share_path"] == f"/pages/index/index?referral_code={me.referral_code}"
    assert base64.b64decode(body["qr_code_png_base64"]).startswith(b"\x89PNG")
    assert body["program"]["id"] == program.id and body["program"]["name"] == "Spring friends"
    # The sandbox adapter recorded the wxacode.getUnlimited call with scene = the code.
    assert (me.referral_code, "pages/index/index") in app.state.miniprogram.qr_codes
    calls = len(app.state.miniprogram.qr_codes)
    again = await client.get("/app/referrals/me", headers=customer_headers(me))
    assert again.json()["qr_code_png_base64"] == body["qr_code_png_base64"]
    assert len(app.state.miniprogram.qr_codes) == calls  # cached: WeChat rate-limits getUnlimited


async def test_friends_list_masks_names_and_shows_status(client):
    await make_program()
    me = await login(client)
    friend = await login(client, referral_code=me.referral_code)
    await friend.filter(id=friend.id).update(nickname="林小美")
    other = await make_customer()
    response = await client.get("/app/referrals", headers=customer_headers(me))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 1
    item = body["items"][0]
    assert item["masked_name"] == "林**" and item["status"] == "invited" and item["reward_status"] is None
    assert "referee_id" not in item and "林小美" not in response.text
    assert body["totals"]["pending_fen"] == 0
    # Another customer sees none of my friends.
    theirs = await client.get("/app/referrals", headers=customer_headers(other))
    assert theirs.json()["total"] == 0


async def test_data_export_lists_referrals_and_erasure_voids_unpaid_rewards(client, redis):
    from campaigns.referrals.models import ReferralReward
    from tests.campaigns.referrals.factories import consumption_recorded
    from tests.factories import run_worker

    await make_program()
    referrer = await login(client)
    friend = await login(client, referral_code=referrer.referral_code)
    await friend.filter(id=friend.id).update(nickname="Secret Name")
    await consumption_recorded(friend.id, 20000)
    await run_worker(redis)

    exported = await client.get("/app/me/data-export", headers=customer_headers(referrer))
    assert exported.status_code == 200, exported.text
    mine = exported.json()["campaigns.referrals"]
    assert [f["masked_name"] for f in mine["friends"]] == ["S**"] and "Secret Name" not in exported.text
    assert [(r["level"], r["amount_fen"], r["status"]) for r in mine["rewards"]] == [(1, 5000, "pending")]
    theirs = (await client.get("/app/me/data-export", headers=customer_headers(friend))).json()
    assert theirs["campaigns.referrals"]["referred_by"]["code"] == referrer.referral_code

    assert (await client.post("/app/me/erasure", headers=customer_headers(referrer))).status_code == 202
    await run_worker(redis)
    reward = await ReferralReward.get(referee_id=friend.id, level=1)
    assert reward.status == "voided" and reward.amount_fen == 5000
