"""Finding the optional modules of each room (rooms register by convention, see docs/architecture.md)."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType


def exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def import_present(names: list[str]) -> list[ModuleType]:
    return [importlib.import_module(name) for name in names if exists(name)]
