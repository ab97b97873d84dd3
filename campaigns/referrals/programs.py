"""Referral programs: create, change, validate, and find the one that is active now."""

from __future__ import annotations

from datetime import timezone
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q

from campaigns.referrals.errors import InvalidProgram, ProgramNotFound
from campaigns.referrals.models import ReferralProgram, ReferrerRewardType, WelcomeRewardType
from kernel import clock

_BASIS_POINTS = 10_000

# Fields a staff member may set; everything else (ids, timestamps) belongs to the service.
EDITABLE_FIELDS = (
    "name",
    "description",
    "is_active",
    "starts_at",
    "ends_at",
    "binding_valid_days",
    "qualify_within_days",
    "min_amount_fen",
    "hold_days",
    "referrer_reward_type",
    "referrer_reward_value",
    "second_level_reward_type",
    "second_level_reward_value",
    "welcome_reward_type",
    "welcome_points",
    "welcome_voucher_title",
    "welcome_voucher_valid_days",
    "monthly_cap_count",
    "monthly_cap_fen",
    "burst_window_minutes",
    "burst_max_referees",
)


def _check_instants(values: dict[str, Any]) -> None:
    """Refuse an instant whose offset carries it past the calendar's ends once stored in UTC.

    "0001-01-01T00:00+14:00" parses, but the ORM's conversion to UTC overflows (a 500 otherwise).
    """
    for field in ("starts_at", "ends_at"):
        value = values.get(field)
        if value is None:
            continue
        try:
            value.astimezone(timezone.utc)
        except OverflowError:
            raise InvalidProgram("The date is out of range.", field=field) from None


def _check_reward(kind: ReferrerRewardType | None, value: int, field: str) -> None:
    if kind is None:
        return
    if value <= 0:
        raise InvalidProgram("A reward must be positive.", field=field)
    if kind == ReferrerRewardType.percent and value > _BASIS_POINTS:
        raise InvalidProgram("A percentage is given in basis points, at most 10000 (100%).", field=field)


def validate(program: ReferralProgram) -> None:
    """Rules that span fields (single-field bounds are checked by the request schema)."""
    if not program.name.strip():
        raise InvalidProgram("A program needs a name.", field="name")
    if program.ends_at is not None and program.ends_at <= program.starts_at:
        raise InvalidProgram("The program must end after it starts.", field="ends_at")
    if program.qualify_within_days > program.binding_valid_days:
        # A qualifying event after the binding expired would reward a referrer the friend no longer has.
        raise InvalidProgram(
            "The qualifying window cannot be longer than the binding validity.", field="qualify_within_days"
        )
    _check_reward(program.referrer_reward_type, program.referrer_reward_value, "referrer_reward_value")
    _check_reward(program.second_level_reward_type, program.second_level_reward_value, "second_level_reward_value")
    if program.welcome_reward_type == WelcomeRewardType.points and program.welcome_points <= 0:
        raise InvalidProgram("A points welcome reward needs welcome_points.", field="welcome_points")
    if program.welcome_reward_type == WelcomeRewardType.voucher and not program.welcome_voucher_title.strip():
        raise InvalidProgram("A voucher welcome reward needs a title.", field="welcome_voucher_title")


async def create_program(conn: BaseDBAsyncClient, values: dict[str, Any]) -> ReferralProgram:
    _check_instants(values)
    now = clock.now()
    program = ReferralProgram(
        **{k: v for k, v in values.items() if k in EDITABLE_FIELDS}, created_at=now, updated_at=now
    )
    validate(program)
    await program.save(using_db=conn)
    return program


async def get_program(conn: BaseDBAsyncClient, program_id: int) -> ReferralProgram:
    program = await ReferralProgram.get_or_none(id=program_id, using_db=conn)
    if program is None:
        raise ProgramNotFound(program_id=program_id)
    return program


async def update_program(conn: BaseDBAsyncClient, program_id: int, changes: dict[str, Any]) -> ReferralProgram:
    program = await get_program(conn, program_id)
    _check_instants(changes)
    changed = [k for k in changes if k in EDITABLE_FIELDS]
    for key in changed:
        setattr(program, key, changes[key])
    validate(program)
    if changed:
        program.updated_at = clock.now()
        await program.save(using_db=conn, update_fields=[*changed, "updated_at"])
    return program


async def active_program(conn: BaseDBAsyncClient) -> ReferralProgram | None:
    """The program new bindings join: active, inside its window; the latest started one wins."""
    now = clock.now()
    return (
        await ReferralProgram.filter(is_active=True, starts_at__lte=now)
        .filter(Q(ends_at=None) | Q(ends_at__gt=now))
        .using_db(conn)
        .order_by("-starts_at", "-id")
        .first()
    )


def reward_for(kind: ReferrerRewardType, value: int, qualifying_amount_fen: int) -> tuple[int, int]:
    """(amount_fen, points) of one referrer reward. Percentages round down to the fen."""
    if kind == ReferrerRewardType.fixed_fen:
        return value, 0
    if kind == ReferrerRewardType.percent:
        return qualifying_amount_fen * value // _BASIS_POINTS, 0
    return 0, value
