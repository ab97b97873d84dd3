"""Structured logs (structlog) with a request id on every line, and the access log middleware."""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid

import msgspec
import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from kernel.settings import AppSettings

_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
access_log = structlog.get_logger("api.access")


class _StderrLogger:
    """Writes each rendered line to whatever sys.stderr is *now* (test runners swap it per test)."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def _stderr_logger_factory(*_: object) -> _StderrLogger:
    return _StderrLogger()


# Every request writes an access line: msgspec encodes one in a fifth of the time of the json module (the
# renderer's default); a value it does not know (an exception, an object) is written as its repr.
_LOG_ENCODER = msgspec.json.Encoder(enc_hook=repr)


def _json_line(event: dict, **_: object) -> str:
    return _LOG_ENCODER.encode(event).decode()


def configure_logging(settings: AppSettings) -> None:
    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    renderer = (
        structlog.processors.JSONRenderer(serializer=_json_line)
        if settings.log_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_stderr_logger_factory,
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    # The ORM's query log would print bound values, which include personal data.
    logging.getLogger("tortoise").setLevel(logging.WARNING)
    logging.getLogger("aiomysql").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)


CLIENT_CLOSED_REQUEST = 499
_KEPT_SEGMENTS = 2


def logged_path(scope: Scope) -> str:
    """The route template (`/admin/vouchers/{code}`), never the path itself: path parameters can be
    bearer credentials (a voucher code is redeemable by whoever holds it). An unmatched path keeps its
    first segments only."""
    template = scope.get("path_template")
    if template:
        return str(template)
    segments = str(scope.get("path", "")).split("/")
    kept = segments[: _KEPT_SEGMENTS + 1]
    return "/".join(kept) + ("/*" if len(segments) > len(kept) else "")


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    """Take X-Request-ID from the caller (when well-formed) or mint one; echo it; log the request.

    Only method, route template, status and duration are logged: never bodies, query strings or the
    path's own values, which may carry voucher codes, phone numbers or health answers.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID_OK.match(incoming) else uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status: int | None = None
        client_gone = False

        async def receive_noting_disconnect() -> Message:
            nonlocal client_gone
            message = await receive()
            if message["type"] == "http.disconnect":
                client_gone = True
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await app(scope, receive_noting_disconnect, send_with_id)
        finally:
            if client_gone and (status is None or status >= 400):
                # The client hung up before sending its whole request (a slow or dropped mobile link):
                # nginx's 499, not a server error that would page someone.
                status = CLIENT_CLOSED_REQUEST
            access_log.info(
                "request",
                method=scope.get("method"),
                path=logged_path(scope),
                status=500 if status is None else status,
                ms=round((time.perf_counter() - started) * 1000, 1),
            )
            structlog.contextvars.clear_contextvars()

    return middleware
