"""Tortoise models of the CRM room: tags, RFM scores and their history, segments, outreach, consent, acquisition.

Customer references are plain `customer_id` columns, not foreign keys: the nightly jobs write hundreds of
thousands of rows (scores, history, memberships) where an FK check per row costs time and share-locks the
customer rows other rooms lock for writing; an erased customer keeps their id, so nothing dangles.
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class RfmClass(StrEnum):
    """The eight RFM classes: R (recent), F (frequent), M (monetary) each high or low."""

    important_value = "important_value"  # 重要价值: R↑ F↑ M↑
    important_development = "important_development"  # 重要发展: R↑ F↓ M↑
    important_retain = "important_retain"  # 重要保持: R↓ F↑ M↑
    important_winback = "important_winback"  # 重要挽留: R↓ F↓ M↑
    general_value = "general_value"  # 一般价值: R↑ F↑ M↓
    general_development = "general_development"  # 一般发展: R↑ F↓ M↓
    general_retain = "general_retain"  # 一般保持: R↓ F↑ M↓
    general_winback = "general_winback"  # 一般挽留: R↓ F↓ M↓


RFM_LABELS = {
    RfmClass.important_value: "重要价值",
    RfmClass.important_development: "重要发展",
    RfmClass.important_retain: "重要保持",
    RfmClass.important_winback: "重要挽留",
    RfmClass.general_value: "一般价值",
    RfmClass.general_development: "一般发展",
    RfmClass.general_retain: "一般保持",
    RfmClass.general_winback: "一般挽留",
}


class RfmRules(Model):
    """The one row (id 1) of RFM thresholds staff configure, read by the nightly scoring."""

    id = fields.IntField(primary_key=True)
    # Frequency and monetary count consumptions within this many days (today included).
    window_days = fields.IntField(default=365)
    # Recent (R high) when the last consumption is at most this many local days ago.
    recency_days = fields.IntField(default=90)
    # Frequent (F high) from this many consumptions in the window.
    frequency_min = fields.IntField(default=2)
    # Valuable (M high) from this net spend in the window, in fen.
    monetary_min_fen = fields.BigIntField(default=300_000)
    updated_at = fields.DatetimeField()
    updated_by_staff_id = fields.BigIntField(null=True)

    class Meta:
        table = "crm_rfm_rules"


class RfmScore(Model):
    """A customer's latest score (one row per customer who ever consumed)."""

    customer_id = fields.BigIntField(primary_key=True, generated=False)
    as_of = fields.DateField()
    # Indexed: segments filter on last visit and spend as of the nightly scoring.
    last_consumption_at = fields.DatetimeField(db_index=True)
    recency_days = fields.IntField()
    frequency = fields.IntField()
    monetary_fen = fields.BigIntField(db_index=True)
    rfm_class = fields.CharEnumField(RfmClass, max_length=32, db_index=True)
    # The class before today's scoring (kept so a second run of the same day records the same movement).
    previous_class = fields.CharEnumField(RfmClass, max_length=32, null=True)

    class Meta:
        table = "crm_rfm_score"


class RfmHistory(Model):
    """One row per customer and scoring day."""

    id = fields.BigIntField(primary_key=True)
    customer_id = fields.BigIntField()
    as_of = fields.DateField()
    rfm_class = fields.CharEnumField(RfmClass, max_length=32)
    recency_days = fields.IntField()
    frequency = fields.IntField()
    monetary_fen = fields.BigIntField()

    class Meta:
        table = "crm_rfm_history"
        unique_together = (("customer_id", "as_of"),)


class RfmMovement(Model):
    """A customer changed class on a scoring day (e.g. 重要价值 → 重要挽留)."""

    id = fields.BigIntField(primary_key=True)
    customer_id = fields.BigIntField()
    as_of = fields.DateField()
    from_class = fields.CharEnumField(RfmClass, max_length=32, null=True)
    to_class = fields.CharEnumField(RfmClass, max_length=32)

    class Meta:
        table = "crm_rfm_movement"
        unique_together = (("customer_id", "as_of"),)
        indexes = (("as_of", "from_class", "to_class"),)


