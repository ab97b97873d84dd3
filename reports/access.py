"""Who sees which branch's reports: the branch a front-desk account is held to (set by an admin)."""

from __future__ import annotations

from tortoise.backends.base.client import BaseDBAsyncClient

from kernel import clock
from reports import partners
from reports.errors import UnknownBranch, UnknownStaff
from reports.sql import execute, is_sqlite


async def set_staff_branch(conn: BaseDBAsyncClient, *, staff_id: int, branch_id: int) -> None:
    if not await partners.staff_exists(conn, staff_id):
        raise UnknownStaff(staff_id=staff_id)
    if branch_id not in await partners.branch_ids(conn):
        raise UnknownBranch(field="branch_id", branch_id=branch_id)
    if is_sqlite(conn):
        sql = ("INSERT INTO report_staff_branch (staff_id, branch_id, updated_at) VALUES (%s, %s, %s) "
               "ON CONFLICT (staff_id) DO UPDATE SET branch_id = excluded.branch_id, updated_at = excluded.updated_at")
    else:
        sql = ("INSERT INTO report_staff_branch (staff_id, branch_id, updated_at) VALUES (%s, %s, %s) "
               "ON DUPLICATE KEY UPDATE branch_id = VALUES(branch_id), updated_at = VALUES(updated_at)")
    await execute(conn, sql, [staff_id, branch_id, clock.now()])
