"""The previous release's populated database, restored and migrated once for the upgrade and backup tests."""

from __future__ import annotations

import pytest

from tests.conftest import TEST_DATABASE, _admin_sql
from tests.upgrade.support import HERE, PREVIOUS, restore_dump, run_cli


@pytest.fixture(scope="package")
async def upgraded(database):
    """The committed dump of the previous release in a fresh database, taken to the current schema by
    `python -m api migrate` (the production path)."""
    name = f"{TEST_DATABASE}_upgrade"
    await restore_dump(HERE / f"release-{PREVIOUS}.sql.gz", name)
    try:
        migrated = run_cli(name, "-m", "api", "migrate")
        assert migrated.returncode == 0, migrated.stderr
        yield name
    finally:
        await _admin_sql(f"DROP DATABASE IF EXISTS `{name}`")
