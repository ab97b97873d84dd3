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


class FoldCursor(Model):
    """How far a summary fold got in one source (the last source id folded), and when."""

    name = fields.CharField(max_length=64, primary_key=True)
    position = fields.BigIntField(default=0, db_default=0)
    updated_at = fields.DatetimeField(null=True)

    class Meta:
        table = "report_fold_cursor"


class SalesDay(Model):
    """Consumptions per clinic day, branch and the customer's acquisition source (来源), gross and refunded.

    A refund is folded into the day of the consumption it refunds, so a month's net revenue moves back
    when one of its consumptions is refunded later.
    """

    id = fields.BigIntField(primary_key=True)
    day = fields.DateField()
    branch_id = fields.BigIntField()
    source_kind = fields.CharField(max_length=24)  # crm acquisition kind, "" when unknown
    consumptions = fields.IntField(default=0, db_default=0)
    amount_fen = fields.BigIntField(default=0, db_default=0)
    refunded_fen = fields.BigIntField(default=0, db_default=0)

    class Meta:
        table = "report_sales_day"
        unique_together = (("day", "branch_id", "source_kind"),)


class CustomerMonth(Model):
    """One customer's consumption in one clinic month at one branch (top-customer share)."""

    id = fields.BigIntField(primary_key=True)
    month = fields.DateField()  # the first day of the clinic month
    branch_id = fields.BigIntField()
    customer_id = fields.BigIntField()
    amount_fen = fields.BigIntField(default=0, db_default=0)
    refunded_fen = fields.BigIntField(default=0, db_default=0)

    class Meta:
        table = "report_customer_month"
        unique_together = (("month", "branch_id", "customer_id"),)


class TopShareMonth(Model):
    """The top 20% of customers' share of one clinic month's revenue, per branch (-1 = every branch)."""

    id = fields.BigIntField(primary_key=True)
    month = fields.DateField()
    branch_id = fields.BigIntField()
    customers = fields.IntField(default=0, db_default=0)  # customers with net revenue in the month
    revenue_fen = fields.BigIntField(default=0, db_default=0)
    top_customers = fields.IntField(default=0, db_default=0)
    top_revenue_fen = fields.BigIntField(default=0, db_default=0)

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


class AcquisitionDay(Model):
    """New customers per clinic day of their first login and acquisition source."""

    id = fields.BigIntField(primary_key=True)
    day = fields.DateField()
    source_kind = fields.CharField(max_length=24)
    customers = fields.IntField(default=0, db_default=0)

    class Meta:
        table = "report_acquisition_day"
        unique_together = (("day", "source_kind"),)


class RfmClassDay(Model):
    """RFM class sizes on a scoring day."""

    id = fields.BigIntField(primary_key=True)
    as_of = fields.DateField()
    rfm_class = fields.CharField(max_length=32)
    customers = fields.IntField(default=0, db_default=0)

    class Meta:
        table = "report_rfm_class_day"
        unique_together = (("as_of", "rfm_class"),)


class RfmMovementDay(Model):
    """Customers who moved between two RFM classes on a scoring day ("" = entered, first score)."""

    id = fields.BigIntField(primary_key=True)
    as_of = fields.DateField()
    from_class = fields.CharField(max_length=32)
    to_class = fields.CharField(max_length=32)
    customers = fields.IntField(default=0, db_default=0)

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
    views = fields.IntField(default=0, db_default=0)
    opened = fields.IntField(default=0, db_default=0)
    joined = fields.IntField(default=0, db_default=0)
    paid = fields.IntField(default=0, db_default=0)
    succeeded = fields.IntField(default=0, db_default=0)
    virtually_completed = fields.IntField(default=0, db_default=0)
    failed = fields.IntField(default=0, db_default=0)
    refunded = fields.IntField(default=0, db_default=0)
    paid_fen = fields.BigIntField(default=0, db_default=0)
    refunded_fen = fields.BigIntField(default=0, db_default=0)
    folded_at = fields.DatetimeField()

    class Meta:
        table = "report_campaign_funnel"
        indexes = (("first_day", "last_day"),)


