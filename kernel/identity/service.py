"""Identity rules: customer login and profile, staff accounts, and the audit trail.

Functions take the caller's connection and never commit; WeChat is called by the caller
before the transaction opens (no network call inside a transaction).
"""

from __future__ import annotations

import random
import secrets
import time
from datetime import date
from typing import Any

import structlog
from pwdlib import PasswordHash
from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from kernel import clock, crypto
from kernel.db import RaceLost
from kernel.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from kernel.identity.password_policy import check_staff_password
from kernel.identity.models import AuditLogEntry, Customer, Gender, StaffMember, StaffRole
from kernel.settings import get_settings
from kernel.sql import in_list
from kernel.together import Together, reads_may_be_shared
from kernel.wechat.miniprogram import WeChatSession

log = structlog.get_logger(__name__)

# Argon2id with pwdlib's recommended parameters.
_passwords = PasswordHash.recommended()
# Precomputed so an unknown username costs as much time as a wrong password.
_DUMMY_HASH = _passwords.hash(secrets.token_urlsafe(16))

# No 0/O/1/I/L: codes are read aloud at the front desk and typed by friends.
_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    default_message = "Username or password is wrong."


class StaffDisabled(Forbidden):
    code = "staff_disabled"
    default_message = "This staff account is disabled."


class CustomerNotFound(NotFound):
    code = "customer_not_found"
    default_message = "Customer not found."


class StaffNotFound(NotFound):
    code = "staff_not_found"
    default_message = "Staff member not found."


class UsernameTaken(Conflict):
    code = "username_taken"
    default_message = "That username is already taken."


def new_referral_code() -> str:
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(8))


async def login_customer(
    conn: BaseDBAsyncClient, session: WeChatSession
) -> tuple[Customer, bool]:
    """Find or create the customer for a WeChat session. Returns (customer, created)."""
    now = clock.now()
    sealed_key = crypto.seal(session.session_key)
    updated = await Customer.filter(openid=session.openid, deleted_at=None).using_db(conn).update(
        session_key_sealed=sealed_key, last_login_at=now
    )
    if updated:
        customer = await Customer.get(openid=session.openid, using_db=conn)
        if session.unionid and not customer.unionid:
            customer.unionid = session.unionid
            await customer.save(using_db=conn, update_fields=["unionid"])
        return customer, False
    # An erased customer's row no longer carries the openid (kernel.privacy), so a person who comes
    # back after erasure starts as a new customer.
    for _ in range(5):
        try:
            customer = await Customer.create(
                openid=session.openid,
                unionid=session.unionid,
                session_key_sealed=sealed_key,
                referral_code=new_referral_code(),
                created_at=now,
                last_login_at=now,
                using_db=conn,
            )
            return customer, True
        except IntegrityError:
            # Either the referral code collided (retry with another) or a concurrent first login
            # for the same openid won; in that case the caller's transaction retries as a login.
            if await Customer.filter(openid=session.openid).using_db(conn).exists():
                raise RaceLost("A login for this customer is already in progress; retry.")
    raise Conflict("Could not allocate a referral code; retry.")


class AccountErased(Unauthorized):
    code = "account_erased"
    default_message = "This account was erased at the customer's request."


async def customer_is_active(customer_id: int, conn: BaseDBAsyncClient | None = None) -> bool:
    """A customer exists and was not erased (read outside any transaction by the auth guard).

    Parameterised SQL, not the ORM: it runs on every customer request, and building the query cost more
    CPU than the round trip (bench/profile.py).
    """
    conn = conn or connections.get("default")
    mark = "%s" if conn.capabilities.dialect == "mysql" else "?"
    _, rows = await conn.execute_query(f"SELECT 1 FROM customer WHERE id = {mark} AND deleted_at IS NULL LIMIT 1",
                                       [customer_id])
    return bool(rows)


async def _active_among(customer_ids: list[int]) -> list[bool]:
    """Which of these customers exist and were not erased, in one statement (MySQL/MariaDB)."""
    ids = sorted(set(customer_ids))
    _, rows = await connections.get("default").execute_query(
        f"SELECT id FROM customer WHERE id IN {in_list(ids)} AND deleted_at IS NULL", ids)
    active = {row["id"] for row in rows}
    return [customer_id in active for customer_id in customer_ids]


