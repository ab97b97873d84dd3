"""Tortoise models of the reports room: summary tables per clinic day (and branch), folded by workers.

Nothing here is a source of truth: every table can be rebuilt from the other rooms' rows
(`reports.rebuild`). Days are clinic days (the clinic's time zone, settings `CLINIC_TIMEZONE`);
`branch_id` 0 stands for "no branch recorded", so the unique keys hold (NULLs never collide in MySQL).
Customer references are plain ids, as in the CRM: the folds write many rows and must not share-lock
customer rows other rooms lock for writing.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


def tally() -> fields.IntField:
    """A count the folds add to: 0 until the first fold, in the model and in the table's default."""
    return fields.IntField(default=0, db_default=0)


def total() -> fields.BigIntField:
    """A sum of fen or points the folds add to: 0 until the first fold, in the model and in the table."""
    return fields.BigIntField(default=0, db_default=0)


class DayRow(Model):
    """One summary row of a clinic day, keyed by its own id."""

    id = fields.BigIntField(primary_key=True)
    day = fields.DateField()

    class Meta:
        abstract = True


class BranchDayRow(DayRow):
    """One summary row of a clinic day at one branch (0: no branch recorded)."""

    branch_id = fields.BigIntField()

    class Meta:
        abstract = True


class PractitionerDayRow(BranchDayRow):
    """One summary row of a clinic day, branch, department and doctor (0: no doctor on the slot)."""

    department_id = fields.BigIntField()
    practitioner_id = fields.BigIntField()

    class Meta:
        abstract = True


class ScoringDayRow(Model):
    """One summary row of an RFM scoring day (the day the CRM scored customers), keyed by its own id."""

    id = fields.BigIntField(primary_key=True)
    as_of = fields.DateField()

    class Meta:
        abstract = True


class FoldCursor(Model):
    """How far a summary fold got in one source (the last source id folded), and when."""

    name = fields.CharField(max_length=64, primary_key=True)
    position = fields.BigIntField(default=0, db_default=0)
    updated_at = fields.DatetimeField(null=True)

    class Meta:
        table = "report_fold_cursor"


class SalesDay(BranchDayRow):
    """Consumptions per clinic day, branch and the customer's acquisition source (来源), gross and refunded.

    A refund is folded into the day of the consumption it refunds, so a month's net revenue moves back
    when one of its consumptions is refunded later.
    """

    source_kind = fields.CharField(max_length=24)  # crm acquisition kind, "" when unknown
    consumptions = tally()
    amount_fen = total()
    refunded_fen = total()

    class Meta:
        table = "report_sales_day"
        unique_together = (("day", "branch_id", "source_kind"),)


class CustomerMonth(Model):
    """One customer's consumption in one clinic month at one branch (top-customer share)."""

    id = fields.BigIntField(primary_key=True)
    month = fields.DateField()  # the first day of the clinic month
    branch_id = fields.BigIntField()
    customer_id = fields.BigIntField()
    amount_fen = total()
    refunded_fen = total()

    class Meta:
        table = "report_customer_month"
        unique_together = (("month", "branch_id", "customer_id"),)


class TopShareMonth(Model):
    """The top 20% of customers' share of one clinic month's revenue, per branch (-1 = every branch)."""

    id = fields.BigIntField(primary_key=True)
    month = fields.DateField()
    branch_id = fields.BigIntField()
    customers = tally()  # customers with net revenue in the month
    revenue_fen = total()
    top_customers = tally()
    top_revenue_fen = total()

    class Meta:
        table = "report_top_share_month"
        unique_together = (("month", "branch_id"),)


class DirtyMonth(Model):
    """A clinic month whose top-share rows must be recomputed (written by the consumption folds)."""

    month = fields.DateField(primary_key=True, generated=False)

    class Meta:
        table = "report_dirty_month"


class CustomerVisits(Model):
    """A customer's first two paid visits (clinic days with a consumption not refunded in full)."""

    customer_id = fields.BigIntField(primary_key=True, generated=False)
    first_day = fields.DateField(null=True)
    first_branch_id = fields.BigIntField(default=0, db_default=0)
    second_day = fields.DateField(null=True)
    gap_days = fields.IntField(null=True)

    class Meta:
        table = "report_customer_visits"
        indexes = (("first_day", "first_branch_id", "gap_days"),)