class TagKind(StrEnum):
    manual = "manual"  # put on and taken off by staff
    rule = "rule"  # computed nightly from data (age band, spend band, interests)
    skin = "skin"  # from skin-analysis results


class Tag(Model):
    """The tag catalogue (标签库): staff-editable, grouped by category (skin, interest, source, age, spend …)."""

    id = fields.BigIntField(primary_key=True)
    code = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=64)
    category = fields.CharField(max_length=32, db_index=True)
    kind = fields.CharEnumField(TagKind, max_length=16)
    description = fields.CharField(max_length=255, default="")
    deleted_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "crm_tag"


class CustomerTag(Model):
    id = fields.BigIntField(primary_key=True)
    customer_id = fields.BigIntField()
    tag_id = fields.BigIntField()
    source = fields.CharEnumField(TagKind, max_length=16)
    added_by_staff_id = fields.BigIntField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "crm_customer_tag"
        unique_together = (("customer_id", "tag_id"),)
        indexes = (("tag_id", "customer_id"),)


class SkinAnalysis(Model):
    """One skin-analyser result per customer and visit day, the latest deciding the customer's skin tags."""

    id = fields.BigIntField(primary_key=True)
    customer_id = fields.BigIntField()
    visit_date = fields.DateField()
    tag_ids = fields.JSONField(default=list)
    source = fields.CharField(max_length=16)  # "staff" or "import"
    recorded_by_staff_id = fields.BigIntField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "crm_skin_analysis"
        unique_together = (("customer_id", "visit_date"),)


class Segment(Model):
    """A saved rule over customers (人群): AND of groups, OR of conditions inside a group."""

    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=64)
    description = fields.CharField(max_length=255, default="")
    rules = fields.JSONField(default=dict)
    member_count = fields.IntField(default=0)
    recomputed_at = fields.DatetimeField(null=True)
    deleted_at = fields.DatetimeField(null=True)
    created_by_staff_id = fields.BigIntField(null=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "crm_segment"


class SegmentMember(Model):
    id = fields.BigIntField(primary_key=True)
    segment_id = fields.BigIntField()
    customer_id = fields.BigIntField()
    entered_at = fields.DatetimeField()

    class Meta:
        table = "crm_segment_member"
        unique_together = (("segment_id", "customer_id"),)


class SegmentEventKind(StrEnum):
    entered = "entered"
    left = "left"


class SegmentEvent(Model):
    """A customer entered or left a segment: written once per change, in the recompute that saw it."""

    id = fields.BigIntField(primary_key=True)
    segment_id = fields.BigIntField()
    customer_id = fields.BigIntField()
    kind = fields.CharEnumField(SegmentEventKind, max_length=8)
    occurred_at = fields.DatetimeField()

    class Meta:
        table = "crm_segment_event"
        indexes = (("segment_id", "id"), ("customer_id", "id"))


class MarketingProfile(Model):
    """A customer's marketing state: the opt-out (PIPL) and the last marketing message (frequency cap)."""

    customer_id = fields.BigIntField(primary_key=True, generated=False)
    marketing_opt_out = fields.BooleanField(default=False)
    opt_out_changed_at = fields.DatetimeField(null=True)
    last_marketing_at = fields.DatetimeField(null=True)

    class Meta:
        table = "crm_marketing_profile"


class MessageConsent(Model):
    """Acceptances of a subscribe-message template the mini-program reported (一次性订阅: one acceptance = one send)."""

    id = fields.BigIntField(primary_key=True)
    customer_id = fields.BigIntField()
    template_id = fields.CharField(max_length=64)
    credits = fields.IntField(default=0)
    last_accepted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "crm_message_consent"
        unique_together = (("customer_id", "template_id"),)


class OutreachStatus(StrEnum):
    draft = "draft"
    scheduled = "scheduled"
    running = "running"
    done = "done"
    cancelled = "cancelled"


class Outreach(Model):
    """Vouchers and/or a subscribe message to a segment (触达), with a holdout share that gets nothing."""

    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=64)
    segment_id = fields.BigIntField()
    status = fields.CharEnumField(OutreachStatus, max_length=16, default=OutreachStatus.draft)
    scheduled_at = fields.DatetimeField(null=True)
    voucher_title = fields.CharField(max_length=128, default="")
    voucher_valid_days = fields.IntField(default=30)
    voucher_service_id = fields.BigIntField(null=True)
    # None = as many as there are recipients; otherwise issued never exceeds it (conditional update).
    voucher_stock = fields.IntField(null=True)
    vouchers_issued = fields.IntField(default=0)
    # A coupon (orders room's template) given with or instead of the voucher; voucher_stock caps both gifts.
    coupon_template_id = fields.BigIntField(null=True)
    coupons_issued = fields.IntField(default=0, db_default=0)
    template_id = fields.CharField(max_length=64, default="")
    message_page = fields.CharField(max_length=128, default="")
    message_data = fields.JSONField(default=dict)
    holdout_bp = fields.IntField(default=0)
    skip_upcoming_booking = fields.BooleanField(default=False)
    lift_days = fields.IntField(default=14)
    members_taken = fields.BooleanField(default=False)
    created_by_staff_id = fields.BigIntField(null=True)
    created_at = fields.DatetimeField()
    started_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "crm_outreach"


