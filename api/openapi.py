"""Makes the OpenAPI document say what the routes do: errors, security, media types, strictness, links."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields, is_dataclass
from typing import Any

import msgspec
from litestar import Litestar
from litestar.openapi.spec import Components, OpenAPIMediaType, OpenAPIResponse, Reference, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Receive, Scope, Send

from api.openapi_links import add_links
from api.security import customer_guard

ERROR_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["code", "message", "detail"],
    properties={
        "code": Schema(type=OpenAPIType.STRING, description="stable machine-readable code, e.g. group_full"),
        "message": Schema(type=OpenAPIType.STRING, description="human-readable explanation"),
        "detail": Schema(
            type=OpenAPIType.OBJECT,
            description="context; `field` names the offending field of a validation error",
        ),
    },
    description="The one error body of this API.",
)

# WeChat Pay's notification callbacks answer in WeChat's own format, which its servers read.
WECHAT_ACK_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["code", "message"],
    properties={"code": Schema(type=OpenAPIType.STRING), "message": Schema(type=OpenAPIType.STRING)},
    description="WeChat Pay's callback answer: any non-2xx makes WeChat deliver the notification again.",
)
_WECHAT_CALLBACK_PREFIX = "/payments/wechat/"

_DESCRIPTIONS = {
    "4XX": "Refused: bad input, missing or wrong token, missing role, not found, conflict, rate limited.",
    "5XX": "Server or dependency failure (503 database_unavailable, 502 wechat_unavailable).",
}
_METHODS = ("get", "post", "put", "patch", "delete")
BEARER = [{"BearerToken": []}]
INT64_MAX = 2**63 - 1


def document_errors(app: Litestar) -> None:
    """Everything the generated document gets wrong or leaves out, put right from the routes themselves."""
    schema = app.openapi_schema
    if schema.components is None:
        schema.components = Components()
    if schema.components.schemas is None:
        schema.components.schemas = {}
    schema.components.schemas["ErrorBody"] = ERROR_SCHEMA
    schema.components.schemas["WeChatPayAck"] = WECHAT_ACK_SCHEMA
    for path, path_item in (schema.paths or {}).items():
        name = "WeChatPayAck" if path.startswith(_WECHAT_CALLBACK_PREFIX) else "ErrorBody"
        ref = Reference(ref=f"#/components/schemas/{name}")
        for method in _METHODS:
            operation = getattr(path_item, method, None)
            if operation is None:
                continue
            responses = operation.responses or {}
            for status in list(responses):
                if status[0] in "45":
                    del responses[status]
            for status, description in _DESCRIPTIONS.items():
                responses[status] = OpenAPIResponse(
                    description=description, content={"application/json": OpenAPIMediaType(schema=ref)}
                )
            operation.responses = responses
    handlers = dict(_operations(app))
    _document_security(schema, handlers)
    _document_media_types(schema, handlers)
    _forbid_unknown_fields(schema, handlers)
    _integer_bounds(schema)
    add_links(schema)


def _operations(app: Litestar) -> Iterator[tuple[tuple[str, str], Any]]:
    """(path as the document writes it, method) -> the handler that answers it."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            for method in handler.http_methods:
                if method != "OPTIONS":
                    yield (route.path_format, method.lower()), handler


def _is_auth_guard(guard: Any) -> bool:
    return guard is customer_guard or hasattr(guard, "allowed_roles")


def _document_security(schema: Any, handlers: dict[tuple[str, str], Any]) -> None:
    """A token is documented only where a guard asks for one (login, health and WeChat's callbacks take none)."""
    schema.security = None
    for path, path_item in (schema.paths or {}).items():
        for method in _METHODS:
            operation = getattr(path_item, method, None)
            handler = handlers.get((path, method))
            if operation is None or handler is None:
                continue
            guarded = any(_is_auth_guard(g) for g in handler.resolve_guards())
            operation.security = BEARER if guarded else None


