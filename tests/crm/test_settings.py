"""CRM settings refuse a bad value at start, naming the variable and its range, instead of running with it."""

from __future__ import annotations

import os
import socket
import sys
from datetime import datetime, timedelta

import pytest

from crm.outreach import quiet_until
from crm.settings import load_crm_settings, override
from kernel import clock
from tests.api.test_production_start import _free_port, _run_to_exit
from tests.settings_refusals import case_ids, refusal, taken

NAME = "CRM_SUBSCRIPTION_CREDITS_MAX"


@pytest.mark.parametrize("value", ["0", "-2", "2.5", "five"])
def test_subscription_credits_max_refuses_what_is_not_a_positive_whole_number(monkeypatch, value):
    # 0 (or less) would bank no credit at all (every consent report taken, no outreach ever sent);
    # a non-number used to surface as a bare ValueError at the first consent report.
    message = refusal(monkeypatch, {NAME: value}, load_crm_settings)
    assert NAME in message and repr(value) in message


def test_subscription_credits_max_takes_a_positive_whole_number(monkeypatch):
    monkeypatch.setenv(NAME, "3")
    assert load_crm_settings().subscription_credits_max == 3


# Each bad value and what it did before it was refused (crm/settings.py says why each range is what it is).
REFUSED = [
    # No upper bound let a client replaying its consent report bank credits without end.
    ("CRM_SUBSCRIPTION_CREDITS_MAX", "1000", "a whole number from 1 to 50"),
    ("CRM_SUBSCRIPTION_CREDITS_MAX", "2147483648", "a whole number from 1 to 50"),
    ("CRM_QUIET_START_HOUR", "25", "a whole number from 0 to 23"),  # never reached: messages until midnight
    ("CRM_QUIET_START_HOUR", "-1", "a whole number from 0 to 23"),
    ("CRM_QUIET_END_HOUR", "24", "a whole number from 0 to 23"),  # the outreach job failed every night
    ("CRM_QUIET_END_HOUR", "-1", "a whole number from 0 to 23"),
    ("CRM_MARKETING_CAP_DAYS", "0", "a whole number from 1 to 365"),  # no frequency cap at all
    ("CRM_MARKETING_CAP_DAYS", "-7", "a whole number from 1 to 365"),
    ("CRM_MARKETING_CAP_DAYS", "1000000", "a whole number from 1 to 365"),  # the cap's date overflowed
    ("CRM_OUTREACH_CHUNK", "0", "a whole number from 1 to 2000"),  # nobody handled, the outreach ran for ever
    ("CRM_OUTREACH_CHUNK", "-1", "a whole number from 1 to 2000"),  # the job failed
    ("CRM_OUTREACH_CHUNK", "100000", "a whole number from 1 to 2000"),
    ("CRM_SCORING_CHUNK", "0", "a whole number from 1 to 50000"),  # nobody scored, every night, silently
    ("CRM_SCORING_CHUNK", "-1", "a whole number from 1 to 50000"),  # LIMIT -1: the nightly job failed
    ("CRM_STAFF_REWARD_BP", "-5", "a whole number from 0 to 3000"),  # negative rewards
    ("CRM_STAFF_REWARD_BP", "20000", "a whole number from 0 to 3000"),  # twice the spend paid out
    ("CRM_STAFF_REWARD_BP", "5000", "a whole number from 0 to 3000"),  # the default with an extra zero
    ("CRM_STAFF_REWARD_VALID_DAYS", "0", "a whole number from 1 to 1095"),  # nothing ever rewarded
    ("CRM_STAFF_REWARD_VALID_DAYS", "-30", "a whole number from 1 to 1095"),
    ("CRM_STAFF_REWARD_VALID_DAYS", "1000000", "a whole number from 1 to 1095"),  # the hourly job overflowed
    ("CRM_STAFF_REWARD_HOLD_DAYS", "0", "a whole number from 1 to 90"),  # paid before any refund, no clawback
    ("CRM_STAFF_REWARD_HOLD_DAYS", "-1", "a whole number from 1 to 90"),
    ("CRM_BIRTHDAY_VOUCHER_VALID_DAYS", "0", "a whole number from 1 to 365"),  # expired on issue
    ("CRM_BIRTHDAY_VOUCHER_VALID_DAYS", "-3", "a whole number from 1 to 365"),
    ("CRM_CONSULTATION_FOLLOW_UP_DAYS", "0", "a whole number from 1 to 90"),  # a task before the customer paid
    ("CRM_CONSULTATION_FOLLOW_UP_DAYS", "-40", "a whole number from 1 to 90"),  # no task ever
    ("CRM_OUTREACH_TEMPLATE_IDS", ",", "a comma-separated list of at least one item"),  # every consent refused
    ("CRM_OUTREACH_TEMPLATE_IDS", " , ", "a comma-separated list of at least one item"),
    ("CRM_OUTREACH_TEMPLATE_IDS", "ok-id," + "x" * 65,
     "a comma-separated list of at least one item, each of 1 to 64 characters"),  # longer than the column
    ("CRM_BIRTHDAY_VOUCHER_TITLE", "   ", "a text of 1 to 128 characters, not only spaces"),  # a blank voucher
    ("CRM_BIRTHDAY_VOUCHER_TITLE", "生" * 129, "a text of 1 to 128 characters"),  # cut short silently
]


