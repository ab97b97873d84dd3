"""A production start (APP_ENV=production) never serves a sandbox adapter and refuses missing secrets.

The README's production variables (plus WeChat Pay's) start a server with no `/sandbox` route whose
login refuses `sandbox:<name>`; leaving any of them out stops `python -m api serve`, uvicorn on
`api.main:app` and the arq worker with a message naming every missing variable.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import httpx
import msgspec
import pytest

from tests.orders.wechatpay_fake import FakeWeChatPay
from tests.fakes.wechat import FakeWeChat

ROOT = Path(__file__).resolve().parents[2]

# What a production environment must hold, beside DATABASE_URL and REDIS_URL.
REQUIRED = [
    "SECRET_KEY", "WECHAT_MODE", "WECHAT_APPID", "WECHAT_SECRET", "PAY_MODE", "PAY_MCHID",
    "PAY_MERCHANT_SERIAL_NO", "PAY_MERCHANT_PRIVATE_KEY_PATH", "PAY_APIV3_KEY", "PAY_PLATFORM_PUBLIC_KEY_ID",
    "PAY_PLATFORM_PUBLIC_KEY_PATH", "PAY_NOTIFY_URL", "PAY_REFUND_NOTIFY_URL", "METRICS_TOKEN",
]
# Set by the test run (conftest) and read by production_problems; removed to play a bare environment.
_TEST_ONLY = ["WECHAT_MODE", "SECRET_KEY", "EMBEDDED_WORKER", "APP_ENV"]


def production_env(key_dir: Path, wechat_base: str = "http://127.0.0.1:9") -> dict[str, str]:
    """The README's production example, pointed at this run's database and Redis, with WeChat Pay keys."""
    pay = FakeWeChatPay()
    key_dir.mkdir(parents=True, exist_ok=True)
    private, public = key_dir / "apiclient_key.pem", key_dir / "pub_key.pem"
    private.write_text(pay.merchant_private_pem)
    public.write_text(pay.platform_public_pem)
    env = {k: v for k, v in os.environ.items() if k not in _TEST_ONLY and not k.startswith(("PAY_", "WECHAT_"))}
    env.update({
        "APP_ENV": "production", "SECRET_KEY": "prod-secret-" + "s" * 40, "LOG_JSON": "1", "LOG_LEVEL": "INFO",
        "WECHAT_MODE": "live", "WECHAT_APPID": "wx-test-appid", "WECHAT_SECRET": "wx-test-secret",
        "WECHAT_API_BASE": wechat_base,
        "PAY_MODE": "wechatpay", "PAY_MCHID": pay.mchid, "PAY_MERCHANT_SERIAL_NO": pay.merchant_serial,
        "PAY_MERCHANT_PRIVATE_KEY_PATH": str(private), "PAY_APIV3_KEY": pay.apiv3_key,
        "PAY_PLATFORM_PUBLIC_KEY_ID": pay.public_key_id, "PAY_PLATFORM_PUBLIC_KEY_PATH": str(public),
        "PAY_NOTIFY_URL": "https://clinic.example/payments/wechat/notify",
        "PAY_REFUND_NOTIFY_URL": "https://clinic.example/payments/wechat/refund-notify",
        "METRICS_TOKEN": "scrape-" + "m" * 40, "RATE_LIMIT_ENABLED": "1", "DB_POOL_MAX": "5",
        "CRM_OUTREACH_TEMPLATE_IDS": "tmpl-Xy3-offer", "BOOKING_REMINDER_TEMPLATE_ID": "tmpl-Xy3-reminder",
    })
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _run_to_exit(args: list[str], env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *args, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout=timeout)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"{args} kept running instead of refusing to start")
    return process.returncode, out.decode(errors="replace")


# --- the refusals, one variable at a time --------------------------------------------------------

def test_the_complete_production_environment_has_no_problem(tmp_path):
    from kernel.settings import production_problems

    env = production_env(tmp_path)
    assert production_problems(load_settings_from(env), env) == []


def load_settings_from(env: dict[str, str]):
    from kernel.settings import load_settings

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        return load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.parametrize("name", REQUIRED)
def test_each_missing_variable_is_named(tmp_path, name):
    from kernel.settings import production_problems

    env = production_env(tmp_path)
    del env[name]
    problems = production_problems(load_settings_from(env), env)
    assert any(p.startswith(name) for p in problems), problems


@pytest.mark.parametrize("name,value,says", [
    ("WECHAT_MODE", "sandbox", "WECHAT_MODE must be 'live'"),
    ("PAY_MODE", "sandbox", "PAY_MODE must be 'wechatpay'"),
    ("PAY_APIV3_KEY", "k" * 31, "PAY_APIV3_KEY must be exactly 32 characters"),
    ("PAY_MERCHANT_PRIVATE_KEY_PATH", "/nonexistent/apiclient_key.pem", "PAY_MERCHANT_PRIVATE_KEY_PATH points at"),
    ("PAY_PLATFORM_PUBLIC_KEY_PATH", "/etc", "PAY_PLATFORM_PUBLIC_KEY_PATH points at"),
    ("SECRET_KEY", "short", "SECRET_KEY is shorter"),
    ("DATABASE_URL", "sqlite://var/clinic.sqlite3", "DATABASE_URL must be a mysql://"),
    ("PAY_NOTIFY_URL", "http://clinic.example/notify", "PAY_NOTIFY_URL must be an https://"),
    # Plain http to a remote host sends the app secret and the signed payment calls in clear.
    ("WECHAT_API_BASE", "http://api.weixin.qq.com", "WECHAT_API_BASE must be an https://"),
    ("PAY_API_BASE", "http://api.mch.weixin.qq.com", "PAY_API_BASE must be an https://"),
    ("PAY_API_BASE", "ftp://127.0.0.1", "PAY_API_BASE must be an https://"),
])
def test_unsafe_values_are_named(tmp_path, name, value, says):
    from kernel.settings import production_problems

    env = {**production_env(tmp_path), name: value}
    problems = production_problems(load_settings_from(env), env)
    assert any(p.startswith(says) for p in problems), problems


# --- real processes -------------------------------------------------------------------------------

BARE_PRODUCTION_COMMANDS = {
    "serve": [sys.executable, "-m", "api", "serve", "--no-demo"],
    "uvicorn": [sys.executable, "-m", "uvicorn", "api.main:app"],
    "worker": [sys.executable, "-m", "arq", "workers.settings.WorkerSettings"],
    # Migrations unseal stored phones (kernel 0004): with the development key they would skip every row.
    "migrate": [sys.executable, "-m", "api", "migrate"],
}


@pytest.mark.parametrize("command", list(BARE_PRODUCTION_COMMANDS))
async def test_a_production_start_without_the_secrets_exits_naming_each(tmp_path, command):
    """APP_ENV=production with only the database and Redis (WECHAT_MODE and PAY_MODE unset: sandbox)."""
    env = {k: v for k, v in production_env(tmp_path).items() if k not in REQUIRED}
    port = _free_port()
    args = [*BARE_PRODUCTION_COMMANDS[command], *(["--port", str(port)] if command not in ("worker", "migrate") else [])]
    code, output = await _run_to_exit(args, env)
    assert code != 0, output
    assert "refusing to start with APP_ENV=production" in output, output
    for name in REQUIRED:
        assert name in output, (name, output)
    with socket.socket() as sock:  # nothing ever listened
        assert sock.connect_ex(("127.0.0.1", port)) != 0


async def test_the_readme_production_variables_serve_no_sandbox(tmp_path):
    wechat = FakeWeChat()
    await wechat.start()
    env = production_env(tmp_path, wechat.base_url)
    port = _free_port()
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "api", "serve", "--no-embedded-worker", "--no-demo", "--port", str(port),
            cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for _ in range(300):
                assert process.returncode is None, log_path.read_text()[-3000:]
                try:
                    if (await http.get("/health/live")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            # The docs (and the document listing every /admin route) are off in production unless API_DOCS=1.
            for docs in ("/schema", "/schema/openapi.json"):
                assert (await http.get(docs)).status_code == 404, docs
            paid = await http.post("/sandbox/payments/T123/succeed")
            assert paid.status_code == 404, paid.text
            for name in ("alice", "anyone"):
                login = await http.post("/app/auth/login", json={"code": f"sandbox:{name}"})
                assert login.status_code == 401 and login.json()["code"] == "wechat_code_invalid", login.text
            assert "jscode2session" in wechat.calls  # refused by (the fake) WeChat, not by a sandbox
            assert (await http.get("/metrics")).status_code == 401  # only the scraper's bearer reads it
            scraped = await http.get("/metrics", headers={"Authorization": f"Bearer {env['METRICS_TOKEN']}"})
            assert scraped.status_code == 200 and "clinic_requests_total" in scraped.text
            ready = await http.get("/health/ready")
            assert ready.json()["adapters"] == {"wechat": "live", "pay": "wechatpay", "environment": "production"}
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), timeout=30)
        await wechat.stop()
    started = [msgspec.json.decode(line) for line in log_path.read_bytes().splitlines()
               if line.startswith(b"{") and b'"api.starting"' in line]
    assert started and started[0]["wechat"] == "live" and started[0]["pay"] == "wechatpay", log_path.read_text()


async def test_the_old_readme_example_without_pay_mode_is_refused(tmp_path):
    """The README used to say `APP_ENV=production WECHAT_MODE=live WECHAT_APPID=… SECRET_KEY=…` and nothing
    about WeChat Pay: PAY_MODE defaulted to sandbox and any customer could mark their order paid."""
    env = {k: v for k, v in production_env(tmp_path).items() if not k.startswith("PAY_")}
    port = _free_port()
    code, output = await _run_to_exit(
        [sys.executable, "-m", "api", "serve", "--no-embedded-worker", "--no-demo", "--port", str(port)], env)
    assert code != 0, output
    assert "PAY_MODE must be 'wechatpay' in production (it is 'sandbox', the default)" in output, output
    assert "WECHAT_MODE" not in output and "SECRET_KEY" not in output  # those were right


def test_production_refuses_an_unauthenticated_metrics_endpoint(tmp_path):
    """/metrics tells anyone the routes, their traffic and the job queue: production needs METRICS_TOKEN."""
    from kernel.settings import production_problems

    env = production_env(tmp_path)
    env.pop("METRICS_TOKEN", None)
    problems = production_problems(load_settings_from(env), env)
    assert any(p.startswith("METRICS_TOKEN is not set") for p in problems), problems
    env["METRICS_TOKEN"] = "short"
    problems = production_problems(load_settings_from(env), env)
    assert any(p.startswith("METRICS_TOKEN is shorter") for p in problems), problems


@pytest.mark.parametrize("name,value,says", [
    # Off, the staff login has no limit per username or address: a password list runs at full speed.
    ("RATE_LIMIT_ENABLED", "0", "RATE_LIMIT_ENABLED must be on in production"),
    # A wildcard believes X-Forwarded-For from anyone, so a client invents an address per login attempt.
    ("TRUSTED_PROXIES", "*", "TRUSTED_PROXIES must name your proxies"),
    ("TRUSTED_PROXIES", "10.0.0.5,0.0.0.0/0", "TRUSTED_PROXIES must name your proxies"),
    ("TRUSTED_PROXIES", "::/0", "TRUSTED_PROXIES must name your proxies"),
])
def test_production_refuses_what_lets_a_guesser_past_the_limits(tmp_path, name, value, says):
    from kernel.settings import production_problems

    env = {**production_env(tmp_path), name: value}
    problems = production_problems(load_settings_from(env), env)
    assert any(p.startswith(says) for p in problems), problems


async def test_demo_data_is_never_loaded_into_a_production_database(tmp_path):
    """`python -m api demo` with APP_ENV=production would put live demo campaigns, catalogue prices and mall
    items before real customers, and demo stored value into finance's prepaid liability."""
    from kernel.demo import sandbox_openid
    from kernel.identity.models import Customer

    # Other tests (the demo's own) may have made the demo customers already: nothing may be added.
    demo_customers = Customer.filter(openid=sandbox_openid("alice"))
    before = await demo_customers.count()
    code, output = await _run_to_exit([sys.executable, "-m", "api", "demo"], production_env(tmp_path))
    assert code != 0, output
    assert "refusing to start with APP_ENV=production" in output and "demo data" in output, output
    assert await demo_customers.count() == before


