"""Migration pre-flight: before any pending migration runs, check it can run on the rows the database holds.

`kernel.db.migrate` (so `python -m api migrate`, `make migrate` and every start) calls `check_pending`
first; a refusal stops before anything changed, naming the migration, the operation and the rows in the way.

What a populated database refuses (an empty table accepts all of it):
- AddField of a NOT NULL column without `db_default` (Tortoise's `default` is applied by Python to new rows
  only; MariaDB would fill the existing rows with an invented 0, '' or zero date);
- AlterField that makes a column NOT NULL while rows hold NULL, or unique while values repeat;
- AddConstraint / AddIndex of a unique key over values that repeat;
- DeleteModel of a table with rows, RemoveField of a column holding values: data would be lost. Moving a
  model to another room is RenameModel (or RunSQL `RENAME TABLE`), never delete-and-create. A migration
  that means to drop data names it: `allow_data_loss = {"Model"}` or `{"Model.field"}` on the class.
RunSQL and RunPython are not inspected: their authors test them on the upgrade fixture (docs/releases.md).

The walk replays the migration state the way Tortoise's executor does (`MigrationExecutor._project_state`,
then each operation's `state_forward`), so a table created or renamed earlier in the same plan is followed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.connection import get_connection
from tortoise.fields.relational import ForeignKeyFieldInstance, ManyToManyFieldInstance, OneToOneFieldInstance
from tortoise.migrations import operations as ops
from tortoise.migrations.constraints import UniqueConstraint
from tortoise.migrations.executor import MigrationExecutor
from tortoise.migrations.schema_generator.state import State


@dataclass(frozen=True)
class Refusal:
    migration: str
    operation: str
    reason: str

    def __str__(self) -> str:
        return f"{self.migration}: {self.operation}: {self.reason}"


class MigrationRefused(RuntimeError):
    """A pending migration cannot run on this database's rows; nothing was changed."""

    def __init__(self, refusals: list[Refusal]) -> None:
        self.refusals = refusals
        lines = "\n".join(f"  - {r}" for r in refusals)
        super().__init__(
            "Migrations not applied: nothing was changed. These pending migrations cannot run on the rows "
            f"this database holds:\n{lines}\nSee docs/releases.md (Migrations on a populated database)."
        )


def _column(name: str, field: Any) -> str:
    if isinstance(field, (ForeignKeyFieldInstance, OneToOneFieldInstance)):
        return field.source_field or f"{name}_id"
    return getattr(field, "source_field", None) or name


def _has_db_default(field: Any) -> bool:
    has = getattr(field, "has_db_default", None)
    return bool(has()) if callable(has) else False


class _Database:
    """Row questions against the live database; a table that does not exist yet has no rows."""

    def __init__(self, conn: BaseDBAsyncClient) -> None:
        self.conn = conn
        self.quote = "`" if conn.capabilities.dialect in ("mysql", "sqlite") else '"'

    def q(self, name: str) -> str:
        return f"{self.quote}{name}{self.quote}"

    async def _scalar(self, sql: str) -> int:
        try:
            _, rows = await self.conn.execute_query(sql)
        except Exception:  # noqa: BLE001 - the table or column does not exist (yet): nothing to lose
            return 0
        if not rows:
            return 0
        return int(next(iter(dict(rows[0]).values())) or 0)

    async def rows(self, table: str) -> int:
        return await self._scalar(f"SELECT COUNT(*) FROM {self.q(table)}")

    async def nulls(self, table: str, column: str) -> int:
        return await self._scalar(f"SELECT COUNT(*) FROM {self.q(table)} WHERE {self.q(column)} IS NULL")

    async def values(self, table: str, column: str) -> int:
        return await self._scalar(f"SELECT COUNT(*) FROM {self.q(table)} WHERE {self.q(column)} IS NOT NULL")

    async def repeated(self, table: str, columns: list[str]) -> int:
        cols = ", ".join(self.q(c) for c in columns)
        not_null = " AND ".join(f"{self.q(c)} IS NOT NULL" for c in columns)
        return await self._scalar(
            f"SELECT COUNT(*) FROM (SELECT {cols} FROM {self.q(table)} WHERE {not_null} "
            f"GROUP BY {cols} HAVING COUNT(*) > 1) AS repeated_values"
        )


