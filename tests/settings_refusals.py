"""What the settings tests of every room share: a case's test id, the message a start refuses with, and the
value a start takes."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import pytest


def case_ids(cases) -> list[str]:
    """`NAME='value'` (the value cut short) for each (name, value, ...) case."""
    return [f"{case[0]}={case[1][:14]!r}" for case in cases]


def refusal(monkeypatch, env: dict[str, str], load: Callable[[], Any]) -> str:
    """Set `env`, read the settings with `load`, and return the message the start stops with."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as refused:
        load()
    return str(refused.value.code)


def taken(monkeypatch, name: str, value: str, load: Callable[[], Any], field: str) -> Any:
    """Set `name` to `value`, read the settings with `load`, and return `field` of them (dotted: `app.x`)."""
    monkeypatch.setenv(name, value)
    return operator.attrgetter(field)(load())
