"""Request and response structs of the identity routes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import msgspec

from kernel.schemas import Page
from kernel.identity.models import AuditLogEntry, Customer, Gender, StaffMember, StaffRole

Code = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
ReferralCode = Annotated[str, msgspec.Meta(min_length=4, max_length=16, pattern=r"^[A-Za-z0-9]+$")]
Nickname = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
Username = Annotated[str, msgspec.Meta(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
Password = Annotated[str, msgspec.Meta(min_length=10, max_length=128)]
Url = Annotated[str, msgspec.Meta(max_length=512, pattern=r"^https?://")]


class CustomerLogin(msgspec.Struct, forbid_unknown_fields=True):
    code: Code
    referral_code: ReferralCode | None = None
    # The scene the mini-program was opened with (a QR code's scene or a link's `scene` query): a staff
    # member's code, a partner channel or an ad campaign; recorded as the new customer's source (crm).
    scene: Annotated[str, msgspec.Meta(max_length=32, pattern=r"^[A-Za-z0-9_\-.:]+$")] | None = None


class AccessToken(msgspec.Struct):
    access_token: str
    token_type: str
    expires_in: int


class CustomerLoginResult(AccessToken):
    customer_id: int
    is_new: bool


class Me(msgspec.Struct):
    id: int
    nickname: str
    avatar_url: str
    gender: Gender
    birth_date: date | None
    phone: str | None  # always masked, e.g. 138****1234
    referral_code: str
    created_at: datetime

    @classmethod
    def of(cls, c: Customer) -> "Me":
        return cls(
            id=c.id,
            nickname=c.nickname,
            avatar_url=c.avatar_url,
            gender=c.gender,
            birth_date=c.birth_date,
            phone=c.phone_masked,
            referral_code=c.referral_code,
            created_at=c.created_at,
        )


class MeUpdate(msgspec.Struct, forbid_unknown_fields=True):
    nickname: Nickname | None = None
    avatar_url: Url | None = None
    gender: Gender | None = None
    birth_date: date | None = None


class PhoneBind(msgspec.Struct, forbid_unknown_fields=True):
    code: Code


class StaffLogin(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class Staff(msgspec.Struct):
    id: int
    username: str
    display_name: str
    roles: list[StaffRole]
    is_active: bool
    created_at: datetime

    @classmethod
    def of(cls, s: StaffMember) -> "Staff":
        return cls(
            id=s.id,
            username=s.username,
            display_name=s.display_name,
            roles=[StaffRole(r) for r in sorted(s.role_set)],
            is_active=s.is_active,
            created_at=s.created_at,
        )


class StaffLoginResult(AccessToken):
    staff: Staff
    # The console shows every time in this zone, not the browser's: reception PCs are not always set right.
    clinic_timezone: Annotated[str, msgspec.Meta(
        description="The clinic's IANA time zone (CLINIC_TIMEZONE): the staff console shows every time in it",
        examples=["Asia/Shanghai"])]


class StaffCreate(msgspec.Struct, forbid_unknown_fields=True):
    username: Username
    password: Password
    roles: Annotated[list[StaffRole], msgspec.Meta(min_length=1, max_length=4)]
    display_name: Annotated[str, msgspec.Meta(max_length=64)] = ""


class StaffUpdate(msgspec.Struct, forbid_unknown_fields=True):
    roles: Annotated[list[StaffRole], msgspec.Meta(min_length=1, max_length=4)] | None = None
    is_active: bool | None = None
    password: Password | None = None
    display_name: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class AuditEntry(msgspec.Struct):
    id: int
    staff_id: int | None
    action: str
    target_type: str
    target_id: str
    detail: dict
    request_id: str
    created_at: datetime

    @classmethod
    def of(cls, r: AuditLogEntry) -> "AuditEntry":
        return cls(
            id=r.id, staff_id=r.staff_id, action=r.action, target_type=r.target_type,
            target_id=r.target_id, detail=r.detail, request_id=r.request_id, created_at=r.created_at,
        )


class CustomerFound(msgspec.Struct):
    """A lookup hit for the front desk: enough to pick the right person, the phone masked."""

    id: int
    nickname: str
    phone: str | None
    referral_code: str
    created_at: datetime

    @classmethod
    def of(cls, customer: Customer) -> "CustomerFound":
        return cls(id=customer.id, nickname=customer.nickname, phone=customer.phone_masked,
                   referral_code=customer.referral_code, created_at=customer.created_at)


class CustomerFoundPage(Page):
    items: list[CustomerFound]
