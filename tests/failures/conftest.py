"""Fixtures of the failure tests: the hanging fake WeChat Pay, the adapter pointed at it, worker processes."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from orders.gateway.wechatpay import WeChatPayGateway
from tests.orders.factories import discard_future_jobs
from tests.failures.support import HangingWeChatPay, WorkerProcess, jobs_in_progress, wait_for


@pytest.fixture(scope="session")
async def hanging_pay():
    fake = HangingWeChatPay()
    await fake.start()
    yield fake
    fake.answer_again()
    await fake.stop()


@pytest.fixture(scope="session")
async def pay_gateway(hanging_pay):
    gateway = WeChatPayGateway(
        mchid=hanging_pay.mchid, appid=hanging_pay.appid, merchant_serial_no=hanging_pay.merchant_serial,
        merchant_private_key=hanging_pay.merchant_private_pem, apiv3_key=hanging_pay.apiv3_key,
        platform_public_key=hanging_pay.platform_public_pem, platform_public_key_id=hanging_pay.public_key_id,
        notify_url="https://clinic.example/payments/wechat/notify",
        refund_notify_url="https://clinic.example/payments/wechat/refund-notify",
        api_base=hanging_pay.base_url,
    )
    yield gateway
    await gateway.aclose()


@pytest.fixture
async def api_pays_through_fake(app, client, pay_gateway, hanging_pay):
    """The API answers with the WeChat Pay adapter pointed at the fake, for the length of a test."""
    app.state.payment_gateway = pay_gateway
    yield hanging_pay
    app.state.payment_gateway = None


@pytest.fixture
async def worker_processes(hanging_pay, redis, tmp_path: Path, request):
    """Start worker processes (`await start(**env_overrides)`); those still running are stopped at the end."""
    started: list[WorkerProcess] = []
    env = {
        **hanging_pay.worker_env(tmp_path / "keys"),
        "FAILURE_JOB_TIMEOUT": "3",
        "OUTBOX_POLL_SECONDS": "0.1",
        "DB_POOL_MIN": "1",
        "DB_POOL_MAX": "5",
        "LOG_LEVEL": "INFO",
    }

    async def start(**overrides: str) -> WorkerProcess:
        log = tmp_path / f"worker-{len(started) + 1}-{secrets.token_hex(2)}.log"
        worker = WorkerProcess({**env, **overrides}, log)
        started.append(worker)
        return await worker.start()

    yield start
    for worker in started:
        await worker.stop()
    hanging_pay.answer_again()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:  # the workers' logs tell what they were doing
        for worker in started:
            print(f"--- {worker.log_path.name}\n{worker.log_tail(80)}")
    # A job left in progress by a killed worker would hold later burst workers until its marker expires.
    await wait_for(lambda: _none_in_progress(redis), timeout=10, what="no job in progress")
    await discard_future_jobs(redis)


async def _none_in_progress(redis) -> bool:
    return not await jobs_in_progress(redis)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report
