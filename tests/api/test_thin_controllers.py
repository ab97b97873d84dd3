"""Controllers parse, call a room's service and shape the answer: no ORM query in api/ (STYLE.md).

A query in a controller is a rule the workers, the CRM and the tests cannot reach through the room's contract,
and a second place to change when the table does.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from tortoise.models import Model

API = Path(__file__).resolve().parents[2] / "api"

# Known debt, handed over to the owners of these modules; remove an entry once its module is thin.
KNOWN: dict[str, str] = {}


def _queries(module_name: str) -> list[str]:
    """Calls on a model class (`Voucher.filter(...)`, `Customer.get(...)`) and `.using_db(...)` anywhere."""
    tree = ast.parse((API / f"{module_name}.py").read_text(encoding="utf-8"))
    models = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").rsplit(".", 1)[-1] in ("models", "product_models"):
            target = importlib.import_module(node.module)
            models |= {alias.asname or alias.name for alias in node.names
                       if isinstance(getattr(target, alias.name, None), type)
                       and issubclass(getattr(target, alias.name), Model)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "using_db":
            found.append(f"line {node.lineno}: .using_db(...)")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id in models):
            found.append(f"line {node.lineno}: {node.func.value.id}.{node.func.attr}(...)")
    return sorted(set(found))


def test_controllers_make_no_orm_query():
    offenders = {}
    for path in sorted(API.glob("*.py")):
        name = path.stem
        if name in KNOWN or name.startswith("_"):
            continue
        if found := _queries(name):
            offenders[name] = found
    assert offenders == {}, offenders


def test_the_known_debt_is_still_debt():
    # An entry that no longer queries must leave KNOWN, so the list stays the truth.
    assert all(_queries(name) for name in KNOWN), {n: _queries(n) for n in KNOWN}
