"""Checking an incoming WeChat Pay notification: headers, timestamp freshness, signature, AEAD decryption.

The signature check and the AEAD_AES_256_GCM decryption are the `wechatpayv3` SDK's (`callback`);
this module adds what the SDK leaves to the merchant: a known key serial, a fresh timestamp, and a
typed refusal reason for the log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from wechatpayv3.utils import rsa_verify

from kernel import clock
from orders.gateway import Notification, NotificationRejected

HEADERS = ("Wechatpay-Signature", "Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Serial")
SIGNATURE_TYPE = "Wechatpay-Signature-Type"
RSA_SIGNATURE = "WECHATPAY2-SHA256-RSA2048"


def canonical_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """WeChat's header names in their documented spelling, whatever case the server delivered."""
    lowered = {k.lower(): v for k, v in headers.items()}
    found = {name: lowered.get(name.lower(), "") for name in HEADERS}
    # Older senders omit the type; the only algorithm WeChat Pay v3 uses for these is RSA.
    found[SIGNATURE_TYPE] = lowered.get(SIGNATURE_TYPE.lower(), RSA_SIGNATURE)
    return found


def verify_notification(
    sdk: Any, *, public_key: Any, public_key_id: str, headers: Mapping[str, str], body: bytes, max_age_seconds: int
) -> Notification:
    """`sdk` is a wechatpayv3 (Async)WeChatPay configured in public-key mode with our APIv3 key."""
    found = canonical_headers(headers)
    if not all(found[name] for name in HEADERS):
        raise NotificationRejected("missing_headers")
    if found[SIGNATURE_TYPE] != RSA_SIGNATURE:
        raise NotificationRejected("unsupported_signature_type")
    if found["Wechatpay-Serial"] != public_key_id:
        # Public-key mode: anything signed under another serial is not from our WeChat Pay account.
        raise NotificationRejected("unknown_serial")
    raw_timestamp = found["Wechatpay-Timestamp"].strip()
    # Seconds since 1970 have ten digits until 2286; anything much longer would overflow the float
    # comparison below (a 400-digit value answered 503 and a traceback instead of this refusal).
    if not raw_timestamp.isascii() or not raw_timestamp.isdigit() or len(raw_timestamp) > 12:
        raise NotificationRejected("bad_timestamp")
    timestamp = int(raw_timestamp)
    if abs(clock.now().timestamp() - timestamp) > max_age_seconds:
        raise NotificationRejected("stale_timestamp")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise NotificationRejected("not_utf8") from None
    try:
        result = sdk.callback(found, text)
    except Exception:  # the SDK raises bare exceptions for unsupported algorithms and bad JSON
        raise NotificationRejected("malformed") from None
    if not result:
        # callback() answers None both for a bad signature and for a resource it cannot decrypt.
        signed = rsa_verify(found["Wechatpay-Timestamp"], found["Wechatpay-Nonce"], text,
                            found["Wechatpay-Signature"], public_key)
        raise NotificationRejected("undecryptable" if signed else "bad_signature")
    resource = result.get("resource")
    if not isinstance(resource, dict):
        raise NotificationRejected("malformed")
    return Notification(id=str(result.get("id", "")), event_type=str(result.get("event_type", "")), resource=resource)


def parse_json(text: str | bytes) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}
