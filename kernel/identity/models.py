"""Tortoise models of identity: customers, staff members and the staff audit log."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class Gender(StrEnum):
    unknown = "unknown"
    female = "female"
    male = "male"


class StaffRole(StrEnum):
    admin = "admin"
    campaign = "campaign"  # 运营: campaigns, mall items, rules
    finance = "finance"  # 财务: settlements, order exports
    front_desk = "front_desk"  # 前台/护士: triage queue, arrivals, voucher redemption (核销)


class Customer(Model):
    """A mini-program user (顾客/会员), known by openid (and unionid when WeChat gives one)."""

    id = fields.BigIntField(primary_key=True)
    openid = fields.CharField(max_length=64, unique=True)
    unionid = fields.CharField(max_length=64, null=True, db_index=True)
    # WeChat's session_key, encrypted; never returned by any route.
    session_key_sealed = fields.CharField(max_length=255, null=True)
    nickname = fields.CharField(max_length=64, default="")
    avatar_url = fields.CharField(max_length=512, default="")
    gender = fields.CharEnumField(Gender, max_length=16, default=Gender.unknown)
    birth_date = fields.DateField(null=True)
    # The phone is kept encrypted; the hash finds duplicates (fraud checks) without decrypting.
    phone_sealed = fields.CharField(max_length=255, null=True)
    phone_hash = fields.CharField(max_length=64, null=True, db_index=True)
    phone_masked = fields.CharField(max_length=32, null=True)
    # A keyed hash of the last four digits: staff search "尾号1234" without the phone in clear (crm).
    phone_last4_hash = fields.CharField(max_length=64, null=True, db_index=True)
    referral_code = fields.CharField(max_length=16, unique=True)
    created_at = fields.DatetimeField()
    last_login_at = fields.DatetimeField()
    # PIPL: when the customer asked for erasure, and when it was done (the row stays, anonymised).
    erasure_requested_at = fields.DatetimeField(null=True)
    deleted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "customer"


class StaffMember(Model):
    id = fields.BigIntField(primary_key=True)
    username = fields.CharField(max_length=64, unique=True)
    display_name = fields.CharField(max_length=64, default="")
    password_hash = fields.CharField(max_length=255)
    # Comma-separated StaffRole values; a member may hold several roles.
    roles = fields.CharField(max_length=128)
    is_active = fields.BooleanField(default=True)
    # Bumped on disable or password change so tokens issued before stop working.
    token_version = fields.IntField(default=1)
    created_at = fields.DatetimeField()

    class Meta:
        table = "staff_member"

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(r for r in self.roles.split(",") if r)


class AuditLogEntry(Model):
    """Who did what to which record: written in the same transaction as every staff write."""

    id = fields.BigIntField(primary_key=True)
    staff_id = fields.BigIntField(null=True, db_index=True)
    action = fields.CharField(max_length=64, db_index=True)
    target_type = fields.CharField(max_length=64)
    target_id = fields.CharField(max_length=64)
    detail = fields.JSONField(default=dict)
    request_id = fields.CharField(max_length=64, default="")
    created_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "audit_log"
        indexes = (("target_type", "target_id"),)
