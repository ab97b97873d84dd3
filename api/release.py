"""The release this code is: pyproject.toml's version (CHANGELOG.md says what each release changed)."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

_PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


@cache
def release_version() -> str:
    # A source checkout reads its own pyproject.toml (a shared editable install would report another
    # checkout's metadata); an installed package reads its metadata.
    if _PYPROJECT.exists():
        return tomllib.loads(_PYPROJECT.read_text())["project"]["version"]
    return metadata.version("clinic-miniprogram")
