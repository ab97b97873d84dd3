"""Our token check accepts exactly the tokens PyJWT issues for us and refuses every other form, including ones
PyJWT's own decode would have accepted (another header, an extra claim)."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from kernel.identity import tokens
from kernel.identity.tokens import TokenInvalid, decode_token, issue_customer_token, issue_staff_token
from kernel.settings import get_settings


def _key() -> str:
    return get_settings().app.secret_key


def _segment(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(**extra) -> dict:
    now = int(time.time())
    return {"sub": "42", "typ": "customer", "iss": "clinic-miniprogram", "iat": now, "exp": now + 600, **extra}


def _fresh(token: str) -> str:
    tokens._VERIFIED.pop(token, None)  # each case is verified, not answered from the cache
    return token


def test_the_tokens_we_issue_verify_and_carry_their_claims():
    customer, _ = issue_customer_token(42)
    staff, _ = issue_staff_token(7, frozenset({"finance", "campaign"}), 3)
    assert customer.split(".")[0] == tokens._HEADER  # the one header PyJWT writes for HS256
    principal = decode_token(_fresh(customer))
    assert (principal.kind, principal.id, principal.roles) == ("customer", 42, frozenset())
    principal = decode_token(_fresh(staff))
    assert (principal.kind, principal.id, principal.roles, principal.token_version) == (
        "staff", 7, frozenset({"finance", "campaign"}), 3)
    # What the check accepts, PyJWT accepts too (the same key, algorithm and issuer).
    assert jwt.decode(customer, _key(), algorithms=["HS256"], issuer="clinic-miniprogram")["sub"] == "42"


def _refusals() -> dict[str, str]:
    key = _key()
    good = jwt.encode(_claims(), key, algorithm="HS256")
    header, payload, signature = good.split(".")
    other_sub = _segment(_claims(sub="1"))
    return {
        "another key": jwt.encode(_claims(), "not-our-key-" + "x" * 32, algorithm="HS256"),
        "alg none": jwt.encode(_claims(), key=None, algorithm="none"),
        "another algorithm": jwt.encode(_claims(), key, algorithm="HS512"),
        "another header (kid)": jwt.encode(_claims(), key, algorithm="HS256", headers={"kid": "1"}),
        "an extra claim (aud)": jwt.encode(_claims(aud="someone"), key, algorithm="HS256"),
        "another issuer": jwt.encode(_claims(iss="someone-else"), key, algorithm="HS256"),
        "no issuer": jwt.encode({k: v for k, v in _claims().items() if k != "iss"}, key, algorithm="HS256"),
        "no expiry": jwt.encode({k: v for k, v in _claims().items() if k != "exp"}, key, algorithm="HS256"),
        "payload swapped": f"{header}.{other_sub}.{signature}",
        "signature cut": f"{header}.{payload}.{signature[:-1]}",
        "signature padded": f"{header}.{payload}.{signature}=",
        "a fourth segment": f"{good}.x",
        "no signature": f"{header}.{payload}.",
        "no payload": f"{header}..{signature}",
        "not base64": f"{header}.{payload}!.{signature}",
        "non-ascii": f"{header}.{payload}.{signature[:-1]}é",
        "one segment": header,
        "empty": "",
    }


@pytest.mark.parametrize("case", list(_refusals()))
def test_every_other_form_is_refused(case):
    token = _refusals()[case]
    with pytest.raises(TokenInvalid):
        decode_token(_fresh(token))
