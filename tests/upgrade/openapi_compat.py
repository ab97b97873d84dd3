"""Finds the changes to the `/app` API that would break a mini-program still running the previous release.

WeChat keeps older versions of the mini-program on phones for a while, so every `/app` route of the
previous release must keep answering them (docs/releases.md, "The /app compatibility rule"). Breaking:

- a route (path and method) removed;
- in a success response: a field removed, no longer always present, its type changed or made nullable;
- in a request (body, query, header, path): a new required field or parameter, a field the old client
  sends removed (bodies forbid unknown fields), a type narrowed, an enum value removed.

Anything may go once the *previous* release marked it `deprecated` (the operation, the parameter or the
schema property): that is the deprecation period. Fields and enum values may always be added to responses.
Path parameter names do not matter (`/app/x/{id}` and `/app/x/{x_id}` are one route).
"""

from __future__ import annotations

import re
from typing import Any

PREFIX = "/app"
METHODS = ("get", "put", "post", "delete", "patch")


def _route(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def _operations(doc: dict) -> dict[tuple[str, str], tuple[str, dict]]:
    found = {}
    for path, item in doc.get("paths", {}).items():
        if path != PREFIX and not path.startswith(PREFIX + "/"):
            continue
        for method in METHODS:
            if method in item:
                found[(method.upper(), _route(path))] = (path, item[method])
    return found


class _Schemas:
    def __init__(self, doc: dict) -> None:
        self.components = doc.get("components", {}).get("schemas", {})

    def resolve(self, schema: dict | None) -> dict:
        seen = set()
        while schema and "$ref" in schema and schema["$ref"] not in seen:
            seen.add(schema["$ref"])
            schema = self.components.get(schema["$ref"].rsplit("/", 1)[-1], {})
        return schema or {}


def _alternatives(schema: dict) -> list[dict]:
    return schema.get("oneOf") or schema.get("anyOf") or [schema]


def _types(schemas: _Schemas, schema: dict) -> set[str]:
    """The JSON types a schema allows ("integer" counts as a "number")."""
    types: set[str] = set()
    for alternative in _alternatives(schemas.resolve(schema)):
        alternative = schemas.resolve(alternative)
        declared = alternative.get("type")
        if declared is None:
            if "properties" in alternative:
                declared = "object"
            elif "enum" in alternative or "const" in alternative:
                values = alternative.get("enum") or [alternative.get("const")]
                declared = sorted({type(v).__name__ for v in values})
            else:
                return {"any"}
        for t in declared if isinstance(declared, list) else [declared]:
            types.add({"str": "string", "int": "integer", "float": "number", "bool": "boolean",
                       "NoneType": "null"}.get(t, t))
    return types


def _enum(schemas: _Schemas, schema: dict) -> set | None:
    values: set = set()
    for alternative in _alternatives(schemas.resolve(schema)):
        alternative = schemas.resolve(alternative)
        if "enum" in alternative:
            values |= set(alternative["enum"])
        elif "const" in alternative:
            values.add(alternative["const"])
        elif alternative.get("type") != "null":
            return None  # not (only) an enum
    return values or None


def _object(schemas: _Schemas, schema: dict) -> dict | None:
    for alternative in _alternatives(schemas.resolve(schema)):
        alternative = schemas.resolve(alternative)
        if "properties" in alternative:
            return alternative
    return None


def _items(schemas: _Schemas, schema: dict) -> dict | None:
    for alternative in _alternatives(schemas.resolve(schema)):
        alternative = schemas.resolve(alternative)
        if alternative.get("type") == "array" or "items" in alternative:
            return alternative.get("items", {})
    return None


def _numeric(types: set[str]) -> set[str]:
    return {"number" if t == "integer" else t for t in types}


class _Comparison:
    def __init__(self, old: dict, new: dict) -> None:
        self.old = _Schemas(old)
        self.new = _Schemas(new)
        self.breaks: list[str] = []

    def response(self, where: str, old: dict, new: dict, depth: int = 0) -> None:
        """What the server sends: everything the old client reads must still be there, of the same type."""
        if depth > 12:
            return
        old_types, new_types = _types(self.old, old), _types(self.new, new)
        if "any" not in old_types and not new_types <= old_types | ({"integer"} if "number" in old_types else set()):
            self.breaks.append(f"{where}: type {sorted(old_types)} became {sorted(new_types)}")
            return
        old_obj, new_obj = _object(self.old, old), _object(self.new, new)
        if old_obj is not None:
            new_props = (new_obj or {}).get("properties", {})
            new_required = set((new_obj or {}).get("required", []))
            for name, schema in old_obj.get("properties", {}).items():
                if self.old.resolve(schema).get("deprecated") or schema.get("deprecated"):
                    continue
                if name not in new_props:
                    self.breaks.append(f"{where}.{name}: removed from the response")
                    continue
                if name in old_obj.get("required", []) and name not in new_required:
                    self.breaks.append(f"{where}.{name}: no longer always present")
                self.response(f"{where}.{name}", schema, new_props[name], depth + 1)
        old_items, new_items = _items(self.old, old), _items(self.new, new)
        if old_items is not None and new_items is not None:
            self.response(f"{where}[]", old_items, new_items, depth + 1)

    def request(self, where: str, old: dict, new: dict, depth: int = 0) -> None:
        """What the client sends: everything the old client sends must still be accepted."""
        if depth > 12:
            return
        old_types, new_types = _types(self.old, old), _types(self.new, new)
        if "any" not in new_types and not _numeric(old_types) <= _numeric(new_types):
            self.breaks.append(f"{where}: accepts {sorted(new_types)}, the previous release sent {sorted(old_types)}")
            return
        old_enum, new_enum = _enum(self.old, old), _enum(self.new, new)
        if old_enum is not None and new_enum is not None and not old_enum <= new_enum:
            self.breaks.append(f"{where}: enum values removed {sorted(map(str, old_enum - new_enum))}")
        old_obj, new_obj = _object(self.old, old), _object(self.new, new)
        if old_obj is not None and new_obj is not None:
            old_props, new_props = old_obj.get("properties", {}), new_obj.get("properties", {})
            old_required = set(old_obj.get("required", []))
            for name in set(new_obj.get("required", [])) - old_required:
                self.breaks.append(f"{where}.{name}: new required field")
            for name, schema in old_props.items():
                if name not in new_props:
                    if not (schema.get("deprecated") or self.old.resolve(schema).get("deprecated")):
                        self.breaks.append(f"{where}.{name}: removed (the previous client still sends it)")
                    continue
                self.request(f"{where}.{name}", schema, new_props[name], depth + 1)
        old_items, new_items = _items(self.old, old), _items(self.new, new)
        if old_items is not None and new_items is not None:
            self.request(f"{where}[]", old_items, new_items, depth + 1)

    def operation(self, label: str, old: dict, new: dict) -> None:
        # Parameters by (in, name); path parameters by position, since their names do not matter.
        def params(op: dict) -> dict:
            found, position = {}, 0
            for p in op.get("parameters", []):
                if p.get("in") == "path":
                    found[("path", position)] = p
                    position += 1
                else:
                    found[(p.get("in"), p.get("name"))] = p
            return found

        old_params, new_params = params(old), params(new)
        for key, param in new_params.items():
            if param.get("required") and (key not in old_params or not old_params[key].get("required")):
                self.breaks.append(f"{label} {key[0]} parameter {param.get('name')}: new required parameter")
        for key, param in old_params.items():
            if key not in new_params:
                # Litestar ignores an unknown query parameter, but what it did (a filter) is gone.
                if not param.get("deprecated"):
                    self.breaks.append(f"{label} {key[0]} parameter {param.get('name')}: removed")
                continue
            self.request(f"{label} {key[0]} parameter {param.get('name')}", param.get("schema", {}),
                         new_params[key].get("schema", {}))

        old_body = old.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        new_body = new.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if new_body is not None and old_body is None and new.get("requestBody", {}).get("required"):
            self.breaks.append(f"{label} request body: now required")
        elif old_body is not None and new_body is not None:
            self.request(f"{label} request", old_body, new_body)

        for status, response in old.get("responses", {}).items():
            if not status.startswith("2"):
                continue
            new_response = new.get("responses", {}).get(status)
            if new_response is None:
                self.breaks.append(f"{label} response {status}: no longer answered")
                continue
            old_schema = response.get("content", {}).get("application/json", {}).get("schema")
            new_schema = new_response.get("content", {}).get("application/json", {}).get("schema")
            if old_schema is not None:
                if new_schema is None:
                    self.breaks.append(f"{label} response {status}: no longer JSON")
                else:
                    self.response(f"{label} response {status}", old_schema, new_schema)


def breaking_changes(previous: dict, current: dict) -> list[str]:
    """Every change to `/app` that breaks a client of `previous`, unless `previous` deprecated the thing."""
    comparison = _Comparison(previous, current)
    old_ops, new_ops = _operations(previous), _operations(current)
    for key, (path, old_op) in sorted(old_ops.items()):
        label = f"{key[0]} {path}"
        if key not in new_ops:
            if not old_op.get("deprecated"):
                comparison.breaks.append(f"{label}: route removed (deprecate it for a release first)")
            continue
        comparison.operation(label, old_op, new_ops[key][1])
    return comparison.breaks


def previous_release_document(version: str) -> dict[str, Any]:
    import json
    from pathlib import Path

    return json.loads((Path(__file__).resolve().parent / f"release-{version}.openapi.json").read_text())