# The guard's reads of customers this process has not seen active lately: those asked in the same pass of the
# event loop share one statement (kernel.together: sent after each asked). They come together: a campaign's
# push brings many new customers at once, and each one's window in `_SeenActive` ends at about the same time.
_ACTIVE_TOGETHER: Together[int, bool] = Together(_active_among, most=200)


async def _read_active(customer_id: int) -> bool:
    if not reads_may_be_shared(connections.get("default")):
        return await customer_is_active(customer_id)
    return await _ACTIVE_TOGETHER.ask(customer_id)


class _SeenActive:
    """Customers this process found active in the last `CUSTOMER_SEEN_ACTIVE_SECONDS` (default 1 s; each
    entry kept between half and all of it).

    For the guard of reads only: a mini-program opening a screen sends several GETs with one token in
    the same second, and the erasure check was a second pooled connection and round trip on each
    (a third of a slot listing's server CPU). Erasure is a worker job that runs some time after the
    request anyway; a read by an erased customer inside this second shows their already-anonymised rows.
    Writes never use it: they read the row, or check it inside their own statement.
    """

    def __init__(self, max_entries: int = 65536) -> None:
        self.max_entries = max_entries
        self.monotonic = time.monotonic  # a test moves it
        self._until: dict[int, float] = {}

    @property
    def seconds(self) -> float:
        # Read from the settings at each use, not when this module is imported: the start judges the value with
        # every other setting first (kernel.settings.CUSTOMER_SEEN_ACTIVE_SECONDS), and get_settings is cached.
        return get_settings().auth.customer_seen_active_seconds

    async def check(self, customer_id: int) -> bool:
        now = self.monotonic()
        if self._until.get(customer_id, 0.0) > now:
            return True
        if not await _read_active(customer_id):
            self._until.pop(customer_id, None)
            return False
        if self.seconds > 0:
            if len(self._until) >= self.max_entries:
                self._until.clear()
            # Spread over the second half of the window: customers first seen together (a campaign's push)
            # would otherwise all be read again in the same instant, a burst of queries every second.
            self._until[customer_id] = now + self.seconds * (0.5 + random.random() / 2)
        return True


SEEN_ACTIVE = _SeenActive()


async def staff_member_or_none(staff_id: int, conn: BaseDBAsyncClient | None = None) -> StaffMember | None:
    return await StaffMember.get_or_none(id=staff_id, using_db=conn)


async def lock_customers(
    conn: BaseDBAsyncClient, customer_ids: set[int], *, active_only: bool = False
) -> set[int]:
    """Lock customer rows (FOR UPDATE) in id order and return the ids found.

    Every room that changes a customer's points, seats or rewards locks the customer row first: it always
    exists, so InnoDB takes a record lock (not a gap lock), and one fixed order makes concurrent
    transactions queue instead of deadlocking. Reads made after it see what the previous holder committed.
    (One exception: a day's check-in credit locks only the customer's points account row, which every
    change of points locks too: `points_mall.ledger.add_credit_new_ref`.)
    """
    if not customer_ids:
        return set()
    ids = sorted(customer_ids)
    if conn.capabilities.dialect != "mysql":
        query = Customer.filter(id__in=ids)
        if active_only:
            query = query.filter(deleted_at=None)
        # Model rows, not .exists()/.values_list(): Tortoise drops FOR UPDATE from those.
        rows = await query.using_db(conn).select_for_update().order_by("id").only("id")
        return {row.id for row in rows}
    # Parameterised SQL on MySQL/MariaDB: every hot write (booking, redemption, join) starts here, and the
    # ORM's query building and hydration cost more CPU than the statement.
    _, found = await conn.execute_query(*customer_lock_statement(customer_ids, active_only=active_only))
    return {row["id"] for row in found}


def customer_lock_statement(customer_ids: set[int], *, active_only: bool = False) -> tuple[str, list[int]]:
    """`lock_customers`' statement on MySQL/MariaDB and its parameters, for a caller that sends it in a batch
    (`kernel.batch`) with the reads that must follow it; its rows are the ids found."""
    ids = sorted(customer_ids)
    active = " AND deleted_at IS NULL" if active_only else ""
    return f"SELECT id FROM customer WHERE id IN {in_list(ids)}{active} ORDER BY id FOR UPDATE", ids


async def get_customer(conn: BaseDBAsyncClient, customer_id: int) -> Customer:
    customer = await Customer.get_or_none(id=customer_id, deleted_at=None, using_db=conn)
    if customer is None:
        raise CustomerNotFound()
    return customer


