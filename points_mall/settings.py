"""Points rules the operator sets (not staff): the amount above which a staff-recorded consumption needs approval.

Read from the environment once (README, "Configure"); tests change them with `override(...)`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from functools import lru_cache

import msgspec


class PointsSettings(msgspec.Struct, frozen=True):
    # A consumption the front desk records above this amount (fen) waits for a second staff member's
    # approval before it earns points or moves a tier (a consultant's authority has a limit). ¥20,000.
    consumption_approval_above_fen: int = 2_000_000


def load_points_settings() -> PointsSettings:
    defaults = PointsSettings()
    above = os.environ.get("POINTS_CONSUMPTION_APPROVAL_ABOVE_FEN")
    return PointsSettings(
        consumption_approval_above_fen=int(above) if above else defaults.consumption_approval_above_fen,
    )


_override: PointsSettings | None = None


@lru_cache(maxsize=1)
def _loaded() -> PointsSettings:
    return load_points_settings()


def get_points_settings() -> PointsSettings:
    return _override if _override is not None else _loaded()


@contextlib.contextmanager
def override(**changes) -> Iterator[PointsSettings]:
    """Run a block with some settings changed (tests; the app itself never calls this)."""
    global _override
    previous = _override
    _override = msgspec.structs.replace(get_points_settings(), **changes)
    try:
        yield _override
    finally:
        _override = previous
