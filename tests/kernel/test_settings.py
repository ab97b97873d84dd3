"""The kernel's settings refuse, at start, a value outside the range a clinic could want, naming the variable and
the range, and list every such variable in one refusal (kernel/settings.py says what each value used to do)."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from kernel.settings import load_settings
from tests.api.test_production_start import _free_port, _run_to_exit
from tests.settings_refusals import case_ids, refusal, taken


def _refusal(monkeypatch, env: dict[str, str]) -> str:
    return refusal(monkeypatch, env, load_settings)


# Each bad value and what it did before it was refused.
REFUSED = [
    ("DB_POOL_MAX", "0", "a whole number from 1 to 150"),  # no maximum: a crowd took every database connection
    ("DB_POOL_MAX", "-1", "a whole number from 1 to 150"),  # the pool was never created
    ("DB_POOL_MAX", "1000", "a whole number from 1 to 150"),  # more than a default MariaDB has for everyone
    ("DB_POOL_RECYCLE_SECONDS", "0", "a whole number from 60 to 28800"),  # a new connection per transaction
    ("DB_POOL_RECYCLE_SECONDS", "-1", "a whole number from 60 to 28800"),  # never recycled
    ("DB_POOL_RECYCLE_SECONDS", "86400", "a whole number from 60 to 28800"),  # past the server's wait_timeout
    ("DB_CONNECT_TIMEOUT_SECONDS", "0", "a whole number from 1 to 30"),  # every connection failed at once
    ("DB_CONNECT_TIMEOUT_SECONDS", "-5", "a whole number from 1 to 30"),
    ("DB_CONNECT_TIMEOUT_SECONDS", "3600", "a whole number from 1 to 30"),  # an outage held requests an hour
    ("MAX_REQUEST_BODY_BYTES", "0", "a whole number from 100000 to 10000000"),  # Litestar: no limit at all
    ("MAX_REQUEST_BODY_BYTES", "-1", "a whole number from 100000 to 10000000"),  # every body refused, logins too
    ("MAX_REQUEST_BODY_BYTES", "1000000000", "a whole number from 100000 to 10000000"),
    ("OUTBOX_POLL_SECONDS", "0", "a number from 0.1 to 30"),  # the relay polled in a busy loop
    ("OUTBOX_POLL_SECONDS", "-1", "a number from 0.1 to 30"),
    ("OUTBOX_POLL_SECONDS", "nan", "a number from 0.1 to 30"),  # a busy loop too
    ("OUTBOX_POLL_SECONDS", "inf", "a number from 0.1 to 30"),  # never polled again: no job ever ran
    ("OUTBOX_POLL_SECONDS", "soon", "a number from 0.1 to 30"),  # a bare ValueError at start
    ("OUTBOX_POLL_SECONDS", "600", "a number from 0.1 to 30"),
    ("OUTBOX_BATCH_SIZE", "0", "a whole number from 1 to 10000"),  # nothing relayed, no job ever ran
    ("OUTBOX_BATCH_SIZE", "-1", "a whole number from 1 to 10000"),  # every pass failed
    ("OUTBOX_BATCH_SIZE", "1000000", "a whole number from 1 to 10000"),
    ("CUSTOMER_TOKEN_TTL_SECONDS", "0", "a whole number from 3600 to 2592000"),  # tokens expired at issue
    ("CUSTOMER_TOKEN_TTL_SECONDS", "-60", "a whole number from 3600 to 2592000"),
    ("CUSTOMER_TOKEN_TTL_SECONDS", "315360000", "a whole number from 3600 to 2592000"),  # ten years
    ("CUSTOMER_TOKEN_TTL_SECONDS", "1000000000000", "a whole number from 3600 to 2592000"),  # login a 500
    ("STAFF_TOKEN_TTL_SECONDS", "0", "a whole number from 900 to 86400"),
    ("STAFF_TOKEN_TTL_SECONDS", "2592000", "a whole number from 900 to 86400"),  # a finance token for a month
    ("WECHAT_TIMEOUT_SECONDS", "0", "a number from 1 to 30"),  # every login failed at once
    ("WECHAT_TIMEOUT_SECONDS", "-1", "a number from 1 to 30"),
    ("WECHAT_TIMEOUT_SECONDS", "five", "a number from 1 to 30"),
    ("WECHAT_TIMEOUT_SECONDS", "600", "a number from 1 to 30"),
    ("PAY_TIMEOUT_SECONDS", "0", "a number from 1 to 30"),  # every payment failed at once
    ("PAY_TIMEOUT_SECONDS", "inf", "a number from 1 to 30"),
    ("PAY_WINDOW_MINUTES", "0", "a whole number from 5 to 120"),  # orders expired as placed: nobody could pay
    ("PAY_WINDOW_MINUTES", "-15", "a whole number from 5 to 120"),
    ("PAY_WINDOW_MINUTES", "1440", "a whole number from 5 to 120"),  # past WeChat's prepay id, stock held
    ("PAY_NOTIFY_MAX_AGE_SECONDS", "0", "a whole number from 60 to 900"),  # every notification refused
    ("PAY_NOTIFY_MAX_AGE_SECONDS", "-1", "a whole number from 60 to 900"),
    ("PAY_NOTIFY_MAX_AGE_SECONDS", "86400", "a whole number from 60 to 900"),  # day-old replays taken
    ("PAY_RETRY_BASE_SECONDS", "0", "a number from 0.1 to 300"),  # retries at once, tries used up in a second
    ("PAY_RETRY_BASE_SECONDS", "-10", "a number from 0.1 to 300"),
    ("PAY_RETRY_BASE_SECONDS", "3600", "a number from 0.1 to 300"),
    ("PAY_RETRY_MAX_SECONDS", "5", "a number from 10 to 3600"),  # below the first delay (10 by default)
    ("PAY_RETRY_MAX_SECONDS", "86400", "a number from 10 to 3600"),
    ("RATE_LIMIT_LOGIN_PER_IP", "30/0", "<requests>/<seconds> with at least 1 request and a window of 1 to 86400 "
                                        "seconds"),  # ZeroDivisionError: every login a 500
    ("RATE_LIMIT_LOGIN_PER_IP", "30/-60", "a window of 1 to 86400 seconds"),  # no limit at all
    ("RATE_LIMIT_LOGIN_PER_IP", "0/60", "at least 1 request"),  # everyone refused
    ("RATE_LIMIT_LOGIN_PER_IP", "30/604800", "a window of 1 to 86400 seconds"),  # locked out for a week
    ("RATE_LIMIT_LOGIN_PER_IP", "thirty", "<requests>/<seconds>"),  # a bare ValueError at start
    ("RATE_LIMIT_CHECK_IN_PER_CUSTOMER", "0/60", "at least 1 request"),  # no check-in ever
    ("RATE_LIMIT_REDEMPTION_PER_IP", "20/60/5", "<requests>/<seconds>"),
    # The per-username limit is the guard against password guessing: this fast it is no guard.
    ("RATE_LIMIT_STAFF_LOGIN_PER_USERNAME", "1000/1", "at most 1 a second on average"),
    ("RATE_LIMIT_STAFF_LOGIN_PER_USERNAME", "100000/60", "at most 1 a second on average"),
    # Read with ZoneInfo at the first request that asked for the clinic's day, and failed there.
    ("CLINIC_TIMEZONE", "Mars/Base", "an IANA time zone name this machine's zone database knows"),
    ("CLINIC_TIMEZONE", "Asia/Shang_hai", "an IANA time zone name"),
    ("CLINIC_TIMEZONE", "asia/shanghai", "an IANA time zone name"),
    ("CLINIC_TIMEZONE", "/etc/localtime", "an IANA time zone name"),
    ("CLINIC_TIMEZONE", "../../etc/passwd", "an IANA time zone name"),
    ("CLINIC_TIMEZONE", "zone.tab", "an IANA time zone name"),
    # Daylight saving time: reports count clinic days with the offset of 1 January, an hour off all summer.
    ("CLINIC_TIMEZONE", "Europe/Berlin", "a time zone with one UTC offset all year (no daylight saving time)"),
    ("CLINIC_TIMEZONE", "America/New_York", "in summer they would be an hour off"),
    # `inf` kept the first answer (a day's slots, the shelf, a campaign page) until the process restarted.
    ("PUBLIC_CACHE_SECONDS", "inf", "a number from 0 to 60"),
    ("PUBLIC_CACHE_SECONDS", "3600", "a number from 0 to 60"),
    ("PUBLIC_CACHE_SECONDS", "-1", "a number from 0 to 60"),
    ("PUBLIC_CACHE_SECONDS", "soon", "a number from 0 to 60"),
    # An erased customer's token kept reading that long; a word stopped the start as a module was imported.
    ("CUSTOMER_SEEN_ACTIVE_SECONDS", "3600", "a number from 0 to 5"),
    ("CUSTOMER_SEEN_ACTIVE_SECONDS", "inf", "a number from 0 to 5"),
    ("CUSTOMER_SEEN_ACTIVE_SECONDS", "-1", "a number from 0 to 5"),
    ("CUSTOMER_SEEN_ACTIVE_SECONDS", "soon", "a number from 0 to 5"),
]


@pytest.mark.parametrize(("name", "value", "must_be"), REFUSED, ids=case_ids(REFUSED))
def test_a_bad_kernel_value_is_refused_at_start_naming_the_variable_and_its_range(monkeypatch, name, value, must_be):
    message = _refusal(monkeypatch, {name: value})
    assert f"{name} must be " in message and must_be in message, message
    assert repr(value) in message, message


def test_the_pool_minimum_is_refused_above_the_maximum(monkeypatch):
    """aiomysql refused to create the pool, at the first query."""
    message = _refusal(monkeypatch, {"DB_POOL_MAX": "10", "DB_POOL_MIN": "11"})
    assert "DB_POOL_MIN must be a whole number from 0 to 10 (it is '11')" in message, message
    message = _refusal(monkeypatch, {"DB_POOL_MIN": "-1"})
    assert "DB_POOL_MIN must be a whole number from 0 to 10 (it is '-1')" in message, message


# The edges of each range, and values a clinic (or this project's own tests and benchmarks) could choose.
ACCEPTED = [
    ("DB_POOL_MAX", "1", "db.pool_max", 1),
    ("DB_POOL_MAX", "150", "db.pool_max", 150),
    ("DB_POOL_MIN", "0", "db.pool_min", 0),
    ("DB_POOL_RECYCLE_SECONDS", "60", "db.pool_recycle_seconds", 60),
    ("DB_POOL_RECYCLE_SECONDS", "28800", "db.pool_recycle_seconds", 28_800),
    ("DB_CONNECT_TIMEOUT_SECONDS", "1", "db.connect_timeout_seconds", 1),
    ("DB_CONNECT_TIMEOUT_SECONDS", "30", "db.connect_timeout_seconds", 30),
    ("MAX_REQUEST_BODY_BYTES", "100000", "app.max_request_body_bytes", 100_000),
    ("MAX_REQUEST_BODY_BYTES", "10000000", "app.max_request_body_bytes", 10_000_000),
    ("OUTBOX_POLL_SECONDS", "0.1", "worker.outbox_poll_seconds", 0.1),
    ("OUTBOX_POLL_SECONDS", " 30 ", "worker.outbox_poll_seconds", 30.0),
    ("OUTBOX_BATCH_SIZE", "1", "worker.outbox_batch_size", 1),
    ("OUTBOX_BATCH_SIZE", "10000", "worker.outbox_batch_size", 10_000),
    ("CUSTOMER_TOKEN_TTL_SECONDS", "3600", "auth.customer_token_ttl_seconds", 3600),
    ("CUSTOMER_TOKEN_TTL_SECONDS", "2592000", "auth.customer_token_ttl_seconds", 30 * 24 * 3600),
    ("STAFF_TOKEN_TTL_SECONDS", "900", "auth.staff_token_ttl_seconds", 900),
    ("STAFF_TOKEN_TTL_SECONDS", "86400", "auth.staff_token_ttl_seconds", 86_400),
    ("WECHAT_TIMEOUT_SECONDS", "1", "wechat.timeout_seconds", 1.0),
    ("WECHAT_TIMEOUT_SECONDS", "30", "wechat.timeout_seconds", 30.0),
    ("PAY_TIMEOUT_SECONDS", "2.5", "pay.timeout_seconds", 2.5),
    ("PAY_WINDOW_MINUTES", "5", "pay.payment_window_minutes", 5),
    ("PAY_WINDOW_MINUTES", "120", "pay.payment_window_minutes", 120),
    ("PAY_NOTIFY_MAX_AGE_SECONDS", "60", "pay.notify_max_age_seconds", 60),
    ("PAY_NOTIFY_MAX_AGE_SECONDS", "900", "pay.notify_max_age_seconds", 900),
    ("PAY_RETRY_BASE_SECONDS", "0.1", "pay.retry_base_seconds", 0.1),  # tests/failures/support.py's pace
    ("PAY_RETRY_BASE_SECONDS", "300", "pay.retry_base_seconds", 300.0),
    ("PAY_RETRY_MAX_SECONDS", "10", "pay.retry_max_seconds", 10.0),  # equal to the first delay: a steady pace
    ("PAY_RETRY_MAX_SECONDS", "3600", "pay.retry_max_seconds", 3600.0),
    ("RATE_LIMIT_LOGIN_PER_IP", "100000000/60", "rate_limit.login_per_ip", (100_000_000, 60)),  # bench/stack.py
    ("RATE_LIMIT_LOGIN_PER_IP", "3/86400", "rate_limit.login_per_ip", (3, 86_400)),  # tests/api/test_rate_limits
    ("RATE_LIMIT_LOGIN_PER_IP", "20", "rate_limit.login_per_ip", (20, 60)),  # a count alone is per minute
    ("RATE_LIMIT_CHECK_IN_PER_IP", "1/1", "rate_limit.check_in_per_ip", (1, 1)),
    ("RATE_LIMIT_STAFF_LOGIN_PER_USERNAME", "5/86400", "rate_limit.staff_login_per_username", (5, 86_400)),
    ("RATE_LIMIT_STAFF_LOGIN_PER_USERNAME", "60/60", "rate_limit.staff_login_per_username", (60, 60)),
    ("CLINIC_TIMEZONE", "Asia/Urumqi", "app.clinic_timezone", "Asia/Urumqi"),
    ("CLINIC_TIMEZONE", " Asia/Hong_Kong ", "app.clinic_timezone", "Asia/Hong_Kong"),
    ("CLINIC_TIMEZONE", "UTC", "app.clinic_timezone", "UTC"),
    ("CLINIC_TIMEZONE", "Asia/Shanghai", "app.clinic_timezone", "Asia/Shanghai"),
    ("CLINIC_TIMEZONE", "Asia/Tokyo", "app.clinic_timezone", "Asia/Tokyo"),  # tests/console's second clinic
    ("PUBLIC_CACHE_SECONDS", "0", "app.public_cache_seconds", 0.0),  # the caches off (the suite's own value)
    ("PUBLIC_CACHE_SECONDS", "60", "app.public_cache_seconds", 60.0),
    ("PUBLIC_CACHE_SECONDS", "2.5", "app.public_cache_seconds", 2.5),
    ("CUSTOMER_SEEN_ACTIVE_SECONDS", "0", "auth.customer_seen_active_seconds", 0.0),  # read on every request
    ("CUSTOMER_SEEN_ACTIVE_SECONDS", "1", "auth.customer_seen_active_seconds", 1.0),
    ("CUSTOMER_SEEN_ACTIVE_SECONDS", "2.5", "auth.customer_seen_active_seconds", 2.5),
    ("CUSTOMER_SEEN_ACTIVE_SECONDS", "5", "auth.customer_seen_active_seconds", 5.0),
]


@pytest.mark.parametrize(("name", "value", "field", "expected"), ACCEPTED, ids=case_ids(ACCEPTED))
def test_a_kernel_value_within_its_range_is_taken(monkeypatch, name, value, field, expected):
    assert taken(monkeypatch, name, value, load_settings, field) == expected


def test_the_pool_minimum_may_equal_the_maximum(monkeypatch):
    monkeypatch.setenv("DB_POOL_MAX", "5")
    monkeypatch.setenv("DB_POOL_MIN", "5")
    assert (load_settings().db.pool_min, load_settings().db.pool_max) == (5, 5)


def test_the_public_cache_lifetime_keeps_its_default(monkeypatch):
    monkeypatch.delenv("PUBLIC_CACHE_SECONDS", raising=False)
    assert load_settings().app.public_cache_seconds == 2.0


def test_a_cache_made_at_import_does_not_judge_its_lifetime(monkeypatch):
    """Caches are made as their modules are imported: a bad PUBLIC_CACHE_SECONDS stopped the worker's start there,
    alone, before the kernel's other values were read. The start's reading of the settings judges it instead."""
    from kernel import settings
    from kernel.cache import SharedAnswerCache

    monkeypatch.setenv("PUBLIC_CACHE_SECONDS", "inf")
    SharedAnswerCache("probe")  # nothing read yet
    monkeypatch.setenv("PUBLIC_CACHE_SECONDS", "7")
    settings.get_settings.cache_clear()
    try:
        assert SharedAnswerCache("probe").seconds == 7.0  # taken from the settings the start read
    finally:
        settings.get_settings.cache_clear()


def test_every_bad_kernel_value_is_listed_in_one_refusal(monkeypatch):
    """As production's problems are: the operator fixes them in one go, not one start at a time."""
    message = _refusal(monkeypatch, {"DB_POOL_MAX": "0", "CUSTOMER_TOKEN_TTL_SECONDS": "0",
                                     "OUTBOX_POLL_SECONDS": "nan", "CLINIC_TIMEZONE": "Mars/Base",
                                     "RATE_LIMIT_LOGIN_PER_IP": "30/0", "PUBLIC_CACHE_SECONDS": "inf",
                                     "CUSTOMER_SEEN_ACTIVE_SECONDS": "soon"})
    assert message.startswith("refusing to start with 7 settings outside their ranges:"), message
    for name in ("DB_POOL_MAX", "CUSTOMER_TOKEN_TTL_SECONDS", "OUTBOX_POLL_SECONDS", "CLINIC_TIMEZONE",
                 "RATE_LIMIT_LOGIN_PER_IP", "PUBLIC_CACHE_SECONDS", "CUSTOMER_SEEN_ACTIVE_SECONDS"):
        assert f"  - {name} must be " in message, (name, message)


