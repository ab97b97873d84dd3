"""Strict input: a body or query value is accepted only in the form the OpenAPI document describes.

Litestar converts the decoded body and the query string with msgspec's lax rules, which take "1" for an
integer, 0 and 1 for booleans, and numbers as unix timestamps (`created_to=0.5`, `"starts_at": 0`). None of
that is in the document, so a client could come to depend on it. This hook checks the same values strictly
first (after the guards, before Litestar parses) and refuses the rest with 400 naming the field.
"""

from __future__ import annotations

import re
import types
import typing
from functools import lru_cache
from typing import Any

import msgspec
from litestar import Request
from litestar.constants import RESERVED_KWARGS
from litestar.exceptions import ValidationException
from litestar.params import BodyKwarg, DependencyKwarg, ParameterKwarg

_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
# Query values that a JSON scalar spells exactly as the document does: 1, 2.5, true, false.
_JSON_SCALARS = {int, float, bool}


def _refuse(field: str, message: str, source: str) -> ValidationException:
    return ValidationException(detail=message, extra=[{"key": field, "message": message, "source": source}])


def _body_error(error: msgspec.ValidationError) -> ValidationException:
    message = str(error)
    match = _AT.search(message)
    if match:
        field = match.group("path").replace("[", ".").replace("]", "") or "data"
        message = message[: match.start()]
    elif "`" in message:  # "Object missing required field `code`"
        field = message.split("`")[1]
    else:
        field = "data"
    return _refuse(field, message, "body")


def _scalar_types(annotation: Any) -> set[Any]:
    """The non-None members of an annotation, Annotated and unions unwrapped."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _scalar_types(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return set().union(*(_scalar_types(arg) for arg in typing.get_args(annotation)))
    return set() if annotation is type(None) else {annotation}


@lru_cache(maxsize=None)
def _query_fields(handler: Any) -> dict[str, tuple[Any, typing.Callable[[str], Any]]]:
    """Query key -> (annotation, its strict check), for the handler's query parameters that hold one scalar.
    The checks are built once per handler: the slot listing checks three values on every request."""
    dependencies = set(handler.resolve_dependencies())
    fields: dict[str, tuple[Any, typing.Callable[[str], Any]]] = {}
    for name, definition in handler.parsed_fn_signature.parameters.items():
        kwarg = definition.kwarg_definition
        if name in RESERVED_KWARGS or name in dependencies or isinstance(kwarg, (BodyKwarg, DependencyKwarg)):
            continue
        key = name
        if isinstance(kwarg, ParameterKwarg):
            if kwarg.header or kwarg.cookie:
                continue
            key = kwarg.query or name
        members = _scalar_types(definition.annotation)
        if members and all(isinstance(m, type) or typing.get_origin(m) is typing.Literal for m in members) and not any(
            isinstance(m, type) and issubclass(m, (list, tuple, set, dict)) for m in members
        ):
            fields[key] = (definition.annotation, _query_check(definition.annotation))
    return fields


def _query_check(annotation: Any) -> typing.Callable[[str], Any]:
    members = _scalar_types(annotation)
    if members and members <= _JSON_SCALARS:
        decoder = msgspec.json.Decoder(annotation, strict=True)
        return lambda raw: decoder.decode(raw.encode())
    # strings, dates and times (ISO 8601 only, never a unix timestamp), enums
    return lambda raw: msgspec.convert(raw, type=annotation, strict=True)


def _spelled(annotation: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number"}
    return " or ".join(sorted(names.get(m, getattr(m, "__name__", str(m))) for m in _scalar_types(annotation)))


async def strict_input(request: Request) -> None:
    handler = request.route_handler
    path_params = set(request.path_params)
    query = request.query_params  # a new MultiDict on every access (Litestar copies the parsed query)
    for key, (annotation, check) in _query_fields(handler).items():
        if key in path_params or key not in query:
            continue
        for raw in query.getall(key):
            try:
                check(raw)
            except msgspec.DecodeError as exc:  # ValidationError, or not a JSON scalar at all ("yes")
                message = str(exc).split(" - at ")[0] if isinstance(exc, msgspec.ValidationError) else (
                    f"Expected {_spelled(annotation)}, got {raw[:40]!r}")
                raise _refuse(key, message, "query") from exc
    data = handler.parsed_fn_signature.parameters.get("data")
    if data is None or isinstance(data.kwarg_definition, BodyKwarg) and data.kwarg_definition.media_type not in (
        None, "application/json",
    ):
        return
    body = await request.body()
    if not body:
        return
    try:
        msgspec.json.decode(body, type=data.annotation, strict=True)
    except msgspec.ValidationError as exc:
        raise _body_error(exc) from exc
    except msgspec.DecodeError:
        return  # malformed JSON: Litestar's own parsing refuses it with `malformed_body`