def test_an_unknown_app_env_is_refused_rather_than_run_as_development(tmp_path):
    from kernel.settings import UnsafeProductionSettings, refuse_unsafe_production

    env = {**production_env(tmp_path), "APP_ENV": "prod"}
    with pytest.raises(UnsafeProductionSettings, match="APP_ENV must be one of"):
        refuse_unsafe_production(load_settings_from(env), env)


def test_a_mysql_database_without_app_env_is_refused_rather_than_run_as_development(tmp_path):
    # The development default suits the embedded stack (SQLite); with a MySQL server it would serve the
    # sandbox adapters against real data, so the variable must be said.
    from kernel.settings import UnsafeProductionSettings, refuse_unsafe_production

    env = {k: v for k, v in production_env(tmp_path).items() if k != "APP_ENV"}
    with pytest.raises(UnsafeProductionSettings, match="APP_ENV is unset while DATABASE_URL"):
        refuse_unsafe_production(load_settings_from(env), env)
    refuse_unsafe_production(load_settings_from({**env, "APP_ENV": "development"}), {**env, "APP_ENV": "development"})
    embedded = {**env, "DATABASE_URL": f"sqlite://{tmp_path}/clinic.sqlite3"}
    refuse_unsafe_production(load_settings_from(embedded), embedded)