async def _check_operation(op: ops.Operation, app_label: str, state: State, db: _Database,
                           allowed: set[str]) -> str | None:
    model_name = getattr(op, "model_name", None) or getattr(op, "name", None)
    model = state.models.get((app_label, model_name)) if isinstance(model_name, str) else None

    if isinstance(op, ops.DeleteModel) and model is not None and op.name not in allowed:
        count = await db.rows(model.table)
        if count:
            return (f"drops table {model.table} holding {count} rows (move a model with RenameModel; "
                    f"a deliberate drop lists {op.name!r} in allow_data_loss)")
    if model is None:
        return None
    table = model.table
    if isinstance(op, ops.AddField):
        field = op.field
        if isinstance(field, ManyToManyFieldInstance) or getattr(field, "null", False) or _has_db_default(field):
            return None
        if getattr(field, "generated", False) or getattr(field, "pk", False):
            return None
        count = await db.rows(table)
        if count:
            return (f"adds NOT NULL column {table}.{_column(op.name, field)} without db_default to a table with "
                    f"{count} rows (give it db_default, or add it nullable, fill it, then make it NOT NULL)")
        if getattr(field, "unique", False) and count > 1:
            return f"adds a unique column to {table}, which has {count} rows that would all share one value"
    elif isinstance(op, ops.AlterField):
        old = model.fields.get(op.name)
        new = op.field
        column = _column(op.name, new)
        if old is not None and getattr(old, "null", False) and not getattr(new, "null", False):
            nulls = await db.nulls(table, column)
            if nulls:
                return f"makes {table}.{column} NOT NULL while {nulls} rows hold NULL (fill them first)"
        if getattr(new, "unique", False) and not getattr(old, "unique", False):
            repeated = await db.repeated(table, [column])
            if repeated:
                return f"makes {table}.{column} unique while {repeated} values repeat"
    elif isinstance(op, ops.RemoveField):
        field = model.fields.get(op.name)
        if field is not None and not isinstance(field, ManyToManyFieldInstance) \
                and f"{model_name}.{op.name}" not in allowed:
            column = _column(op.name, field)
            count = await db.values(table, column)
            if count:
                return (f"drops column {table}.{column} holding {count} values (rename it with RenameField; "
                        f"a deliberate drop lists '{model_name}.{op.name}' in allow_data_loss)")
    elif isinstance(op, (ops.AddConstraint, ops.AddIndex)):
        key = getattr(op, "constraint", None) or getattr(op, "index", None)
        unique = isinstance(key, UniqueConstraint) or getattr(key, "unique", False)
        if unique and not getattr(key, "condition", None):
            columns = [_column(f, model.fields.get(f)) for f in key.fields]
            repeated = await db.repeated(table, columns)
            if repeated:
                return f"adds a unique key on {table}({', '.join(columns)}) while {repeated} values repeat"
    return None


async def check_pending(config: dict[str, Any]) -> list[Refusal]:
    """Every refusal among the pending migrations of every app in `config`; an empty list means go."""
    await Tortoise.init(config=config, init_connections=False)
    by_connection: dict[str, dict[str, dict[str, Any]]] = {}
    for label, app in config["apps"].items():
        by_connection.setdefault(app.get("default_connection", "default"), {})[label] = app
    refusals: list[Refusal] = []
    for connection_name, apps in by_connection.items():
        executor = MigrationExecutor(get_connection(connection_name), apps)
        plan = await executor.plan()
        if not plan:
            continue
        applied = set(await executor.recorder.applied_migrations())
        # The state the database is in now, as the executor itself computes it before applying.
        state = await executor._project_state(applied)
        db = _Database(executor.connection)
        for step in plan:
            if step.backward:
                continue
            migration = step.migration
            allowed = set(getattr(migration, "allow_data_loss", ()) or ())
            for op in migration.operations:
                reason = await _check_operation(op, migration.app_label, state, db, allowed)
                if reason:
                    refusals.append(Refusal(f"{migration.app_label}.{migration.name}", op.describe(), reason))
                op.state_forward(migration.app_label, state)
    return refusals
