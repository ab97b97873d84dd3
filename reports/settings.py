"""Rules of the reports room, read from the environment (README, "Configure")."""

from __future__ import annotations

import msgspec

from kernel.settings import RoomSettings, env_int, listing_refusals


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


# Each range is what a clinic could want; a value outside it stops the start naming the variable and the range
# (kernel.settings, read at start-up by rooms.install; README, "Configure"), because the code that reads it did
# something nobody chose, said beside each range.
# One chunk is one transaction holding its family's cursor: ten times the default at most. 0 folded nothing and
# read as "caught up", so every report stayed empty or stale, silently, every night; below 0 failed the job.
FOLD_CHUNK = (1, 50_000)
# 0 or less converted no consultation (a payment cannot follow within 0 days). Past half a year a treatment is no
# longer the consultation's doing, and every night refolds at least this many days of bookings (below).
CONVERSION_DAYS = (1, 180)
# Each fold recomputes this many days back every night. The visits' must cover the conversion window, or a
# consultation converting late in it never reached the report (its day was no longer refolded); below 0 only the
# days new bookings fall on were refolded, so no arrival, no-show or conversion reached it after the booking's
# night. The mall's and the campaigns': 0 or less never took back a voucher cancelled, or a refund made, after its
# day or the campaign's end; WeChat Pay takes refunds up to a year after payment, so a year (and a day) is the
# most worth refolding every night.
REFOLD_DAYS_MOST = 366
# The repurchase report's own query takes 1 to 730 days (`within_days`); 0 or less showed no repurchase at all.
REPURCHASE_DAYS = (1, 730)


def load_report_settings() -> ReportSettings:
    d = ReportSettings()
    with listing_refusals():
        conversion_days = env_int("REPORTS_CONVERSION_DAYS", d.conversion_days, within=CONVERSION_DAYS)
        return ReportSettings(
            fold_chunk=env_int("REPORTS_FOLD_CHUNK", d.fold_chunk, within=FOLD_CHUNK),
            conversion_days=conversion_days,
            visit_refold_days=env_int("REPORTS_VISIT_REFOLD_DAYS", d.visit_refold_days, least=conversion_days,
                                      most=REFOLD_DAYS_MOST),
            mall_refold_days=env_int("REPORTS_MALL_REFOLD_DAYS", d.mall_refold_days, least=1, most=REFOLD_DAYS_MOST),
            campaign_refold_days=env_int("REPORTS_CAMPAIGN_REFOLD_DAYS", d.campaign_refold_days, least=1,
                                         most=REFOLD_DAYS_MOST),
            repurchase_days=env_int("REPORTS_REPURCHASE_DAYS", d.repurchase_days, within=REPURCHASE_DAYS),
        )


_SETTINGS = RoomSettings(load_report_settings)
get_report_settings = _SETTINGS.get
# Run a block with some rules changed (tests; the app itself never calls this).
override = _SETTINGS.override
