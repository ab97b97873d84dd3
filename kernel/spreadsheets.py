"""Tabular exports staff open in Excel (CSV and XLSX): one byte-order-mark rule, one formula escape.

Every CSV starts with a UTF-8 byte-order mark (Excel on Windows reads Chinese text as UTF-8 only
with it) and ends lines with CRLF. Every cell that starts like a formula (= + - @, tab, CR) gets a
leading apostrophe, so customer text such as a nickname never runs in a spreadsheet (CSV injection);
numbers are left as numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """A value safe to put in a spreadsheet cell: text that could run as a formula is escaped."""
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def to_csv(rows: Iterable[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows([cell(v) for v in row] for row in rows)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def to_xlsx(rows: Iterable[Sequence[Any]], *, sheet_title: str) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = sheet_title
    for row in rows:
        sheet.append([cell(v) for v in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
