"""Demo customers for the embedded stack (log in as them with code "sandbox:<name>")."""

from __future__ import annotations

import hashlib

from tortoise.backends.base.client import BaseDBAsyncClient

from kernel import clock, crypto
from kernel.identity.models import Customer, Gender
from kernel.identity.service import new_referral_code

DEMO_CUSTOMERS = [
    ("alice", "Alice 林", Gender.female, "13800001111"),
    ("bella", "Bella 陈", Gender.female, "13800002222"),
    ("chloe", "Chloe 王", Gender.female, "13800003333"),
    ("david", "David 张", Gender.male, None),
]


def sandbox_openid(name: str) -> str:
    # Must match SandboxMiniProgram.code2session so "sandbox:alice" logs in as the demo Alice.
    return "sbx-" + hashlib.sha256(name.encode()).hexdigest()[:24]


async def load(conn: BaseDBAsyncClient) -> None:
    now = clock.now()
    for name, nickname, gender, phone in DEMO_CUSTOMERS:
        openid = sandbox_openid(name)
        if await Customer.filter(openid=openid).using_db(conn).exists():
            continue
        await Customer.create(
            openid=openid,
            nickname=nickname,
            gender=gender,
            referral_code=new_referral_code(),
            phone_sealed=crypto.seal(phone) if phone else None,
            phone_hash=crypto.lookup_hash(phone) if phone else None,
            phone_masked=crypto.mask_phone(phone),
            phone_last4_hash=crypto.last4_hash(phone) if phone else None,
            created_at=now,
            last_login_at=now,
            using_db=conn,
        )
