"""What every report is made of: the query a staff member sends (a range of clinic days, perhaps a branch), the
figures a report builds (columns and rows, notes), the catalogue entry (`Spec`), and the month helpers.

A report is columns and rows; the chart, the CSV and the XLSX are all drawn from the same rows, so they
cannot disagree.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from reports.schemas import Column


@dataclass
class Query:
    date_from: date
    date_to: date
    branch_id: int | None = None
    within_days: int | None = None

    def days(self, day: str = "day", branch: str = "branch_id", extra: str = "") -> tuple[str, list[Any]]:
        """The WHERE clause (and its arguments) of a summary table's rows in the range, at the branch if one is
        asked for; `extra` is a fixed condition of the report's own."""
        where, args = f"{day} >= %s AND {day} <= %s{extra}", [self.date_from, self.date_to]
        if self.branch_id is not None:
            where += f" AND {branch} = %s"
            args.append(self.branch_id)
        return where, args


@dataclass
class Figures:
    columns: list[Column]
    rows: list[list[Any]]
    notes: list[str] = field(default_factory=list)


Builder = Callable[[BaseDBAsyncClient, Query], Awaitable[Figures]]


@dataclass(frozen=True)
class Spec:
    slug: str
    title: str
    roles: tuple[str, ...]  # admin is always admitted too
    takes_branch: bool
    build: Builder


def c(key: str, label: str, unit: str) -> Column:
    return Column(key=key, label=label, unit=unit)  # type: ignore[arg-type]


def bp(part: int, whole: int) -> int | None:
    """A share in basis points, rounded half up; None when there is nothing to share."""
    return (part * 10000 * 2 + whole) // (2 * whole) if whole else None


def months_of(first: date, last: date) -> list[date]:
    out, m = [], first.replace(day=1)
    while m <= last:
        out.append(m)
        m = (m + timedelta(days=32)).replace(day=1)
    return out


def month_label(d: date) -> str:
    return d.strftime("%Y-%m")
