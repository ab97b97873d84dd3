"""A worker process for tests/crm/test_outreach.py that is killed (SIGKILL, no clean-up of any kind) the
moment it asks WeChat to send one chosen customer's message.

    python -m tests.crm.outreach_worker_process <outreach id> <clock instant ISO> <WeChat base url> <openid>

It runs the real `crm.run_outreach` job against the test's database (the environment is the test run's,
inherited) with the live WeChat adapter pointed at the test's fake. The outreach handles chunks in
recipient order, committing each chunk before sending its claimed messages, so killing at the first send
of a chunk leaves exactly: the chunks before it handled and sent, that chunk committed (vouchers issued,
messages claimed) with nothing sent, and the chunks after it pending. The test picks the openid, so the
kill lands on the same chunk boundary every time, whatever the machine's speed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import datetime
from typing import Any


class KilledAtSend:
    """The live adapter, except that the send to `openid` kills this process before it leaves."""

    def __init__(self, live: Any, openid: str) -> None:
        self._live, self._openid = live, openid

    async def send_subscribe_message(self, openid: str, template_id: str, data: dict[str, str],
                                     page: str = "") -> None:
        if openid == self._openid:
            os.kill(os.getpid(), signal.SIGKILL)
        await self._live.send_subscribe_message(openid, template_id, data, page=page)


async def main(outreach_id: int, instant: str, wechat_base: str, kill_at_openid: str) -> None:
    import rooms
    from crm import tasks
    from kernel import clock, db
    from kernel.settings import WeChatSettings
    from kernel.wechat.miniprogram import LiveMiniProgram
    from tests.fakes.wechat import FakeWeChat

    clock.set_now(datetime.fromisoformat(instant))
    await db.init_db()
    rooms.install()
    fake = FakeWeChat()  # only for its credentials, which the test's fake shares
    live = LiveMiniProgram(WeChatSettings(mode="live", appid=fake.appid, secret=fake.secret,
                                          api_base=wechat_base, timeout_seconds=3))
    await tasks.run_outreach({"miniprogram": KilledAtSend(live, kill_at_openid)}, outreach_id)
    # Reaching this line means the chosen send never came: the test fails on the exit code.
    sys.exit(3)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]))