@pytest.mark.parametrize(("name", "value", "must_be"), REFUSED, ids=case_ids(REFUSED))
def test_a_bad_crm_value_is_refused_at_start_naming_the_variable_and_its_range(monkeypatch, name, value, must_be):
    message = refusal(monkeypatch, {name: value}, load_crm_settings)
    assert f"{name} must be {must_be}" in message, message
    assert repr(value) in message, message


# The edges of each range, and values a clinic could choose, are taken as they are.
ACCEPTED = [
    ("CRM_SUBSCRIPTION_CREDITS_MAX", "1", "subscription_credits_max", 1),
    ("CRM_SUBSCRIPTION_CREDITS_MAX", "50", "subscription_credits_max", 50),
    ("CRM_QUIET_START_HOUR", "0", "quiet_start_hour", 0),
    ("CRM_QUIET_END_HOUR", "23", "quiet_end_hour", 23),
    ("CRM_MARKETING_CAP_DAYS", "1", "marketing_cap_days", 1),
    ("CRM_MARKETING_CAP_DAYS", "365", "marketing_cap_days", 365),
    ("CRM_OUTREACH_CHUNK", "2000", "outreach_chunk", 2000),
    ("CRM_SCORING_CHUNK", "1", "scoring_chunk", 1),
    ("CRM_STAFF_REWARD_BP", "0", "staff_reward_bp", 0),
    ("CRM_STAFF_REWARD_BP", "3000", "staff_reward_bp", 3000),
    ("CRM_STAFF_REWARD_VALID_DAYS", "730", "staff_reward_valid_days", 730),
    ("CRM_STAFF_REWARD_HOLD_DAYS", "90", "staff_reward_hold_days", 90),
    ("CRM_BIRTHDAY_VOUCHER_VALID_DAYS", "365", "birthday_voucher_valid_days", 365),
    ("CRM_CONSULTATION_FOLLOW_UP_DAYS", "1", "consultation_follow_up_days", 1),
    ("CRM_OUTREACH_TEMPLATE_IDS", " tmpl-a ,, tmpl-b ", "outreach_template_ids", ("tmpl-a", "tmpl-b")),
    ("CRM_BIRTHDAY_VOUCHER_TITLE", "生" * 128, "birthday_voucher_title", "生" * 128),
    ("CRM_BIRTHDAY_VOUCHER_TITLE", " 生日礼 ", "birthday_voucher_title", "生日礼"),  # stored without its spaces
]


@pytest.mark.parametrize(("name", "value", "field", "expected"), ACCEPTED,
                         ids=case_ids(ACCEPTED))
def test_a_crm_value_within_its_range_is_taken(monkeypatch, name, value, field, expected):
    assert taken(monkeypatch, name, value, load_crm_settings, field) == expected


def test_equal_quiet_start_and_end_hours_mean_no_quiet_hours(monkeypatch):
    """The one reading of start == end the outreach code already had: the interval [h, h) is empty."""
    monkeypatch.setenv("CRM_QUIET_START_HOUR", "9")
    monkeypatch.setenv("CRM_QUIET_END_HOUR", "9")
    settings = load_crm_settings()
    assert (settings.quiet_start_hour, settings.quiet_end_hour) == (9, 9)
    midnight = datetime(2026, 5, 1, tzinfo=clock.clinic_zone())
    with override(quiet_start_hour=9, quiet_end_hour=9):
        assert [quiet_until(midnight + timedelta(minutes=30 * i)) for i in range(48)] == [None] * 48


@pytest.mark.parametrize("command", ["serve", "worker"])
async def test_a_start_with_a_bad_credits_max_exits_naming_it(command):
    """Not at the first consent report: the app and the worker read every room's settings as they start."""
    port = _free_port()
    args = {"serve": [sys.executable, "-m", "api", "serve", "--no-demo", "--port", str(port)],
            "worker": [sys.executable, "-m", "arq", "workers.settings.WorkerSettings"]}[command]
    code, output = await _run_to_exit(args, {**os.environ, NAME: "0"}, timeout=30)
    assert code != 0, output
    assert f"{NAME} must be a whole number from 1 to 50 (it is '0')" in output, output
    with socket.socket() as sock:  # nothing ever listened
        assert sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("command", ["serve", "worker"])
async def test_a_start_with_quiet_hours_past_midnight_exits_naming_the_range(command):
    """CRM_QUIET_END_HOUR=24 used to start, then fail every outreach run that met the quiet hours."""
    port = _free_port()
    args = {"serve": [sys.executable, "-m", "api", "serve", "--no-demo", "--port", str(port)],
            "worker": [sys.executable, "-m", "arq", "workers.settings.WorkerSettings"]}[command]
    code, output = await _run_to_exit(args, {**os.environ, "CRM_QUIET_END_HOUR": "24"}, timeout=30)
    assert code != 0, output
    assert "CRM_QUIET_END_HOUR must be a whole number from 0 to 23 (it is '24')" in output, output
    with socket.socket() as sock:  # nothing ever listened
        assert sock.connect_ex(("127.0.0.1", port)) != 0
