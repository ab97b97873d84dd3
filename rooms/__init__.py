"""The composition root: every room's contributions to the shared registries, named once, by import.

The kernel and the orders room keep registries that rooms below them cannot fill without pointing
upward (the kernel's PIPL export and erasure, the orders room's line kinds). The top of the tree
fills them here: the app (api/app.py) and the worker (workers/settings.py) call `install()` at
start-up. A room that is missing is an ImportError at start-up, never a silently skipped room.
"""

from __future__ import annotations

from booking import privacy as booking_privacy
from booking.settings import get_booking_settings
from campaigns.groupbuy import hooks as groupbuy_hooks
from campaigns.groupbuy import privacy as groupbuy_privacy
from campaigns.referrals import privacy as referral_privacy
from crm import privacy as crm_privacy
from crm.settings import get_crm_settings
from kernel import privacy
from kernel.settings import read_all
from orders import hooks as line_kinds
from orders import privacy as order_privacy
from orders import product_hooks
from points_mall import privacy as points_privacy
from points_mall.settings import get_points_settings
from reports import privacy as report_privacy
from reports.settings import get_report_settings

# Export sections are named after the room's package (what the customer's export has always shown).
PRIVACY_ROOMS: dict[str, privacy.PrivacyRoom] = {
    "booking": booking_privacy,
    "points_mall": points_privacy,
    "orders": order_privacy,
    "campaigns.groupbuy": groupbuy_privacy,
    "campaigns.referrals": referral_privacy,
    "crm": crm_privacy,
    "reports": report_privacy,
}

LINE_KINDS: list[line_kinds.LineKind] = [groupbuy_hooks.CAMPAIGN_ENTRY, *product_hooks.LINE_KINDS]

# Read at start-up: a bad value stops the start naming its variable, not the first request that reads it, and
# every room's bad values are listed in the one message.
ROOM_SETTINGS = [get_booking_settings, get_points_settings, get_crm_settings, get_report_settings]


def install() -> None:
    """Fill the registries (idempotent: the app and an embedded worker both call it)."""
    privacy.register_rooms(PRIVACY_ROOMS)
    line_kinds.register_line_kinds(LINE_KINDS)
    read_all(ROOM_SETTINGS)
