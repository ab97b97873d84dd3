"""Fixtures of the orders tests: a local fake WeChat Pay server and the live adapter pointed at it."""

from __future__ import annotations

import pytest

from orders.gateway.wechatpay import WeChatPayGateway
from tests.orders.factories import discard_future_jobs
from tests.orders.wechatpay_fake import FakeWeChatPay


@pytest.fixture(scope="session")
async def fake_pay():
    fake = FakeWeChatPay()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture(scope="session")
async def live_gateway(fake_pay):
    gateway = WeChatPayGateway(
        mchid=fake_pay.mchid,
        appid=fake_pay.appid,
        merchant_serial_no=fake_pay.merchant_serial,
        merchant_private_key=fake_pay.merchant_private_pem,
        apiv3_key=fake_pay.apiv3_key,
        platform_public_key=fake_pay.platform_public_pem,
        platform_public_key_id=fake_pay.public_key_id,
        notify_url="https://clinic.example/payments/wechat/notify",
        refund_notify_url="https://clinic.example/payments/wechat/refund-notify",
        api_base=fake_pay.base_url,
    )
    yield gateway
    await gateway.aclose()


@pytest.fixture
async def wechatpay(app, client, live_gateway, fake_pay):
    """The API answers with the WeChat Pay adapter (pointed at the fake) for the length of a test."""
    app.state.payment_gateway = live_gateway
    fake_pay.refund_failures = 0
    fake_pay.refund_processing_queries = 1
    fake_pay.refund_refusal = None
    yield fake_pay
    app.state.payment_gateway = None


@pytest.fixture(autouse=True)
async def no_deferred_leftovers(redis):
    """Jobs deferred to the future (payment windows, deadlines) would stall later burst workers."""
    yield
    await discard_future_jobs(redis)
