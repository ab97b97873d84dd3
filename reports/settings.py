"""Rules of the reports room, read from the environment (README, "Configure")."""

from __future__ import annotations

import msgspec

from kernel.settings import RoomSettings, env_int


class ReportSettings(msgspec.Struct, frozen=True):
    # Source rows folded per transaction (a killed worker redoes at most one chunk; the cursor moves with it).
    fold_chunk: int = 5000
    # A completed consultation converts when a paid treatment follows within this many days (关联医生转化率).
    conversion_days: int = 30
    # Days of bookings refolded every run besides the days new bookings fall on: visits change state
    # (arrived, completed, no-show) and consultations convert for `conversion_days` after the visit.
    visit_refold_days: int = 35
    # Days of mall redemptions refolded every run (a cancelled voucher gives units back later).
    mall_refold_days: int = 30
    # Campaigns stay in the funnel fold this many days after they end (late refunds).
    campaign_refold_days: int = 35
    # The default window of the repurchase report (second paid visit within N days of the first).
    repurchase_days: int = 180


def load_report_settings() -> ReportSettings:
    d = ReportSettings()
    return ReportSettings(
        fold_chunk=env_int("REPORTS_FOLD_CHUNK", d.fold_chunk),
        conversion_days=env_int("REPORTS_CONVERSION_DAYS", d.conversion_days),
        visit_refold_days=env_int("REPORTS_VISIT_REFOLD_DAYS", d.visit_refold_days),
        mall_refold_days=env_int("REPORTS_MALL_REFOLD_DAYS", d.mall_refold_days),
        campaign_refold_days=env_int("REPORTS_CAMPAIGN_REFOLD_DAYS", d.campaign_refold_days),
        repurchase_days=env_int("REPORTS_REPURCHASE_DAYS", d.repurchase_days),
    )


_SETTINGS = RoomSettings(load_report_settings)
get_report_settings = _SETTINGS.get
# Run a block with some rules changed (tests; the app itself never calls this).
override = _SETTINGS.override
