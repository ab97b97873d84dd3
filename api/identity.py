"""Identity routes: customer login and profile (/app), staff login, staff accounts, audit log (/admin)."""

from __future__ import annotations

import hashlib

from litestar import Controller
from litestar.datastructures import State
from litestar.di import Provide
from litestar.status_codes import HTTP_200_OK

from tortoise.backends.base.client import BaseDBAsyncClient

from api.deps import Db, Limit, Offset
from api.handlers import get, patch, post
from api.ratelimit import enforce_limit, rate_limited
from api.security import customer_guard, provide_customer_id, provide_staff, staff_only
from kernel import privacy
from kernel.identity import service
from kernel.identity.schemas import (
    AuditEntry,
    CustomerFound,
    CustomerFoundPage,
    CustomerLogin,
    CustomerLoginResult,
    Me,
    MeUpdate,
    Page,
    PhoneBind,
    Staff,
    StaffCreate,
    StaffLogin,
    StaffLoginResult,
    StaffUpdate,
)
from kernel.settings import get_settings
from kernel.identity.tokens import Principal, issue_customer_token, issue_staff_token

import msgspec


class CustomerAuthController(Controller):
    path = "/app/auth"
    tags = ["customer: identity"]

    @post(
        "/login",
        status_code=HTTP_200_OK,
        summary="Log in with a wx.login code",
        guards=[rate_limited("login", per_ip=get_settings().rate_limit.login_per_ip)],
    )
    async def login(self, db: Db, data: CustomerLogin, state: State) -> CustomerLoginResult:
        # The WeChat call happens before any transaction is opened.
        session = await state.miniprogram.code2session(data.code)
        # Two first logins for one openid race on the unique key; the loser's transaction runs again
        # (kernel.db.RaceLost) and finds the customer the winner created.
        async def work(conn: BaseDBAsyncClient):
            customer, created = await service.login_customer(conn, session)
            for hook in state.customer_login_hooks:
                await hook(conn, customer, created, data.referral_code, data.scene)
            return customer, created

        customer, created = await db.run(work)
        token, ttl = issue_customer_token(customer.id)
        return CustomerLoginResult(
            access_token=token, token_type="Bearer", expires_in=ttl, customer_id=customer.id, is_new=created
        )


class MeController(Controller):
    path = "/app/me"
    tags = ["customer: identity"]
    guards = [customer_guard]
    dependencies = {"customer_id": Provide(provide_customer_id)}

    @get("/", summary="The logged-in customer")
    async def me(self, db: Db, customer_id: int) -> Me:
        async def work(conn: BaseDBAsyncClient):
            return Me.of(await service.get_customer(conn, customer_id))

        return await db.run(work)

    @patch("/", summary="Update nickname, avatar, gender, birth date")
    async def update(self, db: Db, customer_id: int, data: MeUpdate) -> Me:
        async def work(conn: BaseDBAsyncClient):
            customer = await service.update_profile(
                conn,
                customer_id,
                nickname=data.nickname,
                avatar_url=data.avatar_url,
                gender=data.gender,
                birth_date=data.birth_date,
            )
            return Me.of(customer)

        return await db.run(work)

    @get("/data-export", summary="Everything we hold about me (PIPL access right)")
    async def data_export(self, db: Db, customer_id: int) -> dict:
        return await db.run(privacy.export_customer_data, customer_id)

    @post("/erasure", status_code=202, summary="Ask for my personal data to be erased (PIPL)")
    async def request_erasure(self, db: Db, customer_id: int) -> dict[str, str]:
        async def work(conn: BaseDBAsyncClient):
            await privacy.request_erasure(conn, customer_id)

        await db.run(work)
        return {"status": "erasure_requested"}

    @post("/phone", status_code=HTTP_200_OK, summary="Bind the phone number (getPhoneNumber code)")
    async def bind_phone(self, db: Db, customer_id: int, data: PhoneBind, state: State) -> Me:
        phone = await state.miniprogram.phone_number(data.code)

        async def work(conn: BaseDBAsyncClient):
            return Me.of(await service.bind_phone(conn, customer_id, phone))

        return await db.run(work)


