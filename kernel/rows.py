"""A model's row inserted as one parameterised statement on MySQL/MariaDB, and the instance built from the
values written instead of through the ORM's create.

The hot writes (a group join, an order) insert a few rows per request; Tortoise's `create` spends more
server CPU building and converting than the statement costs (`python -m bench.profile`). `RowInsert`
prepares the statement once per model from the model's own fields, fills what the caller leaves out
with each field's default, converts by field kind (an enum to its value, JSON by the field's encoder, an
instant to UTC, which is how Tortoise stores it with `use_tz`), and hands back a saved instance.
Other dialects (the embedded SQLite stack) go through the ORM's create and bulk_create, so the SQL here is
MySQL's alone.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Callable, Generic, TypeVar

from tortoise import fields
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model

from kernel.batch import Answer, Batch, Fragment, SessionId, resolved
from kernel.sql import utc

M = TypeVar("M", bound=Model)


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


class QueuedRow(Generic[M]):
    """A row queued in a batch: its statement's `answer`, and `saved()` once the batch was sent."""

    __slots__ = ("_insert", "_complete", "answer")

    def __init__(self, insert: RowInsert[M], complete: dict[str, Any], answer: Answer) -> None:
        self._insert = insert
        self._complete = complete
        self.answer = answer

    def saved(self) -> M:
        generated = self._insert.model._meta.pk.generated
        return self._insert.instance(self.answer.lastrowid if generated else None,
                                     {name: resolved(value) for name, value in self._complete.items()})


class RowInsert(Generic[M]):
    """INSERT of every column of `model` but its generated key; `await insert(conn, **values)`."""

    def __init__(self, model: type[M]) -> None:
        self.model = model
        self._prepared = False

    def _prepare(self) -> None:
        # On first use, not at import: a foreign key's id column joins the model's fields only when
        # Tortoise initialises the apps.
        model = self.model
        meta = model._meta
        # (field name, column, field, conversion to the driver's value)
        self.columns: list[tuple[str, str, fields.Field, Callable[[Any], Any]]] = []
        for name in meta.fields_db_projection:  # the model's own order
            field = meta.fields_map[name]
            if field.pk and field.generated:
                continue
            if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
                # The ORM fills these on save; a raw insert would silently write whatever the caller gave.
                raise TypeError(f"{model.__name__}.{name}: auto_now fields are not supported here")
            if field.has_db_default() and field.default is None:
                # The ORM leaves such a column out and the database fills it; every column is written here,
                # so a value the caller does not give would be NULL instead.
                raise TypeError(f"{model.__name__}.{name}: a database default needs a Python default here too")
            self.columns.append((name, meta.fields_db_projection[name], field, self._converter(model, field)))
        self._known = {name for name, _, _, _ in self.columns}
        names = ", ".join(f"`{column}`" for _, column, _, _ in self.columns)
        self._marks = ", ".join(["%s"] * len(self.columns))
        self._head = f"INSERT INTO `{meta.db_table}` ({names})"
        self.sql = f"{self._head} VALUES ({self._marks})"
        self._prepared = True

    @staticmethod
    def _converter(model: type[Model], field: fields.Field) -> Callable[[Any], Any]:
        if isinstance(field, fields.DatetimeField):
            return utc
        if isinstance(field, fields.JSONField):
            return lambda value: field.to_db_value(value, model)
        if field.field_type in (int, str, bool, float):  # an enum field's type is its values' type
            return _enum_value
        return lambda value: field.to_db_value(value, model)

    def _values(self, values: dict[str, Any]) -> dict[str, Any]:
        """Every column's value: the caller's, or the field's default (a callable default called)."""
        if not self._prepared:
            self._prepare()
        unknown = values.keys() - self._known
        if unknown:
            raise TypeError(f"{self.model.__name__} has no column for {sorted(unknown)}")
        complete = {}
        for name, _, field, _ in self.columns:
            if name in values:
                complete[name] = values[name]
            elif field.default is not None or field.null:
                complete[name] = field.default() if callable(field.default) else field.default
            else:
                raise TypeError(f"{self.model.__name__}.{name} has no default and no value was given")
        return complete

    def _params(self, complete: dict[str, Any]) -> list[Any]:
        # A fragment (an id a statement before it in the same batch generates) is SQL text, not a value.
        return [value if isinstance(value := complete[name], Fragment) else convert(value)
                for name, _, _, convert in self.columns]

    def instance(self, row_id: int | None, complete: dict[str, Any]) -> M:
        """The saved instance of a row written from `complete` (as `insert_many` returns them); `row_id` is the
        generated key (None for a model whose key the caller gives: it is in `complete`)."""
        row = {column: _enum_value(complete[name]) for name, column, _, _ in self.columns}
        meta = self.model._meta
        if meta.pk.generated:
            row[meta.db_pk_column] = row_id
        return self.model._init_from_db(**row)

    async def insert(self, conn: BaseDBAsyncClient, **values: Any) -> M:
        """The row inserted; the instance carries the generated id and every value written."""
        if conn.capabilities.dialect != "mysql":
            return await self.model.create(**values, using_db=conn)
        complete = self._values(values)
        row_id = await conn.execute_insert(self.sql, self._params(complete))
        return self.instance(row_id if self.model._meta.pk.generated else None, complete)

    def add(
        self, batch: Batch, *, keep_id: SessionId | None = None, when: str | None = None, **values: Any
    ) -> QueuedRow[M]:
        """Queue the row's INSERT in `batch` (values may be ids generated before it in the batch); the
        returned `QueuedRow` builds the saved instance once the batch was sent. `when`: an SQL condition on
        what the statements before it left (a session variable of our own): the row is written only if it
        holds (its answer's rowcount says whether it was)."""
        complete = self._values(values)
        sql = self.sql if when is None else self._conditional_sql(when)
        return QueuedRow(self, complete, batch.add(sql, self._params(complete), keep_id=keep_id))

    def _conditional_sql(self, when: str) -> str:
        return f"{self._head} SELECT {self._marks} FROM DUAL WHERE {when}"

    def add_many(self, batch: Batch, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Queue several rows as one INSERT in `batch`; returns each row's values with the defaults filled in
        (as `insert_many`)."""
        completed = [self._values(values) for values in rows]
        batch.add(self._many_sql(len(rows)), [param for complete in completed for param in self._params(complete)])
        return completed

    def _many_sql(self, count: int) -> str:
        if not self._prepared:
            self._prepare()
        return f"{self._head} VALUES {', '.join([f'({self._marks})'] * count)}"

    async def insert_many(self, conn: BaseDBAsyncClient, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Several rows in one statement; returns each row's values with the defaults filled in. Their ids
        are not read back (a caller that needs them selects by a key it wrote, then `instance`)."""
        if not rows:
            return []
        completed = [self._values(values) for values in rows]
        if conn.capabilities.dialect != "mysql":
            await self.model.bulk_create([self.model(**values) for values in completed], using_db=conn)
            return completed
        params = [param for complete in completed for param in self._params(complete)]
        await conn.execute_query(self._many_sql(len(rows)), params)
        return completed