async def update_profile(
    conn: BaseDBAsyncClient,
    customer_id: int,
    *,
    nickname: str | None = None,
    avatar_url: str | None = None,
    gender: Gender | None = None,
    birth_date: date | None = None,
) -> Customer:
    customer = await get_customer(conn, customer_id)
    changed: list[str] = []
    if nickname is not None:
        customer.nickname = nickname.strip()
        changed.append("nickname")
    if avatar_url is not None:
        customer.avatar_url = avatar_url
        changed.append("avatar_url")
    if gender is not None:
        customer.gender = gender
        changed.append("gender")
    if birth_date is not None:
        if birth_date > clock.local_today() or birth_date.year < 1900:
            raise ValidationFailed("Birth date is not plausible.", field="birth_date")
        customer.birth_date = birth_date
        changed.append("birth_date")
    if changed:
        await customer.save(using_db=conn, update_fields=changed)
    return customer


async def bind_phone(conn: BaseDBAsyncClient, customer_id: int, phone: str) -> Customer:
    customer = await get_customer(conn, customer_id)
    customer.phone_sealed = crypto.seal(phone)
    customer.phone_hash = crypto.lookup_hash(phone)
    customer.phone_masked = crypto.mask_phone(phone)
    customer.phone_last4_hash = crypto.last4_hash(phone)
    await customer.save(
        using_db=conn, update_fields=["phone_sealed", "phone_hash", "phone_masked", "phone_last4_hash"]
    )
    return customer


def _validate_roles(roles: list[str]) -> str:
    if not roles:
        raise ValidationFailed("At least one role is required.", field="roles")
    valid = {r.value for r in StaffRole}
    for role in roles:
        if role not in valid:
            raise ValidationFailed(f"Unknown role {role!r}.", field="roles", allowed=sorted(valid))
    return ",".join(sorted(set(roles)))


def _validate_password(password: str, username: str = "") -> None:
    check_staff_password(password, username=username)


class LastActiveAdmin(Conflict):
    code = "last_active_admin"
    default_message = ("This would leave no active admin: give another member the admin role first "
                       "(nobody could manage staff accounts otherwise).")


async def _keep_an_active_admin(conn: BaseDBAsyncClient, staff_id: int, *, field: str) -> None:
    """Refuse to demote or disable the last active admin. Every active admin row is locked (in id order) so two
    admins demoting each other at once cannot both succeed: the second sees the first's change."""
    admins = await StaffMember.filter(is_active=True, roles__contains="admin").using_db(conn).order_by(
        "id").select_for_update()
    if not any(a.id != staff_id and "admin" in a.role_set for a in admins):
        raise LastActiveAdmin(field=field, staff_id=staff_id)


async def create_staff(
    conn: BaseDBAsyncClient,
    *,
    username: str,
    password: str,
    roles: list[str],
    display_name: str = "",
) -> StaffMember:
    _validate_password(password, username)
    role_text = _validate_roles(roles)
    if await StaffMember.filter(username=username).using_db(conn).exists():
        raise UsernameTaken(field="username")
    try:
        return await StaffMember.create(
            username=username,
            display_name=display_name or username,
            password_hash=_passwords.hash(password),
            roles=role_text,
            created_at=clock.now(),
            using_db=conn,
        )
    except IntegrityError as exc:
        raise UsernameTaken(field="username") from exc


async def authenticate_staff(conn: BaseDBAsyncClient, username: str, password: str) -> StaffMember:
    staff = await StaffMember.get_or_none(username=username, using_db=conn)
    if staff is None:
        _passwords.verify(password, _DUMMY_HASH)
        raise InvalidCredentials()
    if not _passwords.verify(password, staff.password_hash):
        raise InvalidCredentials()
    if not staff.is_active:
        raise StaffDisabled()
    return staff


async def get_staff(conn: BaseDBAsyncClient, staff_id: int) -> StaffMember:
    staff = await StaffMember.get_or_none(id=staff_id, using_db=conn)
    if staff is None:
        raise StaffNotFound()
    return staff


