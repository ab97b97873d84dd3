"""Route decorators (`api.handlers`): every guarded route is built with ours, and a guard is handed the
route's own handler, with its `opt`, on every request."""

from __future__ import annotations

import litestar
from litestar import Controller, Litestar
from litestar.testing import AsyncTestClient

from api.handlers import GuardedRoute, get, post


def test_every_guarded_route_hands_its_guards_the_handler_itself(app):
    # A route built with Litestar's own decorator still works, but pays a copy of its handler per guard and
    # request: the customer reads' and writes' CPU this module saves (api/handlers.py).
    guarded = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if set(handler.http_methods) == {"OPTIONS"} or not handler.resolve_guards():
                continue
            guarded.append(route.path)
            assert isinstance(handler, GuardedRoute), f"{route.path}: import get/post/... from api.handlers"
    # The customer's and the staff's routes are all guarded: the walk above saw them.
    assert any(path.startswith("/app/") for path in guarded)
    assert any(path.startswith("/admin/") for path in guarded)


async def test_a_guard_reads_the_handler_and_its_opt_and_can_refuse():
    seen = []

    async def guard(connection, handler):
        seen.append(handler)
        if handler.opt.get("closed"):
            raise litestar.exceptions.NotAuthorizedException()

    class Shop(Controller):
        path = "/shop"
        guards = [guard]

        @get("/open")
        async def open_(self) -> str:
            return "open"

        @post("/closed", opt={"closed": True})
        async def closed(self) -> str:
            return "never"

    shop = Litestar([Shop])
    async with AsyncTestClient(shop) as client:
        assert (await client.get("/shop/open")).text == "open"
        assert (await client.get("/shop/open")).text == "open"
        assert (await client.post("/shop/closed")).status_code == 401
    # The same handler object on every request of a route (no copies), and the one the app routes to.
    open_handler = next(h for r in shop.routes if r.path == "/shop/open" for h in r.route_handlers
                        if "GET" in h.http_methods)
    assert seen[0] is seen[1] is open_handler
    assert seen[2].opt["closed"] is True
