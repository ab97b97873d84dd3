"""Booking rules that clinics tune: notice, cancel window, limits, reminders and follow-up days.

Read from the environment once (README, "Configure"); tests change them with `override(...)`.
"""

from __future__ import annotations

import msgspec

from kernel.settings import RoomSettings, env, env_int


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


def load_booking_settings() -> BookingSettings:
    defaults = BookingSettings()
    days = env("BOOKING_FOLLOW_UP_DAYS", "")
    return BookingSettings(
        min_notice_minutes=env_int("BOOKING_MIN_NOTICE_MINUTES", defaults.min_notice_minutes),
        cancel_window_hours=env_int("BOOKING_CANCEL_WINDOW_HOURS", defaults.cancel_window_hours),
        max_active_bookings=env_int("BOOKING_MAX_ACTIVE", defaults.max_active_bookings),
        reminder_lead_hours=env_int("BOOKING_REMINDER_LEAD_HOURS", defaults.reminder_lead_hours),
        reminder_template_id=env("BOOKING_REMINDER_TEMPLATE_ID", defaults.reminder_template_id),
        follow_up_days=tuple(sorted({int(d) for d in days.split(",")})) if days else defaults.follow_up_days,
        publish_horizon_days=env_int("BOOKING_PUBLISH_HORIZON_DAYS", defaults.publish_horizon_days),
    )


_SETTINGS = RoomSettings(load_booking_settings)
get_booking_settings = _SETTINGS.get
# Run a block with some rules changed (tests; the app itself never calls this).
override = _SETTINGS.override
