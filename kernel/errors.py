"""The one error hierarchy: every expected refusal carries an HTTP status and a stable code.

The API turns any `DomainError` into `{"code", "message", "detail"}`; domain packages subclass
these (e.g. `class GroupFull(Conflict): code = "group_full"`) and never raise bare exceptions
for business refusals.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    default_message: ClassVar[str] = "The request was refused."

    def __init__(self, message: str | None = None, **detail: Any) -> None:
        self.message = message or self.default_message
        self.detail = detail
        # Extra response headers (e.g. Retry-After); set by subclasses that need them.
        self.headers: dict[str, str] = {}
        super().__init__(self.message)


class ValidationFailed(DomainError):
    """Input that parsed but breaks a rule; `field` names the offending field."""

    status_code = 422
    code = "validation_failed"
    default_message = "A field has an invalid value."

    def __init__(self, message: str | None = None, *, field: str, **detail: Any) -> None:
        super().__init__(message, field=field, **detail)


class Unauthorized(DomainError):
    status_code = 401
    code = "unauthorized"
    default_message = "Authentication is required."


class Forbidden(DomainError):
    status_code = 403
    code = "forbidden"
    default_message = "You may not do this."


class NotFound(DomainError):
    status_code = 404
    code = "not_found"
    default_message = "Not found."


class Conflict(DomainError):
    status_code = 409
    code = "conflict"
    default_message = "The request conflicts with the current state."


class TooManyRequests(DomainError):
    status_code = 429
    code = "rate_limited"
    default_message = "Too many requests; slow down."


class UpstreamUnavailable(DomainError):
    status_code = 502
    code = "upstream_unavailable"
    default_message = "An upstream service did not answer correctly."
