"""Upgrading a clinic's database of the previous release keeps every record as it was.

The committed dump of release 0.1.0 (built from that release's code by build_previous_release.py) is
loaded into a fresh MariaDB database, `python -m api migrate` (the production path, what `make migrate`
runs) takes it to the current schema, and the current app must answer every API read recorded under
0.1.0 the same way (fields may be added, never removed or changed), with DESIGN.md's invariants holding.
"""

from __future__ import annotations

import json

from tests.upgrade.support import HERE, PREVIOUS, query, run_cli


def differences(before, after, where: str = "") -> list[str]:
    """What an older client would notice: a field gone or changed, a list of another length.
    Fields the new release adds are allowed."""
    if isinstance(before, dict):
        if not isinstance(after, dict):
            return [f"{where}: was an object, now {type(after).__name__}"]
        found = []
        for key, value in before.items():
            if key not in after:
                found.append(f"{where}.{key}: removed")
            else:
                found += differences(value, after[key], f"{where}.{key}")
        return found
    if isinstance(before, list):
        if not isinstance(after, list) or len(after) != len(before):
            return [f"{where}: {len(before)} items before, {len(after) if isinstance(after, list) else after!r} after"]
        return [d for i, (b, a) in enumerate(zip(before, after)) for d in differences(b, a, f"{where}[{i}]")]
    return [] if before == after else [f"{where}: {before!r} became {after!r}"]


def test_differences_finds_removed_changed_and_shortened_but_allows_added_fields():
    before = {"balance": 100, "items": [{"id": 1, "status": "issued"}], "tier": {"level": 1}}
    assert differences(before, {**before, "new_field": 1}) == []
    assert differences(before, {"balance": 100, "items": [{"id": 1, "status": "issued"}]}) == [".tier: removed"]
    assert differences(before, {**before, "balance": 99}) == [".balance: 100 became 99"]
    assert differences(before, {**before, "items": []}) == [".items: 1 items before, 0 after"]
    assert differences(before, {**before, "items": [{"id": 1, "status": "redeemed"}]}) == [
        ".items[0].status: 'issued' became 'redeemed'"]


async def test_every_api_read_of_the_previous_release_answers_the_same_after_migrating(upgraded, tmp_path):
    recorded_path = HERE / f"release-{PREVIOUS}.reads.json"
    recorded = json.loads(recorded_path.read_text())["reads"]
    out = tmp_path / "answers.json"
    replay = run_cli(upgraded, "-m", "tests.upgrade.replay_reads", str(recorded_path), str(out))
    assert replay.returncode == 0, replay.stderr
    answers = json.loads(out.read_text())
    assert len(answers) == len(recorded) > 150
    problems = []
    for before, after in zip(recorded, answers):
        label = f"{before['who']} GET {before['path']}"
        if after["status"] != before["status"]:
            problems.append(f"{label}: status {before['status']} became {after['status']}")
        problems += [f"{label} {d}" for d in differences(before["body"], after["body"])]
    assert not problems, "\n".join(problems[:40])


