"""SQL helpers of the reports room: clinic-day expressions and additive upserts, for MariaDB and SQLite.

The placeholder and instant handling is the kernel's (`kernel.sql`); what is added here is the clinic day of an
instant (a fixed offset: the clinic's zones have no DST, as booking's schedules assume too) and
`add_rows`, the upsert that adds a fold's counts to existing summary rows.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Sequence

from tortoise.backends.base.client import BaseDBAsyncClient

from kernel.sql import day, execute, fetch, in_list, instant, is_sqlite
from kernel import clock

__all__ = ["add_rows", "clinic_day", "clinic_day_sql", "day", "execute", "fetch", "in_list", "instant",
           "month_start", "offset_minutes", "replace_rows"]


def offset_minutes() -> int:
    """The clinic zone's UTC offset in minutes (Asia/Shanghai: 480)."""
    offset = datetime(2026, 1, 1, tzinfo=clock.clinic_zone()).utcoffset() or timedelta(0)
    return int(offset.total_seconds() // 60)


def clinic_day(value: Any) -> date:
    """The clinic day of an instant read back from the database (naive values are UTC)."""
    return instant(value).astimezone(clock.clinic_zone()).date()


def clinic_day_sql(conn: BaseDBAsyncClient, column: str) -> str:
    """SQL for the clinic day of a DATETIME column stored in UTC."""
    minutes = offset_minutes()
    if is_sqlite(conn):
        return f"date({column}, '{minutes:+d} minutes')"
    return f"DATE({column} + INTERVAL {minutes} MINUTE)"


def month_sql(conn: BaseDBAsyncClient, day_sql: str) -> str:
    """SQL for the first day of the month of a DATE expression."""
    if is_sqlite(conn):
        return f"date({day_sql}, 'start of month')"
    return f"DATE_SUB({day_sql}, INTERVAL DAYOFMONTH({day_sql}) - 1 DAY)"


def plus_days_sql(conn: BaseDBAsyncClient, column: str, days: int) -> str:
    """SQL for a DATETIME column plus whole days."""
    if is_sqlite(conn):
        return f"datetime({column}, '+{int(days)} days')"
    return f"{column} + INTERVAL {int(days)} DAY"


def month_start(d: date) -> date:
    return d.replace(day=1)


def day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """The UTC instants bounding clinic days first..last (inclusive)."""
    zone = clock.clinic_zone()
    lo = datetime(first.year, first.month, first.day, tzinfo=zone)
    hi = datetime(last.year, last.month, last.day, tzinfo=zone) + timedelta(days=1)
    return lo, hi


async def add_rows(conn: BaseDBAsyncClient, table: str, keys: Sequence[str], counters: Sequence[str],
                   rows: list[tuple[Any, ...]], chunk: int = 500) -> None:
    """Insert rows (keys then counters) or add their counters to the rows already there."""
    columns = [*keys, *counters]
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        values = ",".join(["(" + ",".join(["%s"] * len(columns)) + ")"] * len(part))
        args = [v for row in part for v in row]
        if is_sqlite(conn):
            update = ", ".join(f"{c} = {c} + excluded.{c}" for c in counters)
            tail = f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {update}"
        else:
            update = ", ".join(f"{c} = {c} + VALUES({c})" for c in counters)
            tail = f" ON DUPLICATE KEY UPDATE {update}"
        await execute(conn, f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}{tail}", args)


async def replace_rows(conn: BaseDBAsyncClient, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]],
                       chunk: int = 500) -> None:
    """Plain inserts (the caller deleted the rows being replaced in the same transaction)."""
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        values = ",".join(["(" + ",".join(["%s"] * len(columns)) + ")"] * len(part))
        await execute(conn, f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}",
                      [v for row in part for v in row])
