"""Authentication and roles: bearer tokens checked by guards, the principal handed to handlers.

Customer routes (`/app/*`) take a customer token; staff routes (`/admin/*`) take a staff token
and declare the roles they need with `staff_only(...)`. A staff member who was disabled or whose
roles changed is refused at once (the token's version no longer matches).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from api.deps import Db
from kernel.errors import Forbidden, Unauthorized
from kernel.identity.service import SEEN_ACTIVE, AccountErased, customer_is_active, staff_member_or_none
from kernel.identity.tokens import Principal, TokenInvalid, decode_token

_PRINCIPAL = "principal"

Guard = Callable[[ASGIConnection, BaseRouteHandler], Coroutine[Any, Any, None]]


class TokenMissing(Unauthorized):
    code = "token_missing"
    default_message = "Send 'Authorization: Bearer <token>'."


class WrongAudience(Forbidden):
    code = "wrong_token_kind"
    default_message = "This token cannot be used on these routes."


class RoleRequired(Forbidden):
    code = "role_required"
    default_message = "Your role does not allow this."


def _bearer(connection: ASGIConnection) -> Principal:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise TokenMissing()
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenInvalid()
    return decode_token(token.strip())


# A route whose work checks the customer is active (not erased) in its own statement sets this in its
# `opt`, and the guard skips its own read: the check-in folds it into its first SELECT.
ERASURE_CHECKED_BY_WORK = "erasure_checked_by_work"
_READS = frozenset({"GET", "HEAD"})


async def customer_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    principal = _bearer(connection)
    if principal.kind != "customer":
        raise WrongAudience()
    # A token outlives an erasure, so each request checks the customer row: a write reads it (or its
    # work does, in the same statement as its first read); a read may use this process's answer of the
    # last second (kernel.identity.service._SeenActive says why that is safe).
    if handler.opt.get(ERASURE_CHECKED_BY_WORK):
        pass
    elif connection.scope["method"] in _READS:
        if not await SEEN_ACTIVE.check(principal.id):
            raise AccountErased()
    elif not await customer_is_active(principal.id):
        raise AccountErased()
    connection.state[_PRINCIPAL] = principal


def staff_only(*roles: str, include_admin: bool = True) -> Guard:
    """A guard that admits staff holding any of `roles`.

    Admin is admitted too unless `include_admin=False` (e.g. finance's maker-checker steps, where
    separation of duties matters more than convenience).
    """
    allowed = frozenset(roles) | ({"admin"} if include_admin else frozenset())

    async def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        principal = _bearer(connection)
        if principal.kind != "staff":
            raise WrongAudience()
        staff = await staff_member_or_none(principal.id)
        if staff is None or staff.token_version != principal.token_version:
            raise TokenInvalid("The token was revoked; log in again.")
        if not staff.is_active:
            raise Forbidden("This staff account is disabled.", reason="staff_disabled")
        held = staff.role_set
        if roles and not (held & allowed):
            raise RoleRequired(required=sorted(allowed))
        connection.state[_PRINCIPAL] = Principal(
            kind="staff", id=staff.id, roles=held, token_version=staff.token_version
        )

    guard.__name__ = f"staff_only_{'_'.join(roles) or 'any'}"
    # Read by the role-matrix test, which checks every /admin route against what it declares.
    guard.allowed_roles = allowed if roles else None  # type: ignore[attr-defined]
    return guard


def principal_of(connection: ASGIConnection) -> Principal:
    principal = connection.state.get(_PRINCIPAL)
    if principal is None:  # a handler reached without a guard is a programming error
        raise Unauthorized()
    return principal


# Both providers take `db` although they do not use it: Litestar resolves dependencies that do not depend
# on each other (here `db` and the principal) in an anyio task group, two tasks per request, which cost
# 4% of a check-in's server CPU (bench/profile.py); depending on `db` puts them one after the other.
async def provide_customer_id(request: Any, db: Db) -> int:
    principal = principal_of(request)
    return principal.id


async def provide_staff(request: Any, db: Db) -> Principal:
    return principal_of(request)