def _outreach_placeholder() -> str:
    from crm.settings import CrmSettings

    [placeholder] = CrmSettings().outreach_template_ids
    return placeholder


def _reminder_placeholder() -> str:
    from booking.settings import BookingSettings

    return BookingSettings().reminder_template_id


# Each template's default is a placeholder WeChat refuses: every consent report and outreach, or every booking
# reminder. The room spells it; the kernel's refusal must name the same one.
@pytest.mark.parametrize(("name", "placeholder", "unsafe"), [
    ("CRM_OUTREACH_TEMPLATE_IDS", _outreach_placeholder, ("", "{p}", "tmpl-real, {p}")),
    ("BOOKING_REMINDER_TEMPLATE_ID", _reminder_placeholder, ("", "  ", "{p}", " {p} ")),
])
def test_production_needs_the_clinics_own_templates(tmp_path, name, placeholder, unsafe):
    from kernel.settings import production_problems

    for value in (None, *(u.format(p=placeholder()) for u in unsafe)):
        env = production_env(tmp_path)
        if value is None:
            env.pop(name)
        else:
            env[name] = value
        problems = production_problems(load_settings_from(env), env)
        assert any(p.startswith(f"{name} is not set") for p in problems), (value, problems)
    env = production_env(tmp_path)
    assert env[name] and placeholder() not in env[name]  # the clinic's own, as a production start has them
    assert production_problems(load_settings_from(env), env) == []


