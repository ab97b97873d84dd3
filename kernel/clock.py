"""The clock: the one place that reads the time, so tests can inject it instead of sleeping."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_frozen: datetime | None = None


def now() -> datetime:
    """The current instant, timezone-aware UTC."""
    return _frozen if _frozen is not None else datetime.now(timezone.utc)


def clinic_zone() -> ZoneInfo:
    from kernel.settings import get_settings

    return ZoneInfo(get_settings().app.clinic_timezone)


def local_now(zone: ZoneInfo | None = None) -> datetime:
    return now().astimezone(zone or clinic_zone())


def local_today(zone: ZoneInfo | None = None) -> date:
    """Today in the clinic's time zone (Asia/Shanghai by default): what "one per day" means."""
    return local_now(zone).date()


# How far ahead a zone's UTC offset must stay the same: past any daylight-saving season, and past the next release
# or two (the zone database changes when a country starts or stops summer time).
ONE_OFFSET_DAYS = 2 * 366


def keeps_one_offset(zone: ZoneInfo) -> bool:
    """True when the zone has one UTC offset all year (no daylight saving time): the same at every day's noon (UTC)
    from now for two years; a daily sample cannot miss a DST season, which lasts months.

    The clinic's zone (CLINIC_TIMEZONE, kernel.settings) and every branch's (booking.catalogue) are held to it:
    reports count the clinic's days with one fixed offset, and schedules turn a branch's wall-clock hours into
    slots with no handling of the hour skipped or repeated, so in a DST zone both would be an hour off all summer.
    """
    start = now().replace(hour=12, minute=0, second=0, microsecond=0)
    offsets = {(start + timedelta(days=d)).astimezone(zone).utcoffset() for d in range(ONE_OFFSET_DAYS)}
    return len(offsets) == 1


class ZoneRefused(ValueError):
    """A zone name `one_offset_zone` refuses; the message says what is accepted instead."""


KNOWN_ZONE = "an IANA time zone name this machine's zone database knows, such as Asia/Shanghai"
ONE_OFFSET_ZONE = ("a time zone with one UTC offset all year (no daylight saving time), such as Asia/Shanghai: "
                   "the clinic's days and a branch's slots are counted with one offset, so in summer they would be "
                   "an hour off")


def one_offset_zone(name: str) -> ZoneInfo:
    """The zone `name` names (spaces around it dropped): one this machine's zone database knows, that
    `keeps_one_offset`; any other raises `ZoneRefused` saying what is accepted. The one rule for the clinic's zone
    (kernel.settings.env_zone) and a branch's (booking.catalogue)."""
    try:
        zone = ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ZoneRefused(KNOWN_ZONE) from exc
    if not keeps_one_offset(zone):
        raise ZoneRefused(ONE_OFFSET_ZONE)
    return zone


def set_now(instant: datetime | None) -> None:
    global _frozen
    if instant is not None and instant.tzinfo is None:
        raise ValueError("the injected time must be timezone-aware")
    _frozen = instant.astimezone(timezone.utc) if instant is not None else None


def advance(delta: timedelta) -> None:
    set_now(now() + delta)


@contextlib.contextmanager
def frozen_at(instant: datetime) -> Iterator[None]:
    previous = _frozen
    set_now(instant)
    try:
        yield
    finally:
        set_now(previous)
