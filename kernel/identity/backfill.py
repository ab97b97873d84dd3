"""Backfills of derived identity columns: the phone's last-four lookup hash for customers stored before it existed."""

from __future__ import annotations

from tortoise.backends.base.client import BaseDBAsyncClient

from kernel import crypto


def _placeholder(conn: BaseDBAsyncClient) -> str:
    return "?" if conn.capabilities.dialect == "sqlite" else "%s"


async def fill_phone_last4_hashes(conn: BaseDBAsyncClient, *, chunk: int = 1000) -> int:
    """Write `phone_last4_hash` for every customer with a sealed phone and no hash yet. Safe to run twice.

    Raw SQL on purpose: a migration must not depend on the model as it will be in later releases.
    Walks by id so a big table is read in bounded chunks. Returns how many rows were filled.
    """
    ph = _placeholder(conn)
    filled = 0
    last_id = 0
    while True:
        _, rows = await conn.execute_query(
            f"SELECT id, phone_sealed FROM customer WHERE id > {ph} AND phone_sealed IS NOT NULL "
            f"AND phone_last4_hash IS NULL ORDER BY id LIMIT {int(chunk)}",
            [last_id],
        )
        if not rows:
            return filled
        for row in rows:
            last_id = row["id"]
            try:
                phone = crypto.unseal(row["phone_sealed"])
            except Exception:
                # Sealed under another key (a restored dump): left unsearchable rather than failing the upgrade.
                continue
            await conn.execute_query(
                f"UPDATE customer SET phone_last4_hash = {ph} WHERE id = {ph} AND phone_last4_hash IS NULL",
                [crypto.last4_hash(phone), row["id"]],
            )
            filled += 1