class StaffAuthController(Controller):
    path = "/admin/auth"
    tags = ["staff: identity"]

    @post(
        "/login",
        status_code=HTTP_200_OK,
        summary="Staff login with username and password",
        guards=[rate_limited("staff_login", per_ip=get_settings().rate_limit.login_per_ip)],
    )
    async def login(self, db: Db, data: StaffLogin, state: State) -> StaffLoginResult:
        # Per username too: guesses spread over many addresses (or proxies) still count against the account.
        # The key is a digest so usernames, real or guessed, are not written to Redis in clear.
        username_key = hashlib.sha256(data.username.strip().casefold().encode()).hexdigest()[:32]
        await enforce_limit(state, "staff_login", "username", username_key,
                            get_settings().rate_limit.staff_login_per_username)
        staff = await db.run(service.authenticate_staff, data.username, data.password)
        token, ttl = issue_staff_token(staff.id, staff.role_set, staff.token_version)
        return StaffLoginResult(access_token=token, token_type="Bearer", expires_in=ttl,
                                staff=Staff.of(staff), clinic_timezone=get_settings().app.clinic_timezone)

    @get("/me", guards=[staff_only()], dependencies={"staff": Provide(provide_staff)})
    async def me(self, db: Db, staff: Principal) -> Staff:
        async def work(conn: BaseDBAsyncClient):
            return Staff.of(await service.get_staff(conn, staff.id))

        return await db.run(work)


class StaffList(Page):
    items: list[Staff]


class AuditPage(Page):
    items: list[AuditEntry]


class StaffAdminController(Controller):
    path = "/admin/staff"
    tags = ["staff: administration"]
    guards = [staff_only("admin")]
    dependencies = {"staff": Provide(provide_staff)}

    @get("/", summary="List staff members")
    async def list_staff(self, db: Db, limit: Limit, offset: Offset) -> StaffList:
        total, rows = await db.run(service.list_staff, limit=limit, offset=offset)
        return StaffList(total=total, limit=limit, offset=offset, items=[Staff.of(s) for s in rows])

    @post("/", summary="Create a staff member")
    async def create(self, db: Db, data: StaffCreate, staff: Principal) -> Staff:
        async def work(conn: BaseDBAsyncClient):
            created = await service.create_staff(
                conn,
                username=data.username,
                password=data.password,
                roles=[r.value for r in data.roles],
                display_name=data.display_name,
            )
            await service.audit(
                conn, staff.id, "staff.create", "staff_member", created.id,
                {"username": created.username, "roles": created.roles},
            )
            return Staff.of(created)

        return await db.run(work)

    @patch("/{staff_id:int}", summary="Change roles, disable, reset password")
    async def update(self, db: Db, staff_id: int, data: StaffUpdate, staff: Principal) -> Staff:
        async def work(conn: BaseDBAsyncClient):
            updated = await service.update_staff(
                conn,
                staff_id,
                roles=[r.value for r in data.roles] if data.roles is not None else None,
                is_active=data.is_active,
                password=data.password,
                display_name=data.display_name,
            )
            changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None and k != "password"}
            if data.password is not None:
                changes["password"] = "reset"
            await service.audit(conn, staff.id, "staff.update", "staff_member", staff_id, changes)
            return Staff.of(updated)

        return await db.run(work)


class AuditController(Controller):
    path = "/admin/audit-log"
    tags = ["staff: administration"]
    guards = [staff_only("admin", "finance")]

    @get("/", summary="Audit trail of staff writes, newest first")
    async def list_entries(
        self, db: Db, limit: Limit, offset: Offset, target_type: str | None = None, target_id: str | None = None,
        action: str | None = None,
    ) -> AuditPage:
        async def work(conn: BaseDBAsyncClient):
            total, rows = await service.list_audit_entries(
                conn, limit=limit, offset=offset, target_type=target_type, target_id=target_id, action=action
            )
            return total, rows

        total, rows = await db.run(work)
        return AuditPage(total=total, limit=limit, offset=offset, items=[AuditEntry.of(r) for r in rows])


class CustomerLookupController(Controller):
    """Find a customer at the desk by name, phone's last four digits or referral code (then open their card)."""

    path = "/admin/customer-lookup"
    tags = ["staff: customers"]
    guards = [staff_only("front_desk")]
    dependencies = {"staff": Provide(provide_staff)}

    @get("/", summary="Customers by part of the name, the phone's last four digits or the referral code")
    async def lookup(
        self, db: Db, staff: Principal, limit: Limit, offset: Offset, name: str | None = None,
        phone_last4: str | None = None, referral_code: str | None = None,
    ) -> CustomerFoundPage:
        async def work(conn: BaseDBAsyncClient):
            total, rows = await service.find_customers(
                conn, limit=limit, offset=offset, name=name, phone_last4=phone_last4, referral_code=referral_code
            )
            # Searching people is reading personal data: who looked for whom is kept.
            await service.audit(conn, staff.id, "customer.lookup", "customer", "search",
                                {"name": name, "phone_last4": phone_last4, "referral_code": referral_code,
                                 "found": total})
            return total, rows

        total, rows = await db.run(work)
        return CustomerFoundPage(total=total, limit=limit, offset=offset, items=[CustomerFound.of(c) for c in rows])


ROUTES = [
    CustomerAuthController, MeController, StaffAuthController, StaffAdminController, AuditController,
    CustomerLookupController,
]
