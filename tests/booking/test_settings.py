"""Booking rules refuse, at start, a value outside the range a clinic could want, naming the variable and the
range (booking/settings.py says what each value used to do)."""

from __future__ import annotations

import pytest

from booking.schedules import MAX_PUBLISH_DAYS
from booking.settings import load_booking_settings
from tests.settings_refusals import case_ids, refusal, taken



# Each bad value and what it did before it was refused.
REFUSED = [
    ("BOOKING_MIN_NOTICE_MINUTES", "-60", "a whole number from 0 to 10080"),  # slots already started were bookable
    ("BOOKING_MIN_NOTICE_MINUTES", "20160", "a whole number from 0 to 10080"),  # nothing offered, silently
    ("BOOKING_CANCEL_WINDOW_HOURS", "-24", "a whole number from 0 to 168"),  # a no-show cancelled after the fact
    ("BOOKING_CANCEL_WINDOW_HOURS", "1000", "a whole number from 0 to 168"),  # nothing could ever be cancelled
    ("BOOKING_CANCEL_WINDOW_HOURS", "20000000", "a whole number from 0 to 168"),  # every cancel a 500
    ("BOOKING_MAX_ACTIVE", "0", "a whole number from 1 to 20"),  # every booking refused
    ("BOOKING_MAX_ACTIVE", "-1", "a whole number from 1 to 20"),
    ("BOOKING_MAX_ACTIVE", "1000", "a whole number from 1 to 20"),  # one customer holds a branch's seats
    ("BOOKING_REMINDER_LEAD_HOURS", "0", "a whole number from 1 to 168"),  # no reminder ever, silently
    ("BOOKING_REMINDER_LEAD_HOURS", "-1", "a whole number from 1 to 168"),
    ("BOOKING_REMINDER_LEAD_HOURS", "100000000", "a whole number from 1 to 168"),  # the scan failed every 10 min
    ("BOOKING_REMINDER_TEMPLATE_ID", "   ", "a text of 1 to 64 characters, not only spaces"),  # WeChat refused all
    ("BOOKING_REMINDER_TEMPLATE_ID", "t" * 65, "a text of 1 to 64 characters"),
    ("BOOKING_FOLLOW_UP_DAYS", "-1,3", "a comma-separated list of at least one whole number, each from 0 to 365"),
    ("BOOKING_FOLLOW_UP_DAYS", "1,3,5000000", "each from 0 to 365"),  # the due date overflowed: the job failed
    ("BOOKING_FOLLOW_UP_DAYS", "1,3,x", "a comma-separated list of at least one whole number"),  # a traceback
    ("BOOKING_FOLLOW_UP_DAYS", " , ", "a comma-separated list of at least one whole number"),
    ("BOOKING_PUBLISH_HORIZON_DAYS", "0", "a whole number from 1 to 92"),  # the nightly publication failed
    ("BOOKING_PUBLISH_HORIZON_DAYS", "-1", "a whole number from 1 to 92"),
    ("BOOKING_PUBLISH_HORIZON_DAYS", str(MAX_PUBLISH_DAYS + 1), "a whole number from 1 to 92"),  # the same
]


@pytest.mark.parametrize(("name", "value", "must_be"), REFUSED, ids=case_ids(REFUSED))
def test_a_bad_booking_value_is_refused_at_start_naming_the_variable_and_its_range(monkeypatch, name, value,
                                                                                  must_be):
    message = refusal(monkeypatch, {name: value}, load_booking_settings)
    assert f"{name} must be " in message and must_be in message, message
    assert repr(value) in message, message


def test_a_notice_reaching_past_the_publish_horizon_is_refused(monkeypatch):
    """Three days published, three days' notice: no slot was ever offered."""
    message = refusal(monkeypatch, {"BOOKING_PUBLISH_HORIZON_DAYS": "3",
                                    "BOOKING_MIN_NOTICE_MINUTES": str(3 * 24 * 60)}, load_booking_settings)
    assert "BOOKING_MIN_NOTICE_MINUTES must be a whole number from 0 to 4319 (it is '4320')" in message


# The edges of each range, and values a clinic could choose.
ACCEPTED = [
    ("BOOKING_MIN_NOTICE_MINUTES", "0", "min_notice_minutes", 0),
    ("BOOKING_MIN_NOTICE_MINUTES", "10080", "min_notice_minutes", 10_080),
    ("BOOKING_CANCEL_WINDOW_HOURS", "0", "cancel_window_hours", 0),
    ("BOOKING_CANCEL_WINDOW_HOURS", "168", "cancel_window_hours", 168),
    ("BOOKING_MAX_ACTIVE", "1", "max_active_bookings", 1),
    ("BOOKING_MAX_ACTIVE", "20", "max_active_bookings", 20),
    ("BOOKING_REMINDER_LEAD_HOURS", "1", "reminder_lead_hours", 1),
    ("BOOKING_REMINDER_LEAD_HOURS", "168", "reminder_lead_hours", 168),
    ("BOOKING_REMINDER_TEMPLATE_ID", " tmpl-Xy3-reminder ", "reminder_template_id", "tmpl-Xy3-reminder"),
    ("BOOKING_REMINDER_TEMPLATE_ID", "t" * 64, "reminder_template_id", "t" * 64),
    ("BOOKING_FOLLOW_UP_DAYS", "30,0,7,7", "follow_up_days", (0, 7, 30)),  # 0: a call on the visit's evening
    ("BOOKING_FOLLOW_UP_DAYS", "1,,3", "follow_up_days", (1, 3)),  # a blank item used to stop the start
    ("BOOKING_FOLLOW_UP_DAYS", "365", "follow_up_days", (365,)),
    ("BOOKING_PUBLISH_HORIZON_DAYS", "1", "publish_horizon_days", 1),
    ("BOOKING_PUBLISH_HORIZON_DAYS", str(MAX_PUBLISH_DAYS), "publish_horizon_days", MAX_PUBLISH_DAYS),
]


@pytest.mark.parametrize(("name", "value", "field", "expected"), ACCEPTED, ids=case_ids(ACCEPTED))
def test_a_booking_value_within_its_range_is_taken(monkeypatch, name, value, field, expected):
    assert taken(monkeypatch, name, value, load_booking_settings, field) == expected


def test_a_day_of_horizon_takes_a_notice_of_less_than_a_day(monkeypatch):
    monkeypatch.setenv("BOOKING_PUBLISH_HORIZON_DAYS", "1")
    monkeypatch.setenv("BOOKING_MIN_NOTICE_MINUTES", "1439")
    assert load_booking_settings().min_notice_minutes == 1439
