"""The points rules staff configure (check-in table, earn rate, pending days, expiry) and the date arithmetic they need."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from kernel import clock
from kernel.errors import ValidationFailed
from points_mall.models import PointsRules

RULES_ID = 1
_DAY = re.compile(r"[0-9]{1,3}")


async def get_rules(conn: BaseDBAsyncClient) -> PointsRules:
    """The rules row, created with the defaults the first time anything asks for it."""
    rules = await PointsRules.get_or_none(id=RULES_ID, using_db=conn)
    if rules is not None:
        return rules
    try:
        return await PointsRules.create(
            id=RULES_ID, checkin_bonus={"3": 5, "7": 20}, updated_at=clock.now(), using_db=conn
        )
    except IntegrityError:
        # Another request created it first. A locking read sees its commit; a plain read might still
        # use this transaction's older snapshot and find nothing.
        return await PointsRules.filter(id=RULES_ID).using_db(conn).select_for_update().get()


_NON_NEGATIVE = (
    "checkin_base_points", "makeup_cost_points", "makeup_per_month", "earn_points_per_unit",
    "pending_days", "expiry_months", "expiry_reminder_days",
)


async def update_rules(conn: BaseDBAsyncClient, staff_id: int | None, changes: dict[str, Any]) -> PointsRules:
    rules = await get_rules(conn)
    if "expiry_reminder_template_id" in changes:
        # Only spaces is no template (no reminder is sent), as for the other rooms' template settings (env_text).
        changes = {**changes, "expiry_reminder_template_id": changes["expiry_reminder_template_id"].strip()}
    for name in _NON_NEGATIVE:
        if name in changes and changes[name] < 0:
            raise ValidationFailed(f"{name} cannot be negative.", field=name)
    for name in ("checkin_cycle_days", "earn_unit_fen", "tier_window_months"):
        if name in changes and changes[name] < 1:
            raise ValidationFailed(f"{name} must be at least 1.", field=name)
    cycle = changes.get("checkin_cycle_days", rules.checkin_cycle_days)
    if "checkin_bonus" in changes:
        bonus: dict[str, int] = {}
        for day, points in changes["checkin_bonus"].items():
            # ASCII digits only: str.isdigit() also accepts "³", which int() refuses.
            if not _DAY.fullmatch(str(day)) or not 1 <= int(day) <= cycle:
                raise ValidationFailed(f"Bonus day {day!r} is outside the cycle 1..{cycle}.", field="checkin_bonus")
            if points < 0:
                raise ValidationFailed("Bonus points cannot be negative.", field="checkin_bonus")
            bonus[str(int(day))] = int(points)
        changes["checkin_bonus"] = bonus
    for name, value in changes.items():
        setattr(rules, name, value)
    rules.updated_at = clock.now()
    rules.updated_by_staff_id = staff_id
    await rules.save(using_db=conn)
    return rules


def checkin_points_for(rules: PointsRules, day_in_cycle: int) -> int:
    return rules.checkin_base_points + int(rules.checkin_bonus.get(str(day_in_cycle), 0))


def day_in_cycle(rules: PointsRules, streak: int) -> int:
    return (streak - 1) % rules.checkin_cycle_days + 1


def add_months(day: date, months: int) -> date:
    """The first day of the month `months` after `day`'s month."""
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=clock.clinic_zone())


def lot_expiry(rules: PointsRules, earned_at: datetime) -> datetime | None:
    """End of the Nth month after the month the points were earned (clinic time), or None for never.

    Stored as the first instant of the following month: a lot expires once `now >= expires_at`.
    """
    if rules.expiry_months <= 0:
        return None
    earned_local = earned_at.astimezone(clock.clinic_zone()).date()
    return local_midnight(add_months(earned_local, rules.expiry_months + 1))


def months_ago(instant: datetime, months: int) -> datetime:
    local = instant.astimezone(clock.clinic_zone())
    index = local.year * 12 + (local.month - 1) - months
    year, month = index // 12, index % 12 + 1
    # Clamp the day (e.g. 31 March minus one month is 28/29 February).
    day = min(local.day, (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day)
    return local.replace(year=year, month=month, day=day)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """The clinic-local start of `month`'s first day and of the next month's first day."""
    first = month.replace(day=1)
    return local_midnight(first), local_midnight(add_months(first, 1))
