"""Report settings refuse, at start, a value outside the range a clinic could want, naming the variable and the
range (reports/settings.py says what each value used to do)."""

from __future__ import annotations

import pytest

from reports.settings import load_report_settings
from tests.settings_refusals import case_ids, refusal, taken



# Each bad value and what it did before it was refused.
REFUSED = [
    ("REPORTS_FOLD_CHUNK", "0", "a whole number from 1 to 50000"),  # nothing folded, every night, silently
    ("REPORTS_FOLD_CHUNK", "-1", "a whole number from 1 to 50000"),  # LIMIT -1: the nightly fold failed
    ("REPORTS_FOLD_CHUNK", "10000000", "a whole number from 1 to 50000"),
    ("REPORTS_CONVERSION_DAYS", "0", "a whole number from 1 to 180"),  # no consultation ever converted
    ("REPORTS_CONVERSION_DAYS", "-5", "a whole number from 1 to 180"),
    ("REPORTS_CONVERSION_DAYS", "400", "a whole number from 1 to 180"),
    # Shorter than the conversion window (30): late conversions never reached the report.
    ("REPORTS_VISIT_REFOLD_DAYS", "29", "a whole number from 30 to 366"),
    ("REPORTS_VISIT_REFOLD_DAYS", "-1", "a whole number from 30 to 366"),
    ("REPORTS_VISIT_REFOLD_DAYS", "5000", "a whole number from 30 to 366"),
    ("REPORTS_MALL_REFOLD_DAYS", "0", "a whole number from 1 to 366"),  # cancellations never taken back
    ("REPORTS_MALL_REFOLD_DAYS", "-1", "a whole number from 1 to 366"),
    ("REPORTS_MALL_REFOLD_DAYS", "5000", "a whole number from 1 to 366"),
    ("REPORTS_CAMPAIGN_REFOLD_DAYS", "0", "a whole number from 1 to 366"),  # late refunds never taken back
    ("REPORTS_CAMPAIGN_REFOLD_DAYS", "5000", "a whole number from 1 to 366"),
    ("REPORTS_REPURCHASE_DAYS", "0", "a whole number from 1 to 730"),  # the report showed no repurchase
    ("REPORTS_REPURCHASE_DAYS", "731", "a whole number from 1 to 730"),  # more than the report's own query takes
]


@pytest.mark.parametrize(("name", "value", "must_be"), REFUSED, ids=case_ids(REFUSED))
def test_a_bad_report_value_is_refused_at_start_naming_the_variable_and_its_range(monkeypatch, name, value,
                                                                                 must_be):
    message = refusal(monkeypatch, {name: value}, load_report_settings)
    assert f"{name} must be {must_be} (it is {value!r})" in message, message


def test_a_longer_conversion_window_needs_the_visits_refolded_as_long(monkeypatch):
    """Raising the conversion window alone left the visits' refold (35 days) short of it."""
    message = refusal(monkeypatch, {"REPORTS_CONVERSION_DAYS": "60"}, load_report_settings)
    assert "REPORTS_VISIT_REFOLD_DAYS must be a whole number from 60 to 366 (it is '35')" in message
    monkeypatch.setenv("REPORTS_VISIT_REFOLD_DAYS", "60")
    assert (load_report_settings().conversion_days, load_report_settings().visit_refold_days) == (60, 60)


# The edges of each range, and values a clinic could choose.
ACCEPTED = [
    ("REPORTS_FOLD_CHUNK", "1", "fold_chunk", 1),
    ("REPORTS_FOLD_CHUNK", "50000", "fold_chunk", 50_000),
    ("REPORTS_CONVERSION_DAYS", "1", "conversion_days", 1),
    ("REPORTS_VISIT_REFOLD_DAYS", "30", "visit_refold_days", 30),
    ("REPORTS_VISIT_REFOLD_DAYS", "366", "visit_refold_days", 366),
    ("REPORTS_MALL_REFOLD_DAYS", "1", "mall_refold_days", 1),
    ("REPORTS_MALL_REFOLD_DAYS", "366", "mall_refold_days", 366),
    ("REPORTS_CAMPAIGN_REFOLD_DAYS", "366", "campaign_refold_days", 366),
    ("REPORTS_REPURCHASE_DAYS", "1", "repurchase_days", 1),
    ("REPORTS_REPURCHASE_DAYS", "730", "repurchase_days", 730),
]


@pytest.mark.parametrize(("name", "value", "field", "expected"), ACCEPTED, ids=case_ids(ACCEPTED))
def test_a_report_value_within_its_range_is_taken(monkeypatch, name, value, field, expected):
    assert taken(monkeypatch, name, value, load_report_settings, field) == expected