async def test_the_invariants_hold_on_the_upgraded_database(upgraded):
    # 2. balance = ledger sum = unexpired lots, never negative.
    assert await query(upgraded, """
        SELECT a.customer_id, a.balance, COALESCE(l.total, 0), COALESCE(t.remaining, 0) FROM points_account a
        LEFT JOIN (SELECT customer_id, SUM(delta) total FROM points_ledger_entry GROUP BY customer_id) l
               ON l.customer_id = a.customer_id
        LEFT JOIN (SELECT customer_id, SUM(remaining) remaining FROM points_lot GROUP BY customer_id) t
               ON t.customer_id = a.customer_id
        WHERE a.balance <> COALESCE(l.total, 0) OR a.balance <> COALESCE(t.remaining, 0) OR a.balance < 0""") == []
    assert await query(upgraded, "SELECT COUNT(*) FROM points_account WHERE balance > 0") != [(0,)]
    # 1. stock and capacity never below zero.
    assert await query(upgraded, "SELECT id FROM mall_item WHERE stock_reserved > stock_total OR stock_reserved < 0") == []
    assert await query(upgraded, "SELECT id FROM gb_sku WHERE stock_left < 0 OR stock_left > stock_total") == []
    assert await query(upgraded, "SELECT id FROM booking_slot WHERE booked < 0 OR booked > capacity") == []
    assert await query(upgraded, "SELECT id FROM gb_group WHERE seats_taken > size OR paid_count > seats_taken") == []
    # 5. a settled group's paid members are all fulfilled (succeeded) or all refunded (failed).
    assert await query(upgraded, """
        SELECT g.id, g.status, e.status FROM gb_group g JOIN gb_entry e ON e.group_id = g.id
        WHERE (g.status = 'succeeded' AND e.status NOT IN ('fulfilled', 'released'))
           OR (g.status = 'failed' AND e.status NOT IN ('refunded', 'released'))""") == []
    assert {s for (s,) in await query(upgraded, "SELECT DISTINCT status FROM gb_group")} >= {
        "open", "succeeded", "failed"}
    # 6. one reward per referee and level, every state present.
    assert await query(upgraded, """SELECT referee_id, level FROM referral_reward
                                     GROUP BY referee_id, level HAVING COUNT(*) > 1""") == []
    assert {s for (s,) in await query(upgraded, "SELECT DISTINCT status FROM referral_reward")} >= {
        "pending", "held", "payable", "batched", "paid", "cancelled"}
    # 9. refunds never exceed what was paid; a refunded order is refunded in full.
    assert await query(upgraded, "SELECT id FROM shop_order WHERE refunded_fen > paid_fen OR paid_fen > total_fen") == []
    assert await query(upgraded, """SELECT o.id FROM shop_order o JOIN shop_refund r ON r.order_id = o.id
                                     WHERE r.status = 'succeeded' GROUP BY o.id, o.refunded_fen
                                     HAVING SUM(r.amount_fen) <> o.refunded_fen""") == []


async def test_migrating_an_up_to_date_database_again_changes_nothing(upgraded):
    history = await query(upgraded, "SELECT app, name FROM tortoise_migrations ORDER BY id")
    again = run_cli(upgraded, "-m", "api", "migrate")
    assert again.returncode == 0, again.stderr
    assert await query(upgraded, "SELECT app, name FROM tortoise_migrations ORDER BY id") == history


async def test_customers_of_the_previous_release_are_found_by_the_last_four_digits(upgraded):
    """kernel 0004 backfills the last-four lookup hash from each sealed phone (the suite's SECRET_KEY is
    the one the dump was made with), so staff find the customers who existed before the upgrade."""
    from kernel import crypto

    rows = await query(upgraded, "SELECT id, phone_sealed, phone_last4_hash FROM customer WHERE phone_sealed IS NOT NULL")
    assert rows, "the previous release's data has customers with a phone"
    for _, sealed, last4 in rows:
        assert last4 == crypto.last4_hash(crypto.unseal(sealed))


async def test_orders_of_the_previous_release_keep_no_idempotency_key_and_the_key_is_unique_per_customer(upgraded):
    """orders 0004 adds nullable columns and a unique (customer, key) index: the old orders all take it (their
    keys are NULL, which never collide), and a key can then be used once per customer only."""
    orders = await query(upgraded, "SELECT COUNT(*), COUNT(idempotency_key), COUNT(request_digest) FROM shop_order")
    assert orders[0][0] > 0 and orders[0][1:] == (0, 0)
    index = await query(upgraded, """SELECT column_name FROM information_schema.statistics
        WHERE table_schema = DATABASE() AND table_name = 'shop_order' AND non_unique = 0
          AND index_name <> 'PRIMARY' AND column_name IN ('customer_id', 'idempotency_key') ORDER BY seq_in_index""")
    assert [row[0] for row in index] == ["customer_id", "idempotency_key"]
