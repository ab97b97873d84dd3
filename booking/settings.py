"""Booking rules that clinics tune: notice, cancel window, limits, reminders and follow-up days.

Read from the environment once (README, "Configure"); tests change them with `override(...)`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from functools import lru_cache

import msgspec


class BookingSettings(msgspec.Struct, frozen=True):
    # A slot starting sooner than this is never offered nor bookable (the front desk needs time).
    min_notice_minutes: int = 120
    # Cancel or reschedule is allowed until this many hours before the start.
    cancel_window_hours: int = 24
    # How many upcoming bookings one customer may hold at once.
    max_active_bookings: int = 3
    # The reminder goes out when the visit is less than this far away ("the day before").
    reminder_lead_hours: int = 24
    reminder_template_id: str = "booking-reminder"
    # Days after completion at which a follow-up call (回访) is due.
    follow_up_days: tuple[int, ...] = (1, 3, 7, 15, 30)
    # How far ahead the daily job keeps slots published.
    publish_horizon_days: int = 14


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


def load_booking_settings() -> BookingSettings:
    defaults = BookingSettings()
    days = _env("BOOKING_FOLLOW_UP_DAYS")
    return BookingSettings(
        min_notice_minutes=int(_env("BOOKING_MIN_NOTICE_MINUTES") or defaults.min_notice_minutes),
        cancel_window_hours=int(_env("BOOKING_CANCEL_WINDOW_HOURS") or defaults.cancel_window_hours),
        max_active_bookings=int(_env("BOOKING_MAX_ACTIVE") or defaults.max_active_bookings),
        reminder_lead_hours=int(_env("BOOKING_REMINDER_LEAD_HOURS") or defaults.reminder_lead_hours),
        reminder_template_id=_env("BOOKING_REMINDER_TEMPLATE_ID") or defaults.reminder_template_id,
        follow_up_days=tuple(sorted({int(d) for d in days.split(",")})) if days else defaults.follow_up_days,
        publish_horizon_days=int(_env("BOOKING_PUBLISH_HORIZON_DAYS") or defaults.publish_horizon_days),
    )


_override: BookingSettings | None = None


@lru_cache(maxsize=1)
def _loaded() -> BookingSettings:
    return load_booking_settings()


def get_booking_settings() -> BookingSettings:
    return _override if _override is not None else _loaded()


@contextlib.contextmanager
def override(**changes) -> Iterator[BookingSettings]:
    """Run a block with some rules changed (tests; the app itself never calls this)."""
    global _override
    previous = _override
    _override = msgspec.structs.replace(get_booking_settings(), **changes)
    try:
        yield _override
    finally:
        _override = previous
