"""Serves the staff console at /console and the offline Swagger UI at /schema, both under a same-origin-only CSP.

The console is static files (console/static, console/vendor): a client of the /admin API like any other,
so no rule lives here. Every asset is ours and pinned (console/vendor/manifest.json); the
Content-Security-Policy lets the pages load and call nothing but this origin.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from litestar import Request, Response, Router
from litestar.enums import MediaType
from litestar.file_system import BaseLocalFileSystem
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.handlers import get
from console import STATIC_DIR, VENDOR_DIR

_INDEX = (STATIC_DIR / "index.html").read_text(encoding="utf-8")


class _AssetFiles(BaseLocalFileSystem):
    """The local file system, where a path that cannot name one of our files is simply not found.

    Litestar turns every OSError but "not found" into a 500: a name longer than the file system allows
    (ENAMETOOLONG) or a file used as a folder (ENOTDIR) in a URL anyone can send, without a token.
    """

    async def info(self, path: Any, **kwargs: Any) -> Any:
        try:
            return await super().info(path, **kwargs)
        except PermissionError:
            raise
        except OSError as exc:
            raise FileNotFoundError(str(path)[:200]) from exc


_FILES = _AssetFiles()


def _inline_script_hashes(html: str) -> str:
    # The import map must be inline (browsers do not load it from a file); its hash admits it and
    # nothing else inline.
    scripts = re.findall(r"<script type=\"importmap\">(.*?)</script>", html, flags=re.S)
    return " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in scripts
    )


# Only our own origin: no CDN, no third-party beacon, no inline code but the hashed import map.
# data: images are the few icons Element Plus and Swagger UI draw inline; blob: is the CSV download.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; "
    f"script-src 'self' {_inline_script_hashes(_INDEX)}; "
    "style-src 'self'; "
    "img-src 'self' data: blob:; "
    "font-src 'self' data:; "
    "connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
]
_PAGE_PREFIXES = ("/console", "/schema")


def page_security_middleware(app: ASGIApp) -> ASGIApp:
    """Adds the CSP and friends to every response under /console and /schema (pages and their assets)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(_PAGE_PREFIXES):
            await app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_SECURITY_HEADERS]
            await send(message)

        await app(scope, receive, send_with_headers)

    return middleware


@get("/console", include_in_schema=False, media_type=MediaType.HTML, sync_to_thread=False)
def console_page() -> Response[str]:
    # One page; screens are #/fragments, so a reload never sends the server anything about them.
    return Response(_INDEX, media_type=MediaType.HTML, headers={"cache-control": "no-cache"})


class OfflineSwaggerPlugin(OpenAPIRenderPlugin):
    """Swagger UI at /schema from our pinned copy (console/vendor/swagger-ui-dist), with no inline script.

    Litestar's own plugin loads Swagger UI and a favicon from a public CDN, which leaves the page blank
    offline (and slow from China).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(favicon="", **kwargs)

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        title = openapi_schema["info"]["title"]
        return (
            "<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{title}</title>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            "<link rel='icon' href='data:,'>"
            "<link rel='stylesheet' href='/schema/assets/swagger-ui-dist/swagger-ui.css'>"
            "</head><body><div id='swagger-container'></div>"
            "<script src='/schema/assets/swagger-ui-dist/swagger-ui-bundle.js'></script>"
            "<script src='/console/static/swagger-init.js'></script>"
            "</body></html>"
        ).encode()

    def receive_router(self, router: Router) -> None:
        router.register(
            create_static_files_router(path="/assets", directories=[VENDOR_DIR], name="schema_assets",
                                       file_system=_FILES)
        )


ROUTES = [
    console_page,
    create_static_files_router(path="/console/static", directories=[STATIC_DIR], name="console_static",
                               file_system=_FILES),
    create_static_files_router(path="/console/vendor", directories=[VENDOR_DIR], name="console_vendor",
                               file_system=_FILES),
]

