"""Daily check-in (每日签到): one per customer per clinic-local day, streaks, the reward cycle, make-up check-ins."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta, timezone
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from kernel import clock
from kernel.batch import Batch, packed, select, unpacked
from kernel.db import RaceLost
from kernel.identity.service import AccountErased, customer_is_active
from kernel.sql import utc
from points_mall.errors import AlreadyCheckedIn, MakeupLimitReached, MakeupNotAllowed
from points_mall.ledger import add_credit_new_ref, earn_points, lock_account, spend_points
from points_mall.models import CheckIn, EntryKind, PointsAccount, PointsLedgerEntry, PointsRules
from points_mall.rules import (
    RULES_ID,
    add_months,
    checkin_points_for,
    day_in_cycle,
    get_rules,
    lot_expiry,
    month_bounds,
)


@dataclass
class CheckInResult:
    local_date: date
    points: int
    streak: int
    day_in_cycle: int
    tomorrow_points: int
    balance: int


def reward_for_streak(rules: PointsRules, streak: int) -> int:
    return checkin_points_for(rules, day_in_cycle(rules, streak))


@dataclass
class _CheckInRules:
    """The columns of the rules row a check-in needs (read together with yesterday's streak)."""

    checkin_base_points: int
    checkin_cycle_days: int
    checkin_bonus: dict
    expiry_months: int


# The rules, yesterday's streak, the account's make-up count (NULL: no account yet) and whether the customer
# is active (not erased: the route's guard leaves that check to this statement) in one round trip
# (MySQL/MariaDB; the general path reads them apart). Plain reads: the unique check-in key decides between
# taps, and the make-up count, checked again where the account is locked, catches a make-up that committed
# after this read (it changed yesterday's streak).
_RULES_AND_YESTERDAY = packed(  # in this order, in one JSON column (kernel.batch.packed)
    "r.checkin_base_points", "r.checkin_cycle_days", "r.checkin_bonus", "r.expiry_months",
    "(SELECT c.streak FROM points_check_in c WHERE c.customer_id = %s AND c.local_date = %s)",
    "(SELECT a.checkin_makeups FROM points_account a WHERE a.customer_id = %s)",
    "(SELECT 1 FROM customer u WHERE u.id = %s AND u.deleted_at IS NULL)",
) + " FROM points_rules r WHERE r.id = %s"
_INSERT_CHECK_IN = (
    "INSERT INTO points_check_in (customer_id, local_date, streak, day_in_cycle, points, makeup, created_at)"
    " VALUES (%s, %s, %s, %s, %s, 0, %s)"
)


async def _rules_and_yesterday(
    conn: BaseDBAsyncClient, customer_id: int, day: date
) -> tuple[Any, int | None, int | None]:
    """(rules, yesterday's streak or None, the account's make-up count or None when it has no account yet).

    Refuses an erased customer (`AccountErased`) before anything is written."""
    yesterday = day - timedelta(days=1)
    if conn.capabilities.dialect == "mysql":
        rows = await select(conn, _RULES_AND_YESTERDAY, [customer_id, yesterday, customer_id, customer_id, RULES_ID])
        if rows:
            base_points, cycle_days, bonus, expiry_months, yesterday_streak, makeups, active = unpacked(rows[0])
            if active is None:
                raise AccountErased()
            # MariaDB keeps a JSON column's value as JSON inside JSON_ARRAY; a server that does not hands it
            # over as text.
            return _CheckInRules(
                base_points, cycle_days, json.loads(bonus) if isinstance(bonus, str) else bonus, expiry_months,
            ), yesterday_streak, makeups
    if not await customer_is_active(customer_id, conn):
        raise AccountErased()
    rules = await get_rules(conn)  # also creates the row the first time
    previous = await CheckIn.get_or_none(customer_id=customer_id, local_date=yesterday, using_db=conn)
    account = await PointsAccount.get_or_none(customer_id=customer_id, using_db=conn)
    return (rules, previous.streak if previous is not None else None,
            account.checkin_makeups if account is not None else None)


async def _insert_check_in(
    conn: BaseDBAsyncClient, customer_id: int, day: date, streak: int, cycle_day: int, points: int
) -> None:
    now = clock.now()
    try:
        if conn.capabilities.dialect == "mysql":
            await conn.execute_insert(
                _INSERT_CHECK_IN, [customer_id, day, streak, cycle_day, points, now.astimezone(timezone.utc)])
        else:
            await CheckIn.create(customer_id=customer_id, local_date=day, streak=streak, day_in_cycle=cycle_day,
                                 points=points, created_at=now, using_db=conn)
    except IntegrityError as exc:
        raise AlreadyCheckedIn(date=day.isoformat()) from exc


async def _insert_check_in_and_credit(
    conn: BaseDBAsyncClient, customer_id: int, day: date, streak: int, cycle_day: int, points: int, *,
    ref: str, reason: str, expires_at, makeups_seen: int,
) -> int | None:
    """The check-in row and its credit in one round trip (MySQL/MariaDB): the balance after it, or None when
    the credit wrote nothing (see `add_credit_new_ref`). The unique key refuses a second tap at the first
    statement, before the account is touched."""
    batch = Batch(conn)
    check_in_row = batch.add(_INSERT_CHECK_IN, [customer_id, day, streak, cycle_day, points, utc(clock.now())])
    credited = add_credit_new_ref(batch, customer_id=customer_id, points=points, kind=EntryKind.check_in, ref=ref,
                                  reason=reason, expires_at=expires_at, checkin_makeups=makeups_seen)
    try:
        await batch.send()
    except IntegrityError as exc:
        if batch.failed is check_in_row:
            raise AlreadyCheckedIn(date=day.isoformat()) from exc
        raise
    return credited()


async def check_in(conn: BaseDBAsyncClient, customer_id: int, *, day: date | None = None) -> CheckInResult:
    """Check the customer in for today (clinic time). The unique `(customer, local_date)` key decides
    between concurrent taps: exactly one inserts, the others get `already_checked_in` and earn nothing.

    The morning rush path: on MySQL/MariaDB two round trips of parameterised SQL inside the request's
    transaction: rules with yesterday's streak, then one batch (`kernel.batch`) of the check-in row and
    `add_credit_new_ref`'s account update, entry and lot; the ORM's query building and model hydration, then
    the round trips themselves, were most of its CPU. The general path
    (SQLite, a customer without an account yet, a zero-point day) goes through the ledger's ORM functions:
    `lock_account` locks the customer row before creating a missing account, where a locking statement
    on the missing account row would take a gap lock and deadlock with the next account-less customer.

    A make-up check-in (补签) committed between the read of yesterday's streak and this insert changed that
    streak, and its recompute of the later days could not see this row (it waits for nothing the first
    read holds; the insert, whose foreign-key check waits for the make-up's customer lock, comes after).
    The make-up counts itself on the account; where this check-in meets the account (the fast credit's
    update, or `lock_account`) it finds the count moved and runs again (`RaceLost`, run again by
    `run_in_transaction`) with the streak the make-up left. No statement added to the fast path.
    """
    day = day or clock.local_today()
    rules, yesterday, makeups_seen = await _rules_and_yesterday(conn, customer_id, day)
    # No "checked in already?" read first: the insert below answers that through the unique key, and a
    # second tap costs the same one statement either way.
    streak = yesterday + 1 if yesterday is not None else 1
    cycle_day = day_in_cycle(rules, streak)
    points = checkin_points_for(rules, cycle_day)
    ref = f"checkin:{customer_id}:{day.isoformat()}"
    reason = f"Daily check-in (day {cycle_day} of {rules.checkin_cycle_days}, streak {streak})"
    balance = None
    if points > 0 and makeups_seen is not None and conn.capabilities.dialect == "mysql":
        balance = await _insert_check_in_and_credit(
            conn, customer_id, day, streak, cycle_day, points, ref=ref, reason=reason,
            expires_at=lot_expiry(rules, clock.now()), makeups_seen=makeups_seen)
    else:
        await _insert_check_in(conn, customer_id, day, streak, cycle_day, points)
    if balance is None:
        # The general path, and the fast credit's refusal: under the account lock, a make-up count other
        # than the one read with yesterday's streak means that streak was stale (an account created since
        # by anything but a make-up counts 0, like no account).
        account = await lock_account(conn, customer_id)
        if account.checkin_makeups != (makeups_seen or 0):
            raise RaceLost("A make-up check-in changed the streak this check-in read; retry.")
        balance = account.balance
        if points > 0:
            entry = await earn_points(conn, customer_id=customer_id, points=points, kind=EntryKind.check_in,
                                      ref=ref, reason=reason, rules=rules, new_ref=True)
            balance = entry.balance_after if isinstance(entry, PointsLedgerEntry) else 0
    return CheckInResult(day, points, streak, cycle_day, reward_for_streak(rules, streak + 1), balance)


def _makeup_window(rules: PointsRules, today: date) -> list[date]:
    # The current cycle: the days before today that a streak ending today could still include.
    return [today - timedelta(days=n) for n in range(1, rules.checkin_cycle_days)]


async def makeups_used_this_month(conn: BaseDBAsyncClient, customer_id: int) -> int:
    start, end = month_bounds(clock.local_today())
    return await CheckIn.filter(
        customer_id=customer_id, makeup=True, created_at__gte=start, created_at__lt=end
    ).using_db(conn).count()


async def makeup_check_in(conn: BaseDBAsyncClient, customer_id: int, day: date) -> CheckIn:
    """Make up (补签) a missed day of the current cycle: costs points, limited per month, off by default.

    The made-up day earns nothing itself; it joins the streak, and the streaks after it are recomputed.
    """
    # The account lock comes first (before any read): it serialises this customer's make-ups, and the
    # reads below then see what the previous holder committed, so the monthly limit cannot be raced.
    await lock_account(conn, customer_id)
    rules = await get_rules(conn)
    if not rules.makeup_enabled:
        raise MakeupNotAllowed("Make-up check-in is not offered.", reason="disabled")
    today = clock.local_today()
    if day not in _makeup_window(rules, today):
        raise MakeupNotAllowed("Only a missed day of the current cycle can be made up.", reason="outside_cycle",
                               field="date")
    if await CheckIn.filter(customer_id=customer_id, local_date=day).using_db(conn).exists():
        raise AlreadyCheckedIn(date=day.isoformat())
    if await makeups_used_this_month(conn, customer_id) >= rules.makeup_per_month:
        raise MakeupLimitReached(limit=rules.makeup_per_month)
    if rules.makeup_cost_points > 0:
        await spend_points(
            conn, customer_id=customer_id, points=rules.makeup_cost_points, kind=EntryKind.check_in,
            ref=f"checkin-makeup:{customer_id}:{day.isoformat()}", reason=f"Make-up check-in for {day.isoformat()}",
        )
    # Counted on the account: a check-in of today that read yesterday's streak before this commits finds
    # the count moved when it credits, and runs again with the streak this make-up leaves (see `check_in`).
    await PointsAccount.filter(customer_id=customer_id).using_db(conn).update(
        checkin_makeups=F("checkin_makeups") + 1)
    previous = await CheckIn.get_or_none(customer_id=customer_id, local_date=day - timedelta(days=1), using_db=conn)
    streak = previous.streak + 1 if previous is not None else 1
    try:
        row = await CheckIn.create(
            customer_id=customer_id, local_date=day, streak=streak, day_in_cycle=day_in_cycle(rules, streak),
            points=0, makeup=True, created_at=clock.now(), using_db=conn,
        )
    except IntegrityError as exc:
        raise AlreadyCheckedIn(date=day.isoformat()) from exc
    # The days after it now continue this streak (points already earned stay as they were).
    following = await CheckIn.filter(
        customer_id=customer_id, local_date__gt=day, local_date__lte=today
    ).using_db(conn).order_by("local_date")
    expected = day + timedelta(days=1)
    for later in following:
        if later.local_date != expected:
            break
        streak += 1
        await CheckIn.filter(id=later.id).using_db(conn).update(streak=streak, day_in_cycle=day_in_cycle(rules, streak))
        expected += timedelta(days=1)
    return row


async def current_streak(conn: BaseDBAsyncClient, customer_id: int) -> tuple[int, bool]:
    """(streak, checked_in_today): a streak stays alive until a full day is missed."""
    today = clock.local_today()
    rows = await CheckIn.filter(
        customer_id=customer_id, local_date__gte=today - timedelta(days=1), local_date__lte=today
    ).using_db(conn)
    by_day = {row.local_date: row for row in rows}
    if today in by_day:
        return by_day[today].streak, True
    yesterday = by_day.get(today - timedelta(days=1))
    return (yesterday.streak if yesterday else 0), False


async def calendar(conn: BaseDBAsyncClient, customer_id: int, month: date) -> dict:
    rules = await get_rules(conn)
    first = month.replace(day=1)
    next_first = add_months(first, 1)
    rows = await CheckIn.filter(
        customer_id=customer_id, local_date__gte=first, local_date__lt=next_first
    ).using_db(conn).order_by("local_date")
    streak, today_done = await current_streak(conn, customer_id)
    today = clock.local_today()
    next_streak = streak if today_done else streak + 1
    used = await makeups_used_this_month(conn, customer_id)
    done_days = {
        row.local_date
        for row in await CheckIn.filter(
            customer_id=customer_id, local_date__gte=today - timedelta(days=rules.checkin_cycle_days)
        ).using_db(conn)
    }
    return {
        "month": first.strftime("%Y-%m"),
        "days": rows,
        "streak": streak,
        "checked_in_today": today_done,
        "today_points": reward_for_streak(rules, next_streak) if not today_done else 0,
        "tomorrow_points": reward_for_streak(rules, next_streak + 1 if not today_done else streak + 1),
        "cycle_days": rules.checkin_cycle_days,
        "makeup_enabled": rules.makeup_enabled,
        "makeup_cost_points": rules.makeup_cost_points,
        "makeup_left_this_month": max(0, rules.makeup_per_month - used) if rules.makeup_enabled else 0,
        "makeup_dates": [d for d in _makeup_window(rules, today) if d not in done_days] if rules.makeup_enabled else [],
    }