def _document_media_types(schema: Any, handlers: dict[tuple[str, str], Any]) -> None:
    """Exports answer CSV or XLSX, not JSON: the 200 lists the media types the handler sends.

    A handler that sends more than one names them in `opt={"media_types": (...)}`."""
    for path, path_item in (schema.paths or {}).items():
        for method in _METHODS:
            operation = getattr(path_item, method, None)
            handler = handlers.get((path, method))
            if operation is None or handler is None:
                continue
            media_type = str(getattr(handler.media_type, "value", handler.media_type))
            # An empty media type means the handler builds its own Response (JSON here); Litestar documents it.
            media_types = handler.opt.get("media_types") or (
                () if media_type in ("", "application/json") else (media_type,))
            if not media_types:
                continue
            for status, response in (operation.responses or {}).items():
                if status.startswith("2") and isinstance(response, OpenAPIResponse):
                    response.content = {
                        media_type: OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING, format="binary"))
                        for media_type in media_types
                    }


def _structs_in(annotation: Any) -> Iterator[msgspec.inspect.StructType]:
    seen: set[type] = set()

    def walk(info: Any) -> Iterator[msgspec.inspect.StructType]:
        if isinstance(info, msgspec.inspect.StructType):
            if info.cls in seen:
                return
            seen.add(info.cls)
            yield info
            for field in info.fields:
                yield from walk(field.type)
            return
        for attr in ("types", "item_type", "key_type", "value_type"):
            inner = getattr(info, attr, None)
            if isinstance(inner, tuple):
                for item in inner:
                    yield from walk(item)
            elif inner is not None:
                yield from walk(inner)

    try:
        yield from walk(msgspec.inspect.type_info(annotation))
    except (TypeError, ValueError):  # not a msgspec-describable type (e.g. raw bytes)
        return


def _forbid_unknown_fields(schema: Any, handlers: dict[tuple[str, str], Any]) -> None:
    """A body that refuses unknown fields says `additionalProperties: false`, so a client knows it."""
    components = schema.components.schemas
    for handler in handlers.values():
        data = handler.parsed_fn_signature.parameters.get("data")
        if data is None:
            continue
        for info in _structs_in(data.annotation):
            if not info.forbid_unknown_fields:
                continue
            cls = info.cls
            for key in (cls.__name__, f"{cls.__module__}.{cls.__qualname__}".replace(".", "_")):
                component = components.get(key)
                names = {f.encode_name for f in info.fields}
                if isinstance(component, Schema) and set(component.properties or {}) == names:
                    component.additional_properties = False
                    break


def _schemas(node: Any) -> Iterator[Schema]:
    if isinstance(node, Schema):
        yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _schemas(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _schemas(value)
    elif is_dataclass(node) and not isinstance(node, type):
        for f in fields(node):
            yield from _schemas(getattr(node, f.name))


def _integer_bounds(schema: Any) -> None:
    """Litestar writes bounds as floats; 2**63-1 as a float is 2**63, past int64. Integers get integers."""
    for node in _schemas(schema):
        if node.type != OpenAPIType.INTEGER:
            continue
        for attr in ("maximum", "minimum", "exclusive_maximum", "exclusive_minimum"):
            value = getattr(node, attr)
            if isinstance(value, float) and value.is_integer():
                # The only bound this large is the BIGINT maximum, which a float cannot hold.
                setattr(node, attr, min(int(value), INT64_MAX))


def _allowed_methods(app: Any) -> dict[int, str]:
    """Litestar's generated OPTIONS handler keeps the methods of the route it was made for; a path whose
    handlers were registered in several steps (different guards) ends up with a stale, shorter list.
    The route as finally built knows them all."""
    allowed: dict[int, str] = {}
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            methods = ", ".join(sorted(set(route.methods) | {"OPTIONS"}))
            for handler in route.route_handlers:
                if handler.http_methods == {"OPTIONS"}:
                    allowed[id(handler)] = methods
    return allowed


def options_middleware(app: ASGIApp) -> ASGIApp:
    """OPTIONS answers 204 with every method of the path, before guards: the methods are public (the
    document lists them) and a preflight carries no token."""
    allowed: dict[int, str] | None = None

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal allowed
        if scope["type"] != "http" or scope["method"] != "OPTIONS":
            await app(scope, receive, send)
            return
        if allowed is None:
            allowed = _allowed_methods(scope["litestar_app"])
        methods = allowed.get(id(scope.get("route_handler")))
        if methods is None:
            await app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 204, "headers": [(b"allow", methods.encode())]})
        await send({"type": "http.response.body", "body": b""})

    return middleware
