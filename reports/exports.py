"""CSV and XLSX renderings of a report: the same columns and rows the chart is drawn from."""

from __future__ import annotations

import csv
import io
from typing import Any

from openpyxl import Workbook

from reports.schemas import Report


def _cell(value: Any) -> Any:
    return "" if value is None else value


def _header(report: Report) -> list[list[Any]]:
    return [
        [report.title],
        [f"{report.date_from.isoformat()} .. {report.date_to.isoformat()} ({report.timezone} clinic days)"
         + (f", branch {report.branch_id}" if report.branch_id is not None else "")],
        [f"{col.label} [{col.unit}]" if col.unit in ("fen", "bp", "points") else col.label for col in report.columns],
    ]


def to_csv(report: Report) -> str:
    """UTF-8 CSV with a BOM, so Excel opens the Chinese labels right; money stays integer fen."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for line in _header(report):
        writer.writerow(line)
    for row in report.rows:
        writer.writerow([_cell(v) for v in row])
    for note in report.notes:
        writer.writerow([f"# {note}"])
    return "\ufeff" + buffer.getvalue()


def to_xlsx(report: Report) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = report.report[:31]
    for line in _header(report):
        sheet.append(line)
    for row in report.rows:
        sheet.append([_cell(v) for v in row])
    notes = book.create_sheet("notes")
    for note in report.notes:
        notes.append([note])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