class RecipientState(StrEnum):
    pending = "pending"
    handled = "handled"


class OutreachRecipient(Model):
    """One segment member of one outreach: in the holdout or not, and what they got (unique per pair)."""

    id = fields.BigIntField(primary_key=True)
    outreach_id = fields.BigIntField()
    customer_id = fields.BigIntField()
    holdout = fields.BooleanField(default=False)
    state = fields.CharEnumField(RecipientState, max_length=16, default=RecipientState.pending)
    # "issued", "no_stock", "skipped" (opted out), or "" when the outreach gives no voucher / holdout.
    voucher_outcome = fields.CharField(max_length=16, default="")
    voucher_id = fields.BigIntField(null=True)
    # "issued", "no_stock", "limit_reached" (the template's per-customer limit), "template_off" (switched off
    # after staff named it), or "" (no coupon / holdout).
    coupon_outcome = fields.CharField(max_length=16, default="", db_default="")
    coupon_id = fields.BigIntField(null=True)
    # "claimed" → "sent" | "failed"; "skipped" with a reason; "" when there is no message / holdout.
    message_outcome = fields.CharField(max_length=16, default="")
    skip_reason = fields.CharField(max_length=32, default="")
    handled_at = fields.DatetimeField(null=True)
    sent_at = fields.DatetimeField(null=True)

    class Meta:
        table = "crm_outreach_recipient"
        unique_together = (("outreach_id", "customer_id"),)
        indexes = (("outreach_id", "state", "id"), ("customer_id", "id"))


class BirthdayGift(Model):
    """The birthday voucher of one customer for one year (unique: once a year, however often the job runs).

    It holds each part of the gift: the voucher, the coupon, and why the coupon is missing when it is."""

    id = fields.BigIntField(primary_key=True)
    customer_id = fields.BigIntField()
    year = fields.IntField()
    voucher_id = fields.BigIntField(null=True)
    coupon_id = fields.BigIntField(null=True)
    # "issued"; "limit_reached" / "template_off" when the rule's coupon could not be given (a later run of the
    # month tries the coupon again, never the voucher); "" when the rule gave no coupon.
    coupon_outcome = fields.CharField(max_length=16, default="", db_default="")
    created_at = fields.DatetimeField()

    class Meta:
        table = "crm_birthday_gift"
        unique_together = (("customer_id", "year"),)


class CouponOccasion(StrEnum):
    birthday = "birthday"
    after_visit = "after_visit"