class AcquisitionDay(DayRow):
    """New customers per clinic day of their first login and acquisition source."""

    source_kind = fields.CharField(max_length=24)
    customers = tally()

    class Meta:
        table = "report_acquisition_day"
        unique_together = (("day", "source_kind"),)


class RfmClassDay(ScoringDayRow):
    """RFM class sizes on a scoring day."""

    rfm_class = fields.CharField(max_length=32)
    customers = tally()

    class Meta:
        table = "report_rfm_class_day"
        unique_together = (("as_of", "rfm_class"),)


class RfmMovementDay(ScoringDayRow):
    """Customers who moved between two RFM classes on a scoring day ("" = entered, first score)."""

    from_class = fields.CharField(max_length=32)
    to_class = fields.CharField(max_length=32)
    customers = tally()

    class Meta:
        table = "report_rfm_movement_day"
        unique_together = (("as_of", "from_class", "to_class"),)


class CampaignFunnel(Model):
    """The group-buy funnel of one campaign, recomputed while it can still change."""

    campaign_id = fields.BigIntField(primary_key=True, generated=False)
    title = fields.CharField(max_length=64)
    kind = fields.CharField(max_length=16)
    first_day = fields.DateField()  # clinic day the campaign starts
    last_day = fields.DateField()  # clinic day it ends
    branch_ids = fields.JSONField(null=True)  # None = every branch
    views = tally()
    opened = tally()
    joined = tally()
    paid = tally()
    succeeded = tally()
    virtually_completed = tally()
    failed = tally()
    refunded = tally()
    paid_fen = total()
    refunded_fen = total()
    folded_at = fields.DatetimeField()

    class Meta:
        table = "report_campaign_funnel"
        indexes = (("first_day", "last_day"),)


class MallDay(Model):
    """Points-mall redemptions per clinic day they were made: units taken, units given back, points."""

    day = fields.DateField(primary_key=True, generated=False)
    redemptions = tally()
    units = tally()
    cancelled_units = tally()
    points_spent = total()

    class Meta:
        table = "report_mall_day"


class VoucherDay(BranchDayRow):
    """Vouchers redeemed (核销) per clinic day, branch and what issued them (mall, group buy, referral ...)."""

    source_type = fields.CharField(max_length=32)
    redeemed = tally()

    class Meta:
        table = "report_voucher_day"
        unique_together = (("day", "branch_id", "source_type"),)


class VisitDay(PractitionerDayRow):
    """Bookings per clinic day, branch, department and doctor: kept, no-shows, consultations and conversions."""

    bookings = tally()  # not cancelled
    no_shows = tally()
    consultations = tally()  # completed consultations
    converted = tally()  # ... followed by a paid treatment within the window
    converted_fen = total()

    class Meta:
        table = "report_visit_day"
        unique_together = (("day", "branch_id", "department_id", "practitioner_id"),)


class SurveyDay(PractitionerDayRow):
    """Satisfaction survey answers per clinic day answered, branch, department and doctor."""

    responses = tally()
    score_sum = tally()

    class Meta:
        table = "report_survey_day"
        unique_together = (("day", "branch_id", "department_id", "practitioner_id"),)


class PointsDay(DayRow):
    """Points ledger movements per clinic day and entry kind (earned, spent, expired, reversed ...)."""

    kind = fields.CharField(max_length=16)
    points_in = total()
    points_out = total()

    class Meta:
        table = "report_points_day"
        unique_together = (("day", "kind"),)


class PointsLiability(Model):
    """What the points owe at the end of a clinic day (last fold of that day): spendable, pending, expiring."""

    day = fields.DateField(primary_key=True, generated=False)
    balance = total()
    pending = total()
    expiring_30 = total()
    expiring_90 = total()
    taken_at = fields.DatetimeField()

    class Meta:
        table = "report_points_liability"


class ReferralRewardDay(Model):
    """Referral rewards per clinic day they were paid (cash fen, points), and reversals of paid cash."""

    day = fields.DateField(primary_key=True, generated=False)
    paid_fen = total()
    paid_points = total()
    rewards = tally()
    reversed_fen = total()

    class Meta:
        table = "report_referral_reward_day"


class StaffBranch(Model):
    """The branch a front-desk staff member works at: their reports are limited to it."""

    staff_id = fields.BigIntField(primary_key=True, generated=False)
    branch_id = fields.BigIntField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "report_staff_branch"
