"""Statements sent together (kernel.batch) on MariaDB: one round trip, each statement's answer in order, the
first error raised as Tortoise raises it with the statement that gave it, nothing after it run, and every
value escaped as a parameterised statement's."""

from __future__ import annotations

import aiomysql
import pytest
from tortoise import connections
from tortoise.exceptions import IntegrityError, OperationalError

from kernel import clock
from kernel.batch import Batch, JsonArray, SessionId
from kernel.db import mysql_errno, transaction
from kernel.outbox.models import OutboxMessage
from kernel.rows import RowInsert
from kernel.sql import utc

_OUTBOX = RowInsert(OutboxMessage)
_INSERT = "INSERT INTO outbox_message (job_name, args, run_at, created_at, delivered_at, attempts, last_error)" \
          " VALUES (%s, '[]', NULL, %s, %s, 0, '')"


class _Rollback(Exception):
    """Ends a test's transaction: its outbox rows must not reach a relay."""


def _job(name: str) -> str:
    return f"test.batch.{name}"


async def test_one_round_trip_answers_each_statement_and_passes_the_generated_id(monkeypatch):
    commands = []
    original = aiomysql.Connection._execute_command

    async def counted(self, command, sql):
        commands.append(sql)
        return await original(self, command, sql)

    now = clock.now()
    with pytest.raises(_Rollback):
        async with transaction() as conn:
            batch = Batch(conn)
            first_id = SessionId("first")
            first = _OUTBOX.add(batch, keep_id=first_id, job_name=_job("first"), args=[1, "a"], created_at=now)
            second = _OUTBOX.add(batch, job_name=_job("second"), args=JsonArray([first_id, "x"]), created_at=now)
            touched = batch.add("UPDATE outbox_message SET attempts = attempts + 1 WHERE job_name LIKE %s",
                                [_job("%")])
            read = batch.add("SELECT id, job_name FROM outbox_message WHERE id = %s", [first_id])
            monkeypatch.setattr(aiomysql.Connection, "_execute_command", counted)
            await batch.send()
            monkeypatch.undo()
            assert len(commands) == 1  # the six statements (with the id's SET) went as one query
            saved_first, saved_second = first.saved(), second.saved()
            assert first_id.value == saved_first.id > 0 and saved_second.id == saved_first.id + 1
            assert touched.rowcount == 2
            assert read.rows == [{"id": saved_first.id, "job_name": _job("first")}]
            stored = await OutboxMessage.get(id=saved_second.id).using_db(conn)
            assert stored.args == [saved_first.id, "x"] == saved_second.args
            for name in OutboxMessage._meta.fields_db_projection:
                if name != "attempts":  # the UPDATE in the batch moved it after the insert
                    assert getattr(saved_first, name) == getattr(
                        await OutboxMessage.get(id=saved_first.id).using_db(conn), name), name
            raise _Rollback


async def test_the_first_error_stops_the_batch_and_names_its_statement():
    now = utc(clock.now())
    with pytest.raises(_Rollback):
        async with transaction() as conn:
            taken = await _OUTBOX.insert(conn, job_name=_job("taken"), created_at=now)
            batch = Batch(conn)
            before = batch.add(_INSERT, [_job("before"), now, None])
            clash = batch.add("INSERT INTO outbox_message (id, job_name, args, created_at, attempts, last_error)"
                              " VALUES (%s, %s, '[]', %s, 0, '')", [taken.id, _job("clash"), now])
            batch.add(_INSERT, [_job("after"), now, None])
            with pytest.raises(IntegrityError) as refused:
                await batch.send()
            assert batch.failed is clash and mysql_errno(refused.value) == 1062
            assert before.rowcount == 1  # it ran; the caller's rollback is what undoes it
            names = set(await OutboxMessage.filter(job_name__startswith=_job("")).using_db(conn)
                        .values_list("job_name", flat=True))
            assert names == {_job("taken"), _job("before")}  # "after" never ran

            # An error of another kind (an unknown column) is Tortoise's OperationalError, as one by one.
            broken = Batch(conn)
            broken.add(_INSERT, [_job("again"), now, None])
            wrong = broken.add("UPDATE outbox_message SET no_such_column = 1 WHERE id = %s", [taken.id])
            with pytest.raises(OperationalError):
                await broken.send()
            assert broken.failed is wrong
            raise _Rollback


async def test_values_are_escaped_as_a_parameterised_statement_escapes_them():
    hostile = "x'); DELETE FROM outbox_message; -- ; SELECT '%s"
    now = clock.now()
    with pytest.raises(_Rollback):
        async with transaction() as conn:
            kept = await _OUTBOX.insert(conn, job_name=_job("kept"), created_at=now)
            batch = Batch(conn)
            row = _OUTBOX.add(batch, job_name=hostile[:128], args=JsonArray([hostile, 7]), created_at=now)
            await batch.send()
            stored = await OutboxMessage.get(id=row.saved().id).using_db(conn)
            assert stored.job_name == hostile and stored.args == [hostile, 7]
            assert await OutboxMessage.filter(id=kept.id).using_db(conn).exists()
            raise _Rollback


async def test_a_batch_runs_only_inside_a_transaction():
    with pytest.raises(TypeError, match="inside a transaction"):
        Batch(connections.get("default"))
    early = SessionId("early")
    with pytest.raises(RuntimeError, match="after the batch"):
        early.resolved()


# --- a transaction's BEGIN waits for its first statement (kernel.batch.FirstStatementBegins) ----------------

def _count_commands(monkeypatch) -> list:
    sent = []
    original = aiomysql.Connection._execute_command

    async def counted(self, command, sql):
        sent.append(sql if isinstance(sql, str) else sql.decode())
        return await original(self, command, sql)

    monkeypatch.setattr(aiomysql.Connection, "_execute_command", counted)
    return sent


async def _first_statement(conn, how: str, name: str) -> None:
    now = clock.now()
    if how == "batch":
        batch = Batch(conn)
        _OUTBOX.add(batch, job_name=name, created_at=now)
        await batch.send()
    elif how == "orm":
        await OutboxMessage.create(job_name=name, created_at=now, using_db=conn)
    elif how == "raw":
        await conn.execute_insert(_INSERT, [name, utc(now), None])
    else:  # a nested transaction (a savepoint) before anything else
        async with transaction() as nested:
            await OutboxMessage.create(job_name=name, created_at=now, using_db=nested)


@pytest.mark.parametrize("how", ["batch", "orm", "raw", "nested"])
async def test_whatever_runs_first_runs_inside_the_transaction(how, monkeypatch):
    name = _job(f"first-{how}")
    sent = _count_commands(monkeypatch)
    with pytest.raises(_Rollback):
        async with transaction() as conn:
            await _first_statement(conn, how, name)
            assert await OutboxMessage.filter(job_name=name).using_db(conn).exists()
            raise _Rollback
    monkeypatch.undo()
    assert not await OutboxMessage.filter(job_name=name).exists()  # rolled back: it ran after BEGIN
    assert sent[0].startswith("BEGIN")
    if how == "batch":
        assert sent[0].startswith("BEGIN;\nINSERT INTO `outbox_message`")  # one round trip for both


async def test_a_transaction_that_ran_nothing_sends_nothing(monkeypatch):
    sent = _count_commands(monkeypatch)
    async with transaction():
        pass
    with pytest.raises(_Rollback):
        async with transaction():
            raise _Rollback
    assert sent == []