async def update_staff(
    conn: BaseDBAsyncClient,
    staff_id: int,
    *,
    roles: list[str] | None = None,
    is_active: bool | None = None,
    password: str | None = None,
    display_name: str | None = None,
) -> StaffMember:
    staff = await get_staff(conn, staff_id)
    was_admin = staff.is_active and "admin" in staff.role_set
    if was_admin and roles is not None and "admin" not in roles:
        await _keep_an_active_admin(conn, staff_id, field="roles")
    if was_admin and is_active is False:
        await _keep_an_active_admin(conn, staff_id, field="is_active")
    changed: list[str] = []
    revoke = False
    if roles is not None:
        staff.roles = _validate_roles(roles)
        changed.append("roles")
        revoke = True
    if is_active is not None and is_active != staff.is_active:
        staff.is_active = is_active
        changed.append("is_active")
        revoke = True
    if password is not None:
        _validate_password(password, staff.username)
        staff.password_hash = _passwords.hash(password)
        changed.append("password_hash")
        revoke = True
    if display_name is not None:
        staff.display_name = display_name
        changed.append("display_name")
    if revoke:
        staff.token_version += 1
        changed.append("token_version")
    if changed:
        await staff.save(using_db=conn, update_fields=changed)
    return staff


async def bootstrap_admin(conn: BaseDBAsyncClient, username: str, password: str) -> StaffMember | None:
    """Create the first admin when no admin exists yet; otherwise do nothing."""
    admins = await StaffMember.filter(roles__contains="admin").using_db(conn).count()
    if admins:
        return None
    try:
        check_staff_password(password, username=username)
    except ValidationFailed as exc:
        # Start-up stops here: name the variable the operator must change.
        raise ValidationFailed(f"BOOTSTRAP_ADMIN_PASSWORD: {exc.message}", field="BOOTSTRAP_ADMIN_PASSWORD",
                               **{k: v for k, v in exc.detail.items() if k != "field"}) from None
    staff = await create_staff(conn, username=username, password=password, roles=["admin"])
    await audit(conn, None, "staff.bootstrap_admin", "staff_member", staff.id, {"username": username})
    return staff


async def list_staff(conn: BaseDBAsyncClient, *, limit: int, offset: int) -> tuple[int, list[StaffMember]]:
    query = StaffMember.all().using_db(conn)
    return await query.count(), await query.order_by("id").offset(offset).limit(limit)


async def find_customers(
    conn: BaseDBAsyncClient,
    *,
    limit: int,
    offset: int,
    name: str | None = None,
    phone_last4: str | None = None,
    referral_code: str | None = None,
) -> tuple[int, list[Customer]]:
    """Customers matching every given clue: part of the nickname, the phone's last four digits, the exact code.

    The phone stays sealed: its masked form (138****1111) keeps the last four digits, which is what the
    desk asks for. Erased customers are never found.
    """
    if not (name or phone_last4 or referral_code):
        raise ValidationFailed("Give a name, the phone's last four digits or a referral code.", field="name")
    if phone_last4 is not None and not (len(phone_last4) == 4 and phone_last4.isdigit()):
        raise ValidationFailed("Four digits.", field="phone_last4")
    query = Customer.filter(deleted_at=None).using_db(conn)
    if name:
        query = query.filter(nickname__icontains=name)
    if phone_last4:
        query = query.filter(phone_masked__endswith=phone_last4)
    if referral_code:
        query = query.filter(referral_code=referral_code.strip().upper())
    return await query.count(), await query.order_by("-id").offset(offset).limit(limit)


async def list_audit_entries(
    conn: BaseDBAsyncClient,
    *,
    limit: int,
    offset: int,
    target_type: str | None = None,
    target_id: str | None = None,
    action: str | None = None,
) -> tuple[int, list[AuditLogEntry]]:
    """The audit trail, newest first, optionally narrowed to one record or one kind of action."""
    filters = {k: v for k, v in (("target_type", target_type), ("target_id", target_id), ("action", action)) if v}
    query = AuditLogEntry.filter(**filters).using_db(conn)
    return await query.count(), await query.order_by("-id").offset(offset).limit(limit)


async def audit(
    conn: BaseDBAsyncClient,
    staff_id: int | None,
    action: str,
    target_type: str,
    target_id: Any,
    detail: dict[str, Any] | None = None,
) -> AuditLogEntry:
    """Record a staff write in the same transaction as the write itself."""
    request_id = structlog.contextvars.get_contextvars().get("request_id", "")
    return await AuditLogEntry.create(
        staff_id=staff_id,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        detail=detail or {},
        request_id=request_id,
        created_at=clock.now(),
        using_db=conn,
    )
