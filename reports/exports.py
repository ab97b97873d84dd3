"""CSV and XLSX renderings of a report: the same columns and rows the chart is drawn from.

Through kernel/spreadsheets.py like every export: one byte-order-mark rule and one formula escape, so a campaign
title or a branch name a staff member typed never runs as a formula in finance's spreadsheet.
"""

from __future__ import annotations

import io
from typing import Any

from openpyxl import Workbook

from kernel import spreadsheets
from reports.schemas import Report


def _header(report: Report) -> list[list[Any]]:
    return [
        [report.title],
        [f"{report.date_from.isoformat()} .. {report.date_to.isoformat()} ({report.timezone} clinic days)"
         + (f", branch {report.branch_id}" if report.branch_id is not None else "")],
        [f"{col.label} [{col.unit}]" if col.unit in ("fen", "bp", "points") else col.label for col in report.columns],
    ]


def to_csv(report: Report) -> bytes:
    """UTF-8 CSV with a BOM, so Excel opens the Chinese labels right; money stays integer fen."""
    return spreadsheets.to_csv([*_header(report), *report.rows, *([f"# {note}"] for note in report.notes)])


def to_xlsx(report: Report) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = report.report[:31]
    for row in [*_header(report), *report.rows]:
        sheet.append([spreadsheets.cell(v) for v in row])
    notes = book.create_sheet("notes")
    for note in report.notes:
        notes.append([spreadsheets.cell(note)])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