class MallDay(Model):
    """Points-mall redemptions per clinic day they were made: units taken, units given back, points."""

    day = fields.DateField(primary_key=True, generated=False)
    redemptions = fields.IntField(default=0, db_default=0)
    units = fields.IntField(default=0, db_default=0)
    cancelled_units = fields.IntField(default=0, db_default=0)
    points_spent = fields.BigIntField(default=0, db_default=0)

    class Meta:
        table = "report_mall_day"


class VoucherDay(Model):
    """Vouchers redeemed (核销) per clinic day, branch and what issued them (mall, group buy, referral ...)."""

    id = fields.BigIntField(primary_key=True)
    day = fields.DateField()
    branch_id = fields.BigIntField()
    source_type = fields.CharField(max_length=32)
    redeemed = fields.IntField(default=0, db_default=0)

    class Meta:
        table = "report_voucher_day"
        unique_together = (("day", "branch_id", "source_type"),)


class VisitDay(Model):
    """Bookings per clinic day, branch, department and doctor: kept, no-shows, consultations and conversions."""

    id = fields.BigIntField(primary_key=True)
    day = fields.DateField()
    branch_id = fields.BigIntField()
    department_id = fields.BigIntField()
    practitioner_id = fields.BigIntField()  # 0 = no doctor on the slot
    bookings = fields.IntField(default=0, db_default=0)  # not cancelled
    no_shows = fields.IntField(default=0, db_default=0)
    consultations = fields.IntField(default=0, db_default=0)  # completed consultations
    converted = fields.IntField(default=0, db_default=0)  # ... followed by a paid treatment within the window
    converted_fen = fields.BigIntField(default=0, db_default=0)

    class Meta:
        table = "report_visit_day"
        unique_together = (("day", "branch_id", "department_id", "practitioner_id"),)


class SurveyDay(Model):
    """Satisfaction survey answers per clinic day answered, branch, department and doctor."""

    id = fields.BigIntField(primary_key=True)
    day = fields.DateField()
    branch_id = fields.BigIntField()
    department_id = fields.BigIntField()
    practitioner_id = fields.BigIntField()
    responses = fields.IntField(default=0, db_default=0)
    score_sum = fields.IntField(default=0, db_default=0)

    class Meta:
        table = "report_survey_day"
        unique_together = (("day", "branch_id", "department_id", "practitioner_id"),)


class PointsDay(Model):
    """Points ledger movements per clinic day and entry kind (earned, spent, expired, reversed ...)."""

    id = fields.BigIntField(primary_key=True)
    day = fields.DateField()
    kind = fields.CharField(max_length=16)
    points_in = fields.BigIntField(default=0, db_default=0)
    points_out = fields.BigIntField(default=0, db_default=0)

    class Meta:
        table = "report_points_day"
        unique_together = (("day", "kind"),)


class PointsLiability(Model):
    """What the points owe at the end of a clinic day (last fold of that day): spendable, pending, expiring."""

    day = fields.DateField(primary_key=True, generated=False)
    balance = fields.BigIntField(default=0, db_default=0)
    pending = fields.BigIntField(default=0, db_default=0)
    expiring_30 = fields.BigIntField(default=0, db_default=0)
    expiring_90 = fields.BigIntField(default=0, db_default=0)
    taken_at = fields.DatetimeField()

    class Meta:
        table = "report_points_liability"


class ReferralRewardDay(Model):
    """Referral rewards per clinic day they were paid (cash fen, points), and reversals of paid cash."""

    day = fields.DateField(primary_key=True, generated=False)
    paid_fen = fields.BigIntField(default=0, db_default=0)
    paid_points = fields.BigIntField(default=0, db_default=0)
    rewards = fields.IntField(default=0, db_default=0)
    reversed_fen = fields.BigIntField(default=0, db_default=0)

    class Meta:
        table = "report_referral_reward_day"


class StaffBranch(Model):
    """The branch a front-desk staff member works at: their reports are limited to it."""

    staff_id = fields.BigIntField(primary_key=True, generated=False)
    branch_id = fields.BigIntField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "report_staff_branch"
