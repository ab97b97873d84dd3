"""Personal-information rights (PIPL): a customer's data export and erasure, across every room.

Each room that keeps personal data has a privacy module with `async def export(conn, customer_id) -> dict`
and `async def erase(conn, customer_id) -> None`; the composition root (rooms/__init__.py) registers
them at start-up, and export and erasure refuse to run before it did (an export that silently left a
room out is what PIPL forbids). Erasure removes what identifies the person (profile,
phone, health answers, free text) but keeps the money and points records, whose sums finance and
the ledger invariant depend on: those rows stay, attached to an anonymous customer id.
"""

from __future__ import annotations

from typing import Any, Protocol

from tortoise.backends.base.client import BaseDBAsyncClient

from kernel import clock
from kernel.errors import Conflict
from kernel.identity.models import Customer, Gender
from kernel.identity.service import get_customer
from kernel.outbox import enqueue


def plain(value: Any) -> Any:
    """A column value as the export shows it: dates in ISO 8601, enums by their value."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return getattr(value, "value", value)


async def rows_of(query: Any, *fields: str) -> list[dict[str, Any]]:
    """The rows of a customer's query, oldest first, with the given columns as plain values."""
    return [{k: plain(v) for k, v in row.items()} for row in await query.order_by("id").values(*fields)]


class PrivacyRoom(Protocol):
    # Every (model, customer column, export key) of the room: the export lists each row of the model
    # whose column is the customer under that key (tests/kernel/test_privacy_coverage.py walks them).
    TABLES: list[tuple[Any, str, str]]


    async def export(self, conn: BaseDBAsyncClient, customer_id: int) -> dict[str, Any]: ...

    async def erase(self, conn: BaseDBAsyncClient, customer_id: int) -> None: ...


_ROOMS: dict[str, PrivacyRoom] = {}


def register_rooms(rooms: dict[str, PrivacyRoom]) -> None:
    _ROOMS.update(rooms)


def _rooms() -> dict[str, PrivacyRoom]:
    if not _ROOMS:
        raise RuntimeError("no room registered its privacy module: call rooms.install() at start-up")
    return _ROOMS


async def export_customer_data(conn: BaseDBAsyncClient, customer_id: int) -> dict[str, Any]:
    customer = await get_customer(conn, customer_id)
    data: dict[str, Any] = {
        "profile": {
            "id": customer.id,
            "nickname": customer.nickname,
            "avatar_url": customer.avatar_url,
            "gender": customer.gender.value,
            "birth_date": customer.birth_date.isoformat() if customer.birth_date else None,
            # Masked like everywhere else: the full number is what WeChat already shows the customer.
            "phone": customer.phone_masked,
            "referral_code": customer.referral_code,
            "created_at": customer.created_at.isoformat(),
        }
    }
    for room, module in _rooms().items():
        data[room] = await module.export(conn, customer_id)
    return data


class ErasureAlreadyRequested(Conflict):
    code = "erasure_already_requested"
    default_message = "Erasure of this account is already under way."


async def request_erasure(conn: BaseDBAsyncClient, customer_id: int) -> None:
    """Record the request and queue the erasure job (after commit)."""
    await get_customer(conn, customer_id)
    marked = await Customer.filter(id=customer_id, erasure_requested_at=None).using_db(conn).update(
        erasure_requested_at=clock.now()
    )
    if not marked:
        raise ErasureAlreadyRequested()
    await enqueue(conn, "kernel.erase_customer", customer_id)


async def erase_customer(conn: BaseDBAsyncClient, customer_id: int) -> bool:
    """Anonymise the customer and let every room erase its personal data. Safe to run twice."""
    customer = await Customer.get_or_none(id=customer_id, using_db=conn)
    if customer is None or customer.deleted_at is not None:
        return False
    for module in _rooms().values():
        await module.erase(conn, customer_id)
    await Customer.filter(id=customer_id, deleted_at=None).using_db(conn).update(
        openid=f"erased-{customer_id}",
        unionid=None,
        session_key_sealed=None,
        nickname="",
        avatar_url="",
        gender=Gender.unknown,
        birth_date=None,
        phone_sealed=None,
        phone_hash=None,
        phone_masked=None,
        phone_last4_hash=None,
        deleted_at=clock.now(),
    )
    return True
