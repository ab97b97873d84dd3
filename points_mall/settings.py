"""Points rules the operator sets (not staff): the amount above which a staff-recorded consumption needs approval.

Read from the environment once (README, "Configure"); tests change them with `override(...)`.
"""

from __future__ import annotations

import msgspec

from kernel.settings import RoomSettings, env_int, listing_refusals


class PointsSettings(msgspec.Struct, frozen=True):
    # A consumption the front desk records above this amount (fen) waits for a second staff member's
    # approval before it earns points or moves a tier (a consultant's authority has a limit). ¥20,000.
    consumption_approval_above_fen: int = 2_000_000


# The threshold is the four-eyes rule's (docs/staff-policies.md): at or above the most amount the API takes
# (¥100,000,000) no consumption ever waited for a second member, the rule gone without a word. At most
# ¥1,000,000: above it the rule guards nothing a front desk records. 0 sends every consumption to approval (a
# clinic may want that); below 0 read the same, and is refused as what nobody means. Value read at start-up
# (rooms.install): outside the range the start stops naming the variable and the range.
CONSUMPTION_APPROVAL_ABOVE_FEN = (0, 100_000_000)


def load_points_settings() -> PointsSettings:
    defaults = PointsSettings()
    with listing_refusals():
        return PointsSettings(
            consumption_approval_above_fen=env_int(
                "POINTS_CONSUMPTION_APPROVAL_ABOVE_FEN", defaults.consumption_approval_above_fen,
                within=CONSUMPTION_APPROVAL_ABOVE_FEN),
        )


_SETTINGS = RoomSettings(load_points_settings)
get_points_settings = _SETTINGS.get
# Run a block with some settings changed (tests; the app itself never calls this).
override = _SETTINGS.override
