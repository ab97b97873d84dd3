"""Our own signed access tokens (HS256 JWT) for customers and staff members."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import timedelta
from typing import Annotated

import jwt
import msgspec

from kernel import clock
from kernel.errors import Unauthorized
from kernel.settings import get_settings

_ALGORITHM = "HS256"
_ISSUER = "clinic-miniprogram"


class Principal(msgspec.Struct, frozen=True):
    """The caller behind a valid token."""

    kind: str  # "customer" or "staff"
    id: int
    roles: frozenset[str] = frozenset()
    token_version: int = 0


class TokenExpired(Unauthorized):
    code = "token_expired"
    default_message = "The access token has expired; log in again."


class TokenInvalid(Unauthorized):
    code = "token_invalid"
    default_message = "The access token is not valid."


_Int64 = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class _Claims(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A token's whole payload as we issue it, with its types: any other claim (an audience, a not-before) or
    another type is refused."""

    sub: str
    typ: str
    exp: _Int64
    iat: _Int64
    roles: list[str] = []
    ver: _Int64 = 0
    iss: str = ""


def _issue(claims: dict, ttl_seconds: int) -> tuple[str, int]:
    issued = clock.now()
    payload = {
        **claims,
        "iss": _ISSUER,
        "iat": int(issued.timestamp()),
        "exp": int((issued + timedelta(seconds=ttl_seconds)).timestamp()),
    }
    return jwt.encode(payload, get_settings().app.secret_key, algorithm=_ALGORITHM), ttl_seconds


def issue_customer_token(customer_id: int) -> tuple[str, int]:
    return _issue({"sub": str(customer_id), "typ": "customer"}, get_settings().auth.customer_token_ttl_seconds)


def issue_staff_token(staff_id: int, roles: frozenset[str], token_version: int) -> tuple[str, int]:
    return _issue(
        {"sub": str(staff_id), "typ": "staff", "roles": sorted(roles), "ver": token_version},
        get_settings().auth.staff_token_ttl_seconds,
    )


def _segment(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# The one header we issue (PyJWT writes it for HS256; a test checks it is PyJWT's): a token with any other
# header, another algorithm or "none" included, is refused before anything else is read.
_HEADER = _segment(b'{"alg":"HS256","typ":"JWT"}')
_CLAIMS = msgspec.json.Decoder(_Claims)


def _signed_payload(token: str, key: str) -> bytes:
    """The payload of a token we issued and signed with `key`, or TokenInvalid.

    Only our own tokens are verified here, and only in their one form (our header, HS256): PyJWT's general
    decode cost 33 µs of CPU a token against 5 µs here (`python -m bench.tokens`; it checks the base64
    alphabet character by character in Python), the most of the guard's work when the token is new to this
    process, as it is on a first request after login. The signature is compared as the text a signer
    with our key writes for this header and payload, in constant time; PyJWT still issues every token."""
    header, _, rest = token.partition(".")
    payload, _, signature = rest.partition(".")
    if header != _HEADER or not payload or not signature:
        raise TokenInvalid()
    expected = _segment(hmac.new(key.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise TokenInvalid()
    try:
        return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    except (ValueError, binascii.Error) as exc:
        raise TokenInvalid() from exc


# Tokens whose signature and claims were checked, by the whole token string, with their expiry and the
# caller they name: a customer's mini-program sends several requests with one token. The same string
# under the same key always verifies the same way; expiry is still judged on every use.
_VERIFIED: dict[str, tuple[str, int, Principal]] = {}
_VERIFIED_MAX = 16384


def _verified(token: str) -> tuple[str, int, Principal]:
    key = get_settings().app.secret_key
    seen = _VERIFIED.get(token)
    if seen is not None and seen[0] == key:  # a key changed in place (tests) verifies again
        return seen
    # A token carrying our signature but claims of the wrong shape (a leaked key, a bug in an old release)
    # is refused like any invalid token, never a 500: the claims are checked by type. Expiry and issue time
    # are judged by our clock (decode_token), so tests can move time.
    try:
        checked = _CLAIMS.decode(_signed_payload(token, key))
    except msgspec.DecodeError as exc:  # not JSON, or claims of the wrong type, missing or unknown
        raise TokenInvalid() from exc
    if checked.iss != _ISSUER or checked.typ not in {"customer", "staff"}:
        raise TokenInvalid()
    try:
        principal_id = int(checked.sub)
    except ValueError as exc:
        raise TokenInvalid() from exc
    if not 0 < principal_id < 2**63:
        raise TokenInvalid()
    principal = Principal(kind=checked.typ, id=principal_id, roles=frozenset(checked.roles),
                          token_version=checked.ver)
    if len(_VERIFIED) >= _VERIFIED_MAX:
        _VERIFIED.clear()
    _VERIFIED[token] = seen = (key, checked.exp, principal)
    return seen


def decode_token(token: str) -> Principal:
    _, expires, principal = _verified(token)
    # Expiry is checked against our clock so tests can move time instead of sleeping.
    if expires <= int(clock.now().timestamp()):
        raise TokenExpired()
    return principal
