"""msgspec structs of the reports room: the one shape every report answers in, and its parameters."""

from __future__ import annotations

from datetime import date
from typing import Literal

import msgspec

Unit = Literal["text", "date", "month", "count", "bp", "fen", "points", "score"]


class Column(msgspec.Struct):
    """A column of a report: `unit` tells a chart or an export how to show it.

    `bp` is basis points (10000 = 100%), `fen` integer money (分), `score` a mean survey score.
    """

    key: str
    label: str
    unit: Unit


class Report(msgspec.Struct):
    """A report's figures: the chart, the CSV and the XLSX are all drawn from `rows`."""

    report: str
    title: str
    timezone: str
    date_from: date
    date_to: date
    branch_id: int | None
    columns: list[Column]
    # `float` alone, not `int | float`: the document would say oneOf integer/number, and an integer matches both.
    # Counts still encode as integers (msgspec writes the value it holds).
    rows: list[list[float | str | None]]
    notes: list[str] = []


class ReportSummary(msgspec.Struct):
    report: str
    title: str
    path: str
    roles: list[str]
    takes_branch: bool


class StaffBranchSet(msgspec.Struct, forbid_unknown_fields=True):
    branch_id: int


class StaffBranchOut(msgspec.Struct):
    staff_id: int
    branch_id: int