def test_a_production_start_with_an_unknown_app_env_says_what_it_is_about(tmp_path):
    from kernel.settings import UnsafeProductionSettings, refuse_unsafe_production

    # How long reads may trust that a customer was not erased is judged with every other setting now, in every
    # environment (tests/kernel/test_settings.py, CUSTOMER_SEEN_ACTIVE_SECONDS).
    # The refusals that are not about production say what they are about.
    env = {**production_env(tmp_path), "APP_ENV": "prod"}
    with pytest.raises(UnsafeProductionSettings) as refused:
        refuse_unsafe_production(load_settings_from(env), env)
    assert str(refused.value.code).startswith("refusing to start with APP_ENV=prod:")


def test_production_serves_the_api_docs_only_when_asked(tmp_path, monkeypatch):
    """API_DOCS=1 in production documents the routes (for the mini-program's developers), sandbox ones not."""
    from api.app import create_app
    from kernel.settings import load_settings

    env = production_env(tmp_path)
    assert load_settings_from(env).app.api_docs is False
    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in {**env, "API_DOCS": "1"}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.app.api_docs is True
    paths = create_app(settings, embedded_worker=False).openapi_schema.paths or {}
    assert any(p.startswith("/admin") for p in paths) and not [p for p in paths if p.startswith("/sandbox")]
