"""Fixtures of the route tests: a local fake WeChat server and an app wired to it through the live adapter."""

from __future__ import annotations

import pytest

from kernel.settings import WeChatSettings
from kernel.wechat.miniprogram import LiveMiniProgram
from tests.conftest import serve_in_loop
from tests.fakes.wechat import FakeWeChat


@pytest.fixture(scope="module")
async def fake_wechat():
    fake = FakeWeChat()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture(scope="module")
async def live_client(database, redis, fake_wechat):
    from api.app import create_app

    adapter = LiveMiniProgram(
        WeChatSettings(
            mode="live", appid=fake_wechat.appid, secret=fake_wechat.secret,
            api_base=fake_wechat.base_url, timeout_seconds=3,
        )
    )
    app = create_app(miniprogram=adapter, embedded_worker=False)
    async with serve_in_loop(app) as client:
        yield client
    await adapter.aclose()
