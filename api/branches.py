"""The check every staff route that takes a branch id makes: the branch exists (the booking room owns branches)."""

from __future__ import annotations

from collections.abc import Iterable

from tortoise.backends.base.client import BaseDBAsyncClient

from booking import service as booking
from kernel.errors import ValidationFailed


class UnknownBranch(ValidationFailed):
    code = "unknown_branch"
    default_message = "No branch has this id."


async def require_branches(conn: BaseDBAsyncClient, branch_ids: Iterable[int] | None, *, field: str) -> None:
    """Refuse (422, the field named, the unknown ids listed) before anything is written."""
    missing = await booking.missing_branches(conn, [i for i in branch_ids or [] if i is not None])
    if missing:
        raise UnknownBranch(field=field, unknown_branch_ids=missing)
