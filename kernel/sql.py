"""Raw SQL helpers of every room: one placeholder style for MariaDB and SQLite, instants written and read as UTC.

Two kinds of SQL go around the ORM. Set-based SQL the ORM cannot express (the CRM's nightly scoring and
segment compiler, the reports' folds) is written with `%s` placeholders and runs on both databases through
`fetch`/`execute`. The hot paths' parameterised statements (check-in, booking, join, batched redemption,
`kernel.rows`) run on MySQL/MariaDB through the connection itself, with `utc` for their instants and `mark`
where one statement serves both databases.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient


def is_sqlite(conn: BaseDBAsyncClient) -> bool:
    return conn.capabilities.dialect == "sqlite"


def mark(conn: BaseDBAsyncClient) -> str:
    """The connection's parameter placeholder."""
    return "?" if is_sqlite(conn) else "%s"


def utc(value: datetime | None) -> datetime | None:
    """An instant as the MySQL driver should write it: in UTC, the zone the columns hold (Tortoise's use_tz);
    the driver writes a datetime's fields as they are, whatever its zone."""
    return value.astimezone(timezone.utc) if value is not None else None


def _adapt(conn: BaseDBAsyncClient, sql: str) -> str:
    return sql.replace("%s", "?") if is_sqlite(conn) else sql


def _param(value: Any) -> Any:
    # Instants are stored as naive UTC on MariaDB (Tortoise with use_tz) and as ISO text on SQLite.
    if isinstance(value, datetime):
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


async def fetch(conn: BaseDBAsyncClient, sql: str, args: list[Any] | tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows as dicts; DATETIME values come back as aware UTC datetimes (the driver gives them naive)."""
    _, rows = await conn.execute_query(_adapt(conn, sql), [_param(a) for a in args])
    out = []
    for row in rows:
        item = dict(row)
        for key, value in item.items():
            if isinstance(value, datetime) and value.tzinfo is None:
                item[key] = value.replace(tzinfo=timezone.utc)
        out.append(item)
    return out


async def execute(conn: BaseDBAsyncClient, sql: str, args: list[Any] | tuple[Any, ...] = ()) -> int:
    count, _ = await conn.execute_query(_adapt(conn, sql), [_param(a) for a in args])
    return count


def instant(value: Any) -> datetime | None:
    """A DATETIME read by raw SQL, as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def day(value: Any) -> date | None:
    if value is None or isinstance(value, date) and not isinstance(value, datetime):
        return value
    return date.fromisoformat(str(value)[:10])


def month_of(conn: BaseDBAsyncClient, column: str) -> str:
    """SQL for the month number (1-12) of a DATE column."""
    return f"CAST(strftime('%m', {column}) AS INTEGER)" if is_sqlite(conn) else f"MONTH({column})"


def within_days(conn: BaseDBAsyncClient, later: str, earlier: str, days: int) -> str:
    """SQL: the DATETIME column `later` is at most `days` days after the column `earlier`."""
    if is_sqlite(conn):
        return f"datetime({later}) <= datetime({earlier}, '+{int(days)} days')"
    return f"{later} <= {earlier} + INTERVAL {int(days)} DAY"


def in_list(values: list[Any]) -> str:
    """Placeholders for an IN (...) list; never empty (an empty list matches nothing)."""
    return "(" + ",".join(["%s"] * len(values)) + ")" if values else "(NULL)"


def named_in_list(name: str, values: list[Any]) -> tuple[str, dict[str, Any]]:
    """`in_list` for a statement written with named parameters (`%(now)s`): the placeholders `(%(name0)s, ...)`
    and their values; never empty."""
    if not values:
        return "(NULL)", {}
    return "(" + ",".join(f"%({name}{i})s" for i in range(len(values))) + ")", {
        f"{name}{i}": value for i, value in enumerate(values)}
