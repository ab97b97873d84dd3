"""Points rules the operator sets (not staff): the amount above which a staff-recorded consumption needs approval.

Read from the environment once (README, "Configure"); tests change them with `override(...)`.
"""

from __future__ import annotations

import msgspec

from kernel.settings import RoomSettings, env_int


class PointsSettings(msgspec.Struct, frozen=True):
    # A consumption the front desk records above this amount (fen) waits for a second staff member's
    # approval before it earns points or moves a tier (a consultant's authority has a limit). ¥20,000.
    consumption_approval_above_fen: int = 2_000_000


def load_points_settings() -> PointsSettings:
    defaults = PointsSettings()
    return PointsSettings(
        consumption_approval_above_fen=env_int("POINTS_CONSUMPTION_APPROVAL_ABOVE_FEN",
                                               defaults.consumption_approval_above_fen),
    )


_SETTINGS = RoomSettings(load_points_settings)
get_points_settings = _SETTINGS.get
# Run a block with some settings changed (tests; the app itself never calls this).
override = _SETTINGS.override
