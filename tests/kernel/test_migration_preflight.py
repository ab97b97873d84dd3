"""The migration pre-flight refuses, before changing anything, a pending migration the rows would break.

Each case is a temporary Tortoise app (a package written to tmp_path) on a database of its own: its first
migration creates a table, rows go in, then a second migration is added and `kernel.db.migrate` runs in a
separate process (Tortoise's state is process-wide; the suite's own connections must not be re-initialised).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import aiomysql
import pytest

from tests.conftest import MYSQL_HOST, MYSQL_PASSWORD, MYSQL_PORT, MYSQL_USER, TEST_DATABASE, _admin_sql

ROOT = Path(__file__).resolve().parent.parent.parent
PROBE_DB = f"{TEST_DATABASE}_preflight"

INITIAL = """
from tortoise import fields, migrations
from tortoise.migrations import operations as ops

class Migration(migrations.Migration):
    initial = True
    operations = [
        ops.CreateModel(
            name='Card',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('holder', fields.CharField(max_length=32)),
                ('note', fields.CharField(max_length=32, null=True)),
            ],
            options={'table': 'probe_card', 'app': 'probe', 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
"""

SECOND = """
from tortoise import fields, migrations
from tortoise.migrations import operations as ops
from tortoise.migrations.constraints import UniqueConstraint

class Migration(migrations.Migration):
    dependencies = [('probe', '0001_initial')]
    {extra}
    operations = [{operation}]
"""

RUNNER = """
import asyncio, sys
from kernel import db
from kernel.migration_preflight import MigrationRefused
config = {
    "connections": {"default": db.connection_config(db.get_settings().db)},
    "apps": {"probe": {"models": ["probe_app.models"], "default_connection": "default",
                       "migrations": "probe_app.migrations"}},
    "use_tz": True, "timezone": "UTC",
}
try:
    asyncio.run(db.migrate(config=config))
except MigrationRefused as refused:
    print(refused, file=sys.stderr)
    sys.exit(2)
"""


async def sql(statement: str, *args) -> list[tuple]:
    conn = await aiomysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password=MYSQL_PASSWORD,
                                  db=PROBE_DB, autocommit=True)
    try:
        async with conn.cursor() as cur:
            await cur.execute(statement, args or None)
            return list(await cur.fetchall())
    finally:
        conn.close()


class Probe:
    def __init__(self, root: Path) -> None:
        self.root = root
        package = root / "probe_app"
        (package / "migrations").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "models.py").write_text("")
        (package / "migrations" / "__init__.py").write_text("")
        (package / "migrations" / "0001_initial.py").write_text(INITIAL)

    def add(self, operation: str, extra: str = "") -> None:
        (self.root / "probe_app" / "migrations" / "0002_change.py").write_text(
            textwrap.dedent(SECOND).format(operation=operation, extra=extra))

    def migrate(self) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": f"{ROOT}:{self.root}",
               "DATABASE_URL": f"mysql://{MYSQL_USER}:{MYSQL_PASSWORD}@{MYSQL_HOST}:{MYSQL_PORT}/{PROBE_DB}"}
        return subprocess.run([sys.executable, "-c", RUNNER], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=60)


@pytest.fixture
async def probe(database, tmp_path):
    await _admin_sql(f"DROP DATABASE IF EXISTS `{PROBE_DB}`", f"CREATE DATABASE `{PROBE_DB}`")
    probe = Probe(tmp_path)
    first = probe.migrate()
    assert first.returncode == 0, first.stderr
    yield probe
    await _admin_sql(f"DROP DATABASE IF EXISTS `{PROBE_DB}`")


async def columns() -> list[str]:
    return [c for (c, *_) in await sql("SHOW COLUMNS FROM probe_card")]


async def applied() -> list[str]:
    return [n for (n,) in await sql("SELECT name FROM tortoise_migrations WHERE app = 'probe' ORDER BY id")]


NOT_NULL_COLUMN = "ops.AddField(model_name='Card', name='points', field=fields.IntField())"


async def test_a_not_null_column_without_db_default_on_a_table_with_rows_is_refused_before_anything_changes(probe):
    await sql("INSERT INTO probe_card (holder) VALUES ('alice'), ('bella')")
    probe.add(NOT_NULL_COLUMN)
    result = probe.migrate()
    assert result.returncode == 2
    assert "probe.0002_change" in result.stderr and "probe_card.points" in result.stderr
    assert "2 rows" in result.stderr and "nothing was changed" in result.stderr
    assert await columns() == ["id", "holder", "note"]
    assert await applied() == ["0001_initial"]


async def test_the_same_column_is_accepted_on_an_empty_table_or_with_a_db_default(probe):
    probe.add(NOT_NULL_COLUMN)
    assert probe.migrate().returncode == 0
    assert "points" in await columns()


async def test_a_db_default_makes_the_column_safe_on_rows(probe):
    await sql("INSERT INTO probe_card (holder) VALUES ('alice')")
    probe.add("ops.AddField(model_name='Card', name='points', field=fields.IntField(db_default=0))")
    result = probe.migrate()
    assert result.returncode == 0, result.stderr
    assert await sql("SELECT holder, points FROM probe_card") == [("alice", 0)]


async def test_a_unique_key_over_repeated_values_is_refused(probe):
    await sql("INSERT INTO probe_card (holder) VALUES ('alice'), ('alice'), ('bella')")
    probe.add("ops.AddConstraint(model_name='Card', constraint=UniqueConstraint(fields=('holder',), name='uq_holder'))")
    result = probe.migrate()
    assert result.returncode == 2 and "unique key on probe_card(holder) while 1 values repeat" in result.stderr
    assert await applied() == ["0001_initial"]


async def test_making_a_column_with_nulls_not_null_is_refused(probe):
    await sql("INSERT INTO probe_card (holder, note) VALUES ('alice', NULL), ('bella', 'vip')")
    probe.add("ops.AlterField(model_name='Card', name='note', field=fields.CharField(max_length=32))")
    result = probe.migrate()
    assert result.returncode == 2 and "probe_card.note NOT NULL while 1 rows hold NULL" in result.stderr


async def test_dropping_a_table_with_rows_is_refused_unless_the_migration_says_so(probe):
    await sql("INSERT INTO probe_card (holder) VALUES ('alice')")
    probe.add("ops.DeleteModel(name='Card')")
    result = probe.migrate()
    assert result.returncode == 2 and "drops table probe_card holding 1 rows" in result.stderr
    assert await sql("SELECT holder FROM probe_card") == [("alice",)]

    probe.add("ops.DeleteModel(name='Card')", extra="allow_data_loss = {'Card'}")
    assert probe.migrate().returncode == 0
    assert await applied() == ["0001_initial", "0002_change"]


async def test_dropping_a_column_holding_values_is_refused_but_renaming_it_is_not(probe):
    await sql("INSERT INTO probe_card (holder, note) VALUES ('alice', 'vip')")
    probe.add("ops.RemoveField(model_name='Card', name='note')")
    result = probe.migrate()
    assert result.returncode == 2 and "drops column probe_card.note holding 1 values" in result.stderr

    probe.add("ops.RenameField(model_name='Card', old_name='note', new_name='remark')")
    result = probe.migrate()
    assert result.returncode == 0, result.stderr
    assert await sql("SELECT holder, remark FROM probe_card") == [("alice", "vip")]
