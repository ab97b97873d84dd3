"""One error body for every 4xx and 5xx: {"code", "message", "detail"}."""

from __future__ import annotations

from typing import Any

import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, NotFoundException, ValidationException
from litestar.exceptions import PermissionDeniedException, MethodNotAllowedException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from pymysql.err import InterfaceError as DriverInterfaceError
from pymysql.err import OperationalError as DriverOperationalError
from tortoise.exceptions import DBConnectionError, IntegrityError, NotExistOrMultiple, OperationalError
from tortoise.exceptions import ValidationError as ModelValidationError

from kernel.db import mysql_errno
from kernel.errors import DomainError

log = structlog.get_logger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    503: "service_unavailable",
}


def error_response(status: int, code: str, message: str, detail: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    return Response(
        {"code": code, "message": message, "detail": detail or {}},
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def domain_error_handler(_: Request, exc: DomainError) -> Response:
    return error_response(exc.status_code, exc.code, exc.message, exc.detail, headers=exc.headers or None)


def _field_of(error: dict[str, Any]) -> str | None:
    # msgspec reports a missing field as "Object missing required field `code`" with key "data".
    key = error.get("key")
    message = str(error.get("message", ""))
    if key in (None, "data") and "`" in message:
        return message.split("`")[1]
    return key


def _public_name(request: Request, key: str) -> str:
    """The name the client sent: a parameter declared `Parameter(query="from")` is reported as `from`."""
    try:
        parameter = request.route_handler.parsed_fn_signature.parameters.get(key)
    except Exception:  # no route resolved (e.g. a 404 path): keep the key
        return key
    alias = getattr(getattr(parameter, "kwarg_definition", None), "query", None)
    return alias or key


def validation_error_handler(request: Request, exc: ValidationException) -> Response:
    errors = exc.extra if isinstance(exc.extra, list) else []
    fields = [_public_name(request, _field_of(e)) for e in errors if isinstance(e, dict) and _field_of(e)]
    detail: dict[str, Any] = {"errors": errors}
    if fields:
        detail["field"] = fields[0]
    message = errors[0].get("message") if errors and isinstance(errors[0], dict) else exc.detail
    code = "malformed_body" if message and "malformed" in str(message).lower() else "validation_error"
    return error_response(400, code, str(message or "The request is invalid."), detail)


# What Litestar says when the client hangs up while the body is being read.
CLIENT_DISCONNECTED = "client disconnected prematurely"


def http_error_handler(_: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    if status >= 500 and exc.detail == CLIENT_DISCONNECTED:
        # Nobody will read this answer; the access log records the request as 499.
        log.info("http.client_disconnected")
        return error_response(400, "client_disconnected", "The client closed the connection.")
    if status >= 500:
        log.error("http.server_error", status=status, detail=exc.detail)
        return error_response(status, "internal_error", "Something went wrong on our side.")
    code = _HTTP_CODES.get(status, "http_error")
    if status == 400 and type(exc).__name__ == "ClientException":
        # Litestar raises a bare ClientException when the body cannot be decoded at all.
        code = "malformed_body"
    return error_response(status, code, exc.detail or code.replace("_", " "), headers=exc.headers)


def integrity_error_handler(_: Request, exc: IntegrityError) -> Response:
    # Services translate the conflicts they expect; one that slips through is still a conflict.
    log.warning("db.integrity_error", error=str(exc)[:300])
    return error_response(409, "conflict", "The request conflicts with existing data.")


# MySQL refusing a value (out of range, too long, not a valid date...): the caller's input, not an outage.
_BAD_VALUE_ERRNOS = {1264, 1265, 1292, 1366, 1406, 1690}


def operational_error_handler(request: Request, exc: Exception) -> Response:
    """Outages and deadlocks are 503 (retry later); a value the column cannot hold is the caller's 422."""
    if isinstance(exc, NotExistOrMultiple):
        # DoesNotExist / MultipleObjectsReturned subclass OperationalError, but they are our bug (a row the
        # code expected), not an outage: a 500 that is logged with its stack, never "retry shortly".
        return internal_error_handler(request, exc)
    errno = mysql_errno(exc)
    if errno in _BAD_VALUE_ERRNOS:
        log.warning("db.value_refused", errno=errno)
        return error_response(
            422, "value_out_of_range", "A value is outside what the service can store.", {"errno": errno}
        )
    return database_unavailable_handler(request, exc)


def model_validation_handler(_: Request, exc: ModelValidationError) -> Response:
    """Tortoise refusing a value for its field (e.g. longer than the column): the input's fault."""
    message = str(exc)
    field = message.split(":", 1)[0].strip() if ":" in message else None
    detail = {"field": field} if field and field.isidentifier() else {}
    return error_response(422, "validation_failed", message[:300], detail)


def overflow_handler(_: Request, exc: OverflowError) -> Response:
    """A date at the edge of the calendar that overflows once converted to UTC, or a number too large
    to convert: the input's fault. Rooms name the field where they can; this is the net under them."""
    log.warning("http.value_overflow", error=str(exc)[:200])
    return error_response(422, "value_out_of_range", "A value is outside the range the service accepts.")


def recursion_error_handler(request: Request, exc: RecursionError) -> Response:
    """msgspec gives up on JSON nested deeper than the interpreter's recursion limit: a body no client of
    ours sends (a thousand `[` fit in 2 KB), so it is the caller's 400, not our 500. Any other
    recursion error is still a bug of ours."""
    if "deserializing" in str(exc):
        return error_response(400, "malformed_body", "The JSON body is nested too deeply.", {"field": "body"})
    return internal_error_handler(request, exc)


def database_unavailable_handler(_: Request, exc: Exception) -> Response:
    log.error("db.unavailable", error_type=type(exc).__name__, error=str(exc)[:300])
    return error_response(
        503, "database_unavailable", "The database is unavailable; retry shortly.",
        headers={"Retry-After": "2"},
    )


def internal_error_handler(_: Request, exc: Exception) -> Response:
    if isinstance(exc, (ConnectionError, OSError)):
        return database_unavailable_handler(_, exc)
    log.exception("http.unhandled", error_type=type(exc).__name__)
    return error_response(HTTP_500_INTERNAL_SERVER_ERROR, "internal_error", "Something went wrong on our side.")


EXCEPTION_HANDLERS = {
    DomainError: domain_error_handler,
    ValidationException: validation_error_handler,
    NotAuthorizedException: http_error_handler,
    PermissionDeniedException: http_error_handler,
    NotFoundException: http_error_handler,
    MethodNotAllowedException: http_error_handler,
    HTTPException: http_error_handler,
    IntegrityError: integrity_error_handler,
    DBConnectionError: database_unavailable_handler,
    OperationalError: operational_error_handler,
    # A connection lost inside a transaction fails once more on the ROLLBACK, which Tortoise does not
    # translate: the driver's own error ("Not connected") replaces the translated one.
    DriverInterfaceError: database_unavailable_handler,
    DriverOperationalError: operational_error_handler,
    OverflowError: overflow_handler,
    RecursionError: recursion_error_handler,
    ModelValidationError: model_validation_handler,
    Exception: internal_error_handler,
}
