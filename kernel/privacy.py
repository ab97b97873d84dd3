"""Personal-information rights (PIPL): a customer's data export and erasure, across every room.

Each room may provide `<room>/privacy.py` with `async def export(conn, customer_id) -> dict` and
`async def erase(conn, customer_id) -> None`. Erasure removes what identifies the person (profile,
phone, health answers, free text) but keeps the money and points records, whose sums finance and
the ledger invariant depend on: those rows stay, attached to an anonymous customer id.
"""

from __future__ import annotations

from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from kernel import clock
from kernel.errors import Conflict
from kernel.identity.models import Customer, Gender
from kernel.identity.service import get_customer
from kernel.modules import import_present
from kernel.outbox import enqueue

_ROOM_PRIVACY_MODULES = [
    "booking.privacy",
    "points_mall.privacy",
    "campaigns.privacy",
    "campaigns.referrals.privacy",
    "crm.privacy",
]


def _rooms():
    return import_present(_ROOM_PRIVACY_MODULES)


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
    for module in _rooms():
        room = module.__name__.rsplit(".", 1)[0]
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
    for module in _rooms():
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
