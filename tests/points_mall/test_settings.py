"""The four-eyes threshold refuses, at start, a value that would turn the rule off or mean nothing, naming the
variable and the range (points_mall/settings.py)."""

from __future__ import annotations

import pytest

from points_mall.settings import load_points_settings
from tests.settings_refusals import refusal

NAME = "POINTS_CONSUMPTION_APPROVAL_ABOVE_FEN"


# 10,000,000,000 fen is the most amount a consumption takes: at it no consumption ever waited for a second member.
@pytest.mark.parametrize("value", ["10000000000", "100000001", "-1", "¥20000"])
def test_a_threshold_that_turns_the_four_eyes_rule_off_is_refused_naming_it(monkeypatch, value):
    message = refusal(monkeypatch, {NAME: value}, load_points_settings)
    assert f"{NAME} must be a whole number from 0 to 100000000 (it is {value!r})" in message, message


@pytest.mark.parametrize(("value", "fen"), [("0", 0), ("100000000", 100_000_000), ("5000000", 5_000_000)])
def test_a_threshold_a_clinic_could_choose_is_taken(monkeypatch, value, fen):
    """0 sends every front-desk consumption to a second member, which a clinic may want."""
    monkeypatch.setenv(NAME, value)
    assert load_points_settings().consumption_approval_above_fen == fen