def test_every_rooms_bad_values_are_listed_in_one_refusal(monkeypatch):
    """rooms.install reads every room's settings before it stops the start."""
    from booking.settings import load_booking_settings
    from crm.settings import load_crm_settings
    from kernel.settings import read_all
    from points_mall.settings import load_points_settings
    from reports.settings import load_report_settings

    for name, value in {"BOOKING_MAX_ACTIVE": "0", "BOOKING_PUBLISH_HORIZON_DAYS": "0",
                        "REPORTS_FOLD_CHUNK": "0", "CRM_SUBSCRIPTION_CREDITS_MAX": "1000"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as refused:
        read_all([load_booking_settings, load_points_settings, load_crm_settings, load_report_settings])
    message = str(refused.value.code)
    assert message.startswith("refusing to start with 4 settings outside their ranges:"), message
    for line in ("BOOKING_MAX_ACTIVE must be a whole number from 1 to 20 (it is '0')",
                 "BOOKING_PUBLISH_HORIZON_DAYS must be a whole number from 1 to 92 (it is '0')",
                 "REPORTS_FOLD_CHUNK must be a whole number from 1 to 50000 (it is '0')",
                 "CRM_SUBSCRIPTION_CREDITS_MAX must be a whole number from 1 to 50 (it is '1000')"):
        assert line in message, (line, message)


def test_one_bad_value_is_named_in_the_first_line(monkeypatch):
    message = _refusal(monkeypatch, {"PAY_WINDOW_MINUTES": "0"})
    assert message.startswith("refusing to start with PAY_WINDOW_MINUTES='0':"), message


START = {"serve": [sys.executable, "-m", "api", "serve", "--no-demo"],
         "worker": [sys.executable, "-m", "arq", "workers.settings.WorkerSettings"]}


async def _start_refused(command: str, env: dict[str, str]) -> str:
    port = _free_port()
    args = [*START[command], *(["--port", str(port)] if command == "serve" else [])]
    code, output = await _run_to_exit(args, {**os.environ, **env}, timeout=30)
    assert code != 0, output
    with socket.socket() as sock:  # nothing ever listened
        assert sock.connect_ex(("127.0.0.1", port)) != 0
    return output


@pytest.mark.parametrize("command", list(START))
async def test_a_start_with_bad_kernel_values_exits_naming_each(command):
    """A pool of no maximum, tokens expired at issue and a zone nobody knows used to start (the zone failing at
    the first request that asked for the clinic's day). A cache lifetime past a minute is listed with them: it
    stopped the worker alone as the caches' modules were imported, and was not named by `serve` at all."""
    output = await _start_refused(command, {"DB_POOL_MAX": "0", "CUSTOMER_TOKEN_TTL_SECONDS": "0",
                                            "CLINIC_TIMEZONE": "Mars/Base", "PUBLIC_CACHE_SECONDS": "inf"})
    assert "refusing to start with 4 settings outside their ranges:" in output, output
    for line in ("DB_POOL_MAX must be a whole number from 1 to 150 (it is '0')",
                 "CUSTOMER_TOKEN_TTL_SECONDS must be a whole number from 3600 to 2592000 (it is '0')",
                 "CLINIC_TIMEZONE must be an IANA time zone name this machine's zone database knows, such as "
                 "Asia/Shanghai (it is 'Mars/Base')",
                 "PUBLIC_CACHE_SECONDS must be a number from 0 to 60 (it is 'inf')"):
        assert line in output, (line, output)


@pytest.mark.parametrize("command", list(START))
async def test_a_start_with_bad_room_values_exits_naming_each(command):
    """No booking possible and no report ever folded used to start, and be found out by customers and staff."""
    output = await _start_refused(command, {"BOOKING_MAX_ACTIVE": "0", "REPORTS_FOLD_CHUNK": "0"})
    for line in ("BOOKING_MAX_ACTIVE must be a whole number from 1 to 20 (it is '0')",
                 "REPORTS_FOLD_CHUNK must be a whole number from 1 to 50000 (it is '0')"):
        assert line in output, (line, output)


def test_the_failure_tests_fast_retries_are_taken(monkeypatch):
    """tests/failures/support.py asks about a refund again after 0.1 s, 0.2 s... up to 1 s."""
    monkeypatch.setenv("PAY_RETRY_BASE_SECONDS", "0.1")
    monkeypatch.setenv("PAY_RETRY_MAX_SECONDS", "1")
    settings = load_settings()
    assert (settings.pay.retry_base_seconds, settings.pay.retry_max_seconds) == (0.1, 1.0)
