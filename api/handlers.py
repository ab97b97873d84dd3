"""The route decorators every controller uses (`get`, `post`, `patch`, `put`, `delete`): Litestar's route
handler with one method each, as Litestar's own decorators are, except that a guard is handed the route's
handler itself instead of a fresh copy of it.

Litestar copies the handler once per guard and request so that a guard cannot change the route for the
requests after it. Our guards (`api.security`, `api.ratelimit`) only read the handler's `opt`, and the
copies were 3-6% of a customer read's server CPU and a part of every write's (`python -m bench.profile`).
They are functions over one subclass of `HTTPRouteHandler`, the way Litestar 3 spells its decorators:
subclassing Litestar 2's decorator classes themselves is deprecated.
`tests/api/test_handlers.py` checks that every guarded route of the app is built with these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler


class GuardedRoute(HTTPRouteHandler):
    """A route handler whose guards read it in place."""

    __slots__ = ()

    async def authorize_connection(self, connection: ASGIConnection) -> None:
        for guard in self.resolve_guards():
            await guard(connection, self)  # type: ignore[arg-type]


Path = str | Sequence[str] | None


def get(path: Path = None, **options: Any) -> GuardedRoute:
    return GuardedRoute(path, http_method=HttpMethod.GET, **options)


def post(path: Path = None, **options: Any) -> GuardedRoute:
    return GuardedRoute(path, http_method=HttpMethod.POST, **options)


def patch(path: Path = None, **options: Any) -> GuardedRoute:
    return GuardedRoute(path, http_method=HttpMethod.PATCH, **options)


def put(path: Path = None, **options: Any) -> GuardedRoute:
    return GuardedRoute(path, http_method=HttpMethod.PUT, **options)


def delete(path: Path = None, **options: Any) -> GuardedRoute:
    return GuardedRoute(path, http_method=HttpMethod.DELETE, **options)
