"""CRM settings refuse a bad value at start, naming the variable, instead of running with it."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from crm.settings import load_crm_settings
from tests.api.test_production_start import _free_port, _run_to_exit

NAME = "CRM_SUBSCRIPTION_CREDITS_MAX"


@pytest.mark.parametrize("value", ["0", "-2", "2.5", "five"])
def test_subscription_credits_max_refuses_what_is_not_a_positive_whole_number(monkeypatch, value):
    # 0 (or less) would bank no credit at all (every consent report taken, no outreach ever sent);
    # a non-number used to surface as a bare ValueError at the first consent report.
    monkeypatch.setenv(NAME, value)
    with pytest.raises(SystemExit) as refused:
        load_crm_settings()
    assert NAME in str(refused.value.code) and repr(value) in str(refused.value.code)


def test_subscription_credits_max_takes_a_positive_whole_number(monkeypatch):
    monkeypatch.setenv(NAME, "3")
    assert load_crm_settings().subscription_credits_max == 3


@pytest.mark.parametrize("command", ["serve", "worker"])
async def test_a_start_with_a_bad_credits_max_exits_naming_it(command):
    """Not at the first consent report: the app and the worker read every room's settings as they start."""
    port = _free_port()
    args = {"serve": [sys.executable, "-m", "api", "serve", "--no-demo", "--port", str(port)],
            "worker": [sys.executable, "-m", "arq", "workers.settings.WorkerSettings"]}[command]
    code, output = await _run_to_exit(args, {**os.environ, NAME: "0"}, timeout=30)
    assert code != 0, output
    assert f"{NAME} must be a whole number of at least 1 (it is '0')" in output, output
    with socket.socket() as sock:  # nothing ever listened
        assert sock.connect_ex(("127.0.0.1", port)) != 0
