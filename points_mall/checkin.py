"""Daily check-in (每日签到): one per customer per clinic-local day, streaks, the reward cycle, make-up check-ins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from kernel import clock
from points_mall.errors import AlreadyCheckedIn, MakeupLimitReached, MakeupNotAllowed
from points_mall.ledger import earn_points, lock_account, spend_points
from points_mall.models import CheckIn, EntryKind, PointsLedgerEntry, PointsRules
from points_mall.rules import add_months, checkin_points_for, day_in_cycle, get_rules, month_bounds


@dataclass
class CheckInResult:
    check_in: CheckIn
    tomorrow_points: int
    balance: int


def reward_for_streak(rules: PointsRules, streak: int) -> int:
    return checkin_points_for(rules, day_in_cycle(rules, streak))


async def check_in(conn: BaseDBAsyncClient, customer_id: int, *, day: date | None = None) -> CheckInResult:
    """Check the customer in for today (clinic time). The unique `(customer, local_date)` key decides
    between concurrent taps: exactly one inserts, the others get `already_checked_in` and earn nothing."""
    day = day or clock.local_today()
    rules = await get_rules(conn)
    # No "checked in already?" read first: the insert below answers that through the unique key, and a
    # second tap costs the same one statement either way.
    previous = await CheckIn.get_or_none(customer_id=customer_id, local_date=day - timedelta(days=1), using_db=conn)
    streak = previous.streak + 1 if previous is not None else 1
    cycle_day = day_in_cycle(rules, streak)
    points = checkin_points_for(rules, cycle_day)
    try:
        row = await CheckIn.create(
            customer_id=customer_id, local_date=day, streak=streak, day_in_cycle=cycle_day, points=points,
            created_at=clock.now(), using_db=conn,
        )
    except IntegrityError as exc:
        raise AlreadyCheckedIn(date=day.isoformat()) from exc
    if points > 0:
        entry = await earn_points(
            conn, customer_id=customer_id, points=points, kind=EntryKind.check_in,
            ref=f"checkin:{customer_id}:{day.isoformat()}",
            reason=f"Daily check-in (day {cycle_day} of {rules.checkin_cycle_days}, streak {streak})",
            rules=rules, new_ref=True,
        )
        balance = entry.balance_after if isinstance(entry, PointsLedgerEntry) else 0
    else:
        balance = (await lock_account(conn, customer_id)).balance
    return CheckInResult(row, reward_for_streak(rules, streak + 1), balance)


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