class CouponRule(Model):
    """The coupon template the CRM gives on an occasion (birthday, a completed visit), set by staff."""

    occasion = fields.CharEnumField(CouponOccasion, max_length=16, primary_key=True)
    # None: no coupon on this occasion.
    coupon_template_id = fields.BigIntField(null=True)
    # Birthday only: whether the birthday voucher is still given beside the coupon (False: coupon instead).
    with_voucher = fields.BooleanField(default=True)
    updated_at = fields.DatetimeField()
    updated_by_staff_id = fields.BigIntField(null=True)

    class Meta:
        table = "crm_coupon_rule"


class ConsultationFollowUp(Model):
    """A consultation visit that did not convert, and the 咨询回访 task created for it (one per visit)."""

    id = fields.BigIntField(primary_key=True)
    booking_id = fields.BigIntField(unique=True)
    customer_id = fields.BigIntField(db_index=True)
    follow_up_task_id = fields.BigIntField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "crm_consultation_follow_up"


class ChannelKind(StrEnum):
    staff = "staff"  # a staff member's code (consultants bring customers)
    partner = "partner"  # 异业联盟: a partner business's QR scene
    ad = "ad"  # an ad campaign's scene


class AcquisitionChannel(Model):
    """A code or QR scene a new customer can arrive with (other than a customer's referral code)."""

    id = fields.BigIntField(primary_key=True)
    kind = fields.CharEnumField(ChannelKind, max_length=16)
    code = fields.CharField(max_length=32, unique=True)
    name = fields.CharField(max_length=64)
    staff_id = fields.BigIntField(null=True, db_index=True)
    # The staff member's own mini-program account, so they are never rewarded for their own purchases.
    staff_customer_id = fields.BigIntField(null=True)
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "crm_acquisition_channel"


class SourceKind(StrEnum):
    customer_referral = "customer_referral"
    staff = "staff"
    partner = "partner"
    ad = "ad"
    organic = "organic"


class Acquisition(Model):
    """Where a customer came from, recorded once at their first login (来源)."""

    customer_id = fields.BigIntField(primary_key=True, generated=False)
    kind = fields.CharEnumField(SourceKind, max_length=24, db_index=True)
    channel_id = fields.BigIntField(null=True, db_index=True)
    referrer_customer_id = fields.BigIntField(null=True)
    code = fields.CharField(max_length=32, default="")
    acquired_at = fields.DatetimeField()

    class Meta:
        table = "crm_acquisition"


class StaffRewardStatus(StrEnum):
    pending = "pending"  # within the hold (refund window)
    handed_over = "handed_over"  # passed to the finance batches (referrals room) as a staff payout
    cancelled = "cancelled"  # refunded in full before the hold ended
    # The scan met the consumption only after its horizon (acquisition.expire_staff_rewards_outside_horizon_chunk):
    # never paid automatically; kept so it stops being a candidate and finance can see it.
    expired = "expired"


class StaffReward(Model):
    """A staff member's share of one consumption by a customer they brought (unique per consumption)."""

    id = fields.BigIntField(primary_key=True)
    staff_id = fields.BigIntField(db_index=True)
    customer_id = fields.BigIntField()
    consumption_id = fields.BigIntField(unique=True)
    base_fen = fields.BigIntField()
    amount_fen = fields.BigIntField()
    status = fields.CharEnumField(StaffRewardStatus, max_length=16, default=StaffRewardStatus.pending)
    hold_until = fields.DatetimeField()
    created_at = fields.DatetimeField()

    class Meta:
        table = "crm_staff_reward"
        indexes = (("status", "hold_until"),)


# No job reads it since 0.2 (the staff-reward scan looks for consumptions without a reward, docs/crm.md); the
# table stays because migrations only add.
class CrmCursor(Model):
    """Where an incremental job got to (e.g. the last consumption id the staff-reward scan saw)."""

    name = fields.CharField(max_length=64, primary_key=True)
    position = fields.BigIntField(default=0)

    class Meta:
        table = "crm_cursor"
