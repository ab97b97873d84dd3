"""Booking rules that clinics tune: notice, cancel window, limits, reminders and follow-up days.

Read from the environment once (README, "Configure"); tests change them with `override(...)`.
"""

from __future__ import annotations

import msgspec

from kernel.settings import RoomSettings, env_int, env_int_list, env_text, listing_refusals
from kernel.wechat.miniprogram import TEMPLATE_ID_MAX_CHARS


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


# Each range is what a clinic could want; a value outside it stops the start naming the variable and the range
# (kernel.settings, read at start-up by rooms.install; README, "Configure"), because the code that reads it did
# something nobody chose, said beside each range.
# `publish_slots` takes 1 to 92 days (booking.schedules.MAX_PUBLISH_DAYS): 0 or less, or more than 92, failed the
# nightly publication every night, so no new slot was ever published and the calendar ran empty.
PUBLISH_HORIZON_DAYS = (1, 92)
# Below 0, slots that had already started (or ended) were offered and bookable. At most a week, and less than the
# publish horizon: a notice reaching past every published slot offered nothing, silently.
MIN_NOTICE_MINUTES_MOST = 7 * 24 * 60
# Below 0 a customer could cancel after the start, until the day ended: a no-show could cancel after the fact and
# the seat went back after the visit; 0 allows changes until the start. Past a week no booking made for the coming
# days could ever be cancelled or moved (twenty million hours or more overflowed: every cancel a 500).
CANCEL_WINDOW_HOURS = (0, 168)
# 0 or less refused every booking; more than 20 upcoming bookings lets one customer hold a branch's seats (a
# course of treatments booked ahead is a handful).
MAX_ACTIVE_BOOKINGS = (1, 20)
# 0 or less sent no reminder ever (nothing is due "within 0 hours"), without a word; at most a week ahead (a
# hundred million hours overflowed the scan, which then failed every ten minutes).
REMINDER_LEAD_HOURS = (1, 168)
# Days after completion: below 0 the call was due before the visit, an overdue task at birth; 0 is a call on the
# visit's evening; past a year it is no follow-up (millions of days overflowed the due date, and the job failed
# for every completed visit). A value that was not a whole number stopped the start with a traceback.
FOLLOW_UP_DAYS = (0, 365)


def load_booking_settings() -> BookingSettings:
    d = BookingSettings()
    with listing_refusals():
        horizon_days = env_int("BOOKING_PUBLISH_HORIZON_DAYS", d.publish_horizon_days,
                               within=PUBLISH_HORIZON_DAYS)
        return BookingSettings(
            min_notice_minutes=env_int("BOOKING_MIN_NOTICE_MINUTES", d.min_notice_minutes, least=0,
                                       most=min(MIN_NOTICE_MINUTES_MOST, horizon_days * 24 * 60 - 1)),
            cancel_window_hours=env_int("BOOKING_CANCEL_WINDOW_HOURS", d.cancel_window_hours,
                                        within=CANCEL_WINDOW_HOURS),
            max_active_bookings=env_int("BOOKING_MAX_ACTIVE", d.max_active_bookings,
                                        within=MAX_ACTIVE_BOOKINGS),
            reminder_lead_hours=env_int("BOOKING_REMINDER_LEAD_HOURS", d.reminder_lead_hours,
                                        within=REMINDER_LEAD_HOURS),
            reminder_template_id=env_text("BOOKING_REMINDER_TEMPLATE_ID", d.reminder_template_id,
                                          most_chars=TEMPLATE_ID_MAX_CHARS),
            follow_up_days=tuple(sorted(set(env_int_list("BOOKING_FOLLOW_UP_DAYS", d.follow_up_days,
                                                         within=FOLLOW_UP_DAYS)))),
            publish_horizon_days=horizon_days,
        )


_SETTINGS = RoomSettings(load_booking_settings)
get_booking_settings = _SETTINGS.get
# Run a block with some rules changed (tests; the app itself never calls this).
override = _SETTINGS.override
