"""Tortoise models of points and the mall: ledger, lots, pending points, accounts, check-ins, tiers, vouchers, items.

Every table that records an effect on points or stock carries a unique key (a ledger `ref`, a check-in
`(customer, local_date)`, a redemption `(customer, idempotency_key)`, a voucher `(source_type, source_id, seq)`),
so a repeated request or a job that runs twice finds the row it already wrote instead of writing another.
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class EntryKind(StrEnum):
    check_in = "check_in"
    consumption = "consumption"
    referral = "referral"
    campaign = "campaign"
    redemption = "redemption"
    expiry = "expiry"
    adjustment = "adjustment"
    reversal = "reversal"


class PendingStatus(StrEnum):
    pending = "pending"
    released = "released"
    cancelled = "cancelled"


class PointsAccount(Model):
    """A customer's points account: the balance is kept with every ledger entry, in the same transaction.

    `balance` is what the customer may spend and always equals the sum of the customer's ledger deltas
    (and the sum of their lots' `remaining`). `pending` is held consumption points not yet in the ledger.
    Every change to a customer's points or lots first locks this row, which serialises them per customer.
    """

    id = fields.BigIntField(primary_key=True)
    customer = fields.OneToOneField("kernel.Customer", related_name=False, on_delete=fields.RESTRICT)
    balance = fields.IntField(default=0)
    pending = fields.IntField(default=0)
    # Points a reversal could not take back because the customer had already spent them.
    shortfall = fields.IntField(default=0)
    lifetime_earned = fields.IntField(default=0)
    tier = fields.ForeignKeyField(
        "points_mall.MemberTier", related_name=False, null=True, on_delete=fields.RESTRICT
    )
    tier_changed_at = fields.DatetimeField(null=True)
    # Make-up check-ins (补签) made on this account. A check-in reads it with yesterday's streak and credits
    # only while it is unchanged (points_mall.checkin): a make-up committed in between changed the streak.
    checkin_makeups = fields.IntField(default=0, db_default=0)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "points_account"


class PointsLedgerEntry(Model):
    """One change of a customer's spendable points (append-only: corrections are new entries)."""

    id = fields.BigIntField(primary_key=True)
    customer = fields.ForeignKeyField("kernel.Customer", related_name=False, on_delete=fields.RESTRICT)
    delta = fields.IntField()
    kind = fields.CharEnumField(EntryKind, max_length=16)
    # The idempotency key of the effect, e.g. "checkin:42:2026-11-03", "consumption:17".
    ref = fields.CharField(max_length=128, unique=True)
    reason = fields.CharField(max_length=255)
    balance_after = fields.IntField()
    # For earned points: when the lot expires (null: never).
    expires_at = fields.DatetimeField(null=True)
    # For reversals: the ref of the entry (or pending points) being reversed.
    original_ref = fields.CharField(max_length=128, null=True, db_index=True)
    detail = fields.JSONField(default=dict)
    occurred_at = fields.DatetimeField()

    class Meta:
        table = "points_ledger_entry"
        indexes = (("customer_id", "id"), ("kind", "occurred_at"))


class PointsLot(Model):
    """Points earned together that expire together: spending takes from the lots that expire first."""

    id = fields.BigIntField(primary_key=True)
    customer = fields.ForeignKeyField("kernel.Customer", related_name=False, on_delete=fields.RESTRICT)
    entry = fields.ForeignKeyField("points_mall.PointsLedgerEntry", related_name="lots", on_delete=fields.RESTRICT)
    points = fields.IntField()
    remaining = fields.IntField()
    earned_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(null=True)

    class Meta:
        table = "points_lot"
        # The customer's lots are locked through (customer_id, id), a key a spend never changes: locking them
        # through (customer_id, remaining) let the update move the row inside the locked index, and spends by
        # customers with neighbouring ids deadlocked on each other's gap locks (docs/reliability.md).
        indexes = (("customer_id", "id"), ("expires_at", "remaining"))


class PointsLotUse(Model):
    """How much of a lot a debit entry took, so a reversal can give the points back with their expiry."""

    id = fields.BigIntField(primary_key=True)
    entry = fields.ForeignKeyField("points_mall.PointsLedgerEntry", related_name="lot_uses", on_delete=fields.RESTRICT)
    lot = fields.ForeignKeyField("points_mall.PointsLot", related_name=False, on_delete=fields.RESTRICT)
    points = fields.IntField()
    restored = fields.IntField(default=0)

    class Meta:
        table = "points_lot_use"


class PendingPoints(Model):
    """Earned points held back (e.g. for the refund window) before they reach the ledger."""

    id = fields.BigIntField(primary_key=True)
    customer = fields.ForeignKeyField("kernel.Customer", related_name=False, on_delete=fields.RESTRICT)
    points = fields.IntField()
    kind = fields.CharEnumField(EntryKind, max_length=16)
    # The ledger entry written on release carries the same ref: the effect is applied once.
    ref = fields.CharField(max_length=128, unique=True)
    reason = fields.CharField(max_length=255)
    earned_at = fields.DatetimeField()
    release_at = fields.DatetimeField()
    status = fields.CharEnumField(PendingStatus, max_length=16, default=PendingStatus.pending)
    entry = fields.ForeignKeyField(
        "points_mall.PointsLedgerEntry", related_name=False, null=True, on_delete=fields.RESTRICT
    )
    settled_at = fields.DatetimeField(null=True)

    class Meta:
        table = "points_pending"
        indexes = (("status", "release_at"), ("customer_id", "status"))


class ConsumptionSource(StrEnum):
    front_desk = "front_desk"
    order = "order"


class Consumption(Model):
    """Money a customer paid for a treatment (front desk) or an order: it earns points."""

    id = fields.BigIntField(primary_key=True)
    customer = fields.ForeignKeyField("kernel.Customer", related_name=False, on_delete=fields.RESTRICT)
    amount_fen = fields.BigIntField()
    refunded_fen = fields.BigIntField(default=0)
    source = fields.CharEnumField(ConsumptionSource, max_length=16)
    external_ref = fields.CharField(max_length=128, unique=True)
    branch_id = fields.BigIntField(null=True)
    service_id = fields.BigIntField(null=True)
    staff_id = fields.BigIntField(null=True)
    points = fields.IntField(default=0)
    points_reversed = fields.IntField(default=0)
    points_ref = fields.CharField(max_length=128)
    occurred_at = fields.DatetimeField()

    class Meta:
        table = "points_consumption"
        indexes = (("customer_id", "occurred_at"),)


class ApprovalStatus(StrEnum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"


class ConsumptionApproval(Model):
    """A consumption recorded above the approval threshold, waiting for a second staff member."""

    # It earns nothing (no points, no tier, no referral) until approved; then it becomes a `Consumption`.
    # The docstring stays on one line: Tortoise writes it as the table comment, and SQLite's DDL comment
    # ends at the first line break.

    id = fields.BigIntField(primary_key=True)
    customer = fields.ForeignKeyField("kernel.Customer", related_name=False, on_delete=fields.RESTRICT)
    amount_fen = fields.BigIntField()
    # The external_ref the consumption will carry: a retry of the same recording finds this row.
    external_ref = fields.CharField(max_length=128, unique=True)
    branch_id = fields.BigIntField(null=True)
    service_id = fields.BigIntField(null=True)
    recorded_by_id = fields.BigIntField()
    status = fields.CharEnumField(ApprovalStatus, max_length=16, default=ApprovalStatus.pending)
    decided_by_id = fields.BigIntField(null=True)
    decided_at = fields.DatetimeField(null=True)
    decision_note = fields.CharField(max_length=200, default="")
    consumption_id = fields.BigIntField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "points_consumption_approval"
        indexes = (("status", "id"),)


class ConsumptionRefund(Model):
    id = fields.BigIntField(primary_key=True)
    consumption = fields.ForeignKeyField("points_mall.Consumption", related_name="refunds", on_delete=fields.RESTRICT)
    ref = fields.CharField(max_length=128, unique=True)
    refunded_fen = fields.BigIntField()
    points_reversed = fields.IntField()
    created_at = fields.DatetimeField()

    class Meta:
        table = "points_consumption_refund"


class QualifiedReferral(Model):
    """A referral that qualified (counted for the referrer's tier): written by the referrals room."""

    id = fields.BigIntField(primary_key=True)
    referrer = fields.ForeignKeyField("kernel.Customer", related_name=False, on_delete=fields.RESTRICT)
    ref = fields.CharField(max_length=128, unique=True)
    occurred_at = fields.DatetimeField()

    class Meta:
        table = "points_qualified_referral"
        indexes = (("referrer_id", "occurred_at"),)


class TierMatch(StrEnum):
    any = "any"  # either configured threshold is enough
    all = "all"  # every configured threshold must be reached


class MemberTier(Model):
    """A membership tier (会员等级): reached by spend in the window and/or qualified referrals."""

    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=64, unique=True)
    level = fields.IntField(unique=True)
    min_spend_fen = fields.BigIntField(null=True)
    min_referrals = fields.IntField(null=True)
    match = fields.CharEnumField(TierMatch, max_length=8, default=TierMatch.any)
    # Percent, so 120 means consumption earns 1.2x points (integers only near points).
    multiplier_pct = fields.IntField(default=100)
    benefits = fields.TextField(default="")
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "points_member_tier"


class TierChange(Model):
    id = fields.BigIntField(primary_key=True)
    customer = fields.ForeignKeyField("kernel.Customer", related_name=False, on_delete=fields.RESTRICT)
    from_tier_id = fields.BigIntField(null=True)
    to_tier_id = fields.BigIntField(null=True)
    direction = fields.CharField(max_length=8)  # "up" or "down"
    reason = fields.CharField(max_length=255)
    detail = fields.JSONField(default=dict)
    occurred_at = fields.DatetimeField()

    class Meta:
        table = "points_tier_change"
        indexes = (("customer_id", "id"),)


class PointsRules(Model):
    """The one row of rules staff configure (id 1): check-in table, earn rate, pending days, expiry."""

    id = fields.IntField(primary_key=True)
    checkin_base_points = fields.IntField(default=5)
    checkin_cycle_days = fields.IntField(default=7)
    # {"3": 10, "7": 30}: extra points on those days of the cycle.
    checkin_bonus = fields.JSONField(default=dict)
    makeup_enabled = fields.BooleanField(default=False)
    makeup_cost_points = fields.IntField(default=20)
    makeup_per_month = fields.IntField(default=2)
    # Consumption earns earn_points_per_unit points per earn_unit_fen paid (default 1 point per yuan).
    earn_points_per_unit = fields.IntField(default=1)
    earn_unit_fen = fields.IntField(default=100)
    pending_days = fields.IntField(default=7)
    # Earned points expire at the end of the Nth month after the month they were earned; 0 = never.
    expiry_months = fields.IntField(default=12)
    expiry_reminder_days = fields.IntField(default=30)
    expiry_reminder_template_id = fields.CharField(max_length=64, default="")
    tier_window_months = fields.IntField(default=12)
    voucher_expiry_returns_points = fields.BooleanField(default=False)
    updated_at = fields.DatetimeField()
    updated_by_staff_id = fields.BigIntField(null=True)

    class Meta:
        table = "points_rules"


class CheckIn(Model):
    """A daily check-in (签到): unique per customer and clinic-local day."""

    id = fields.BigIntField(primary_key=True)
    customer = fields.ForeignKeyField("kernel.Customer", related_name=False, on_delete=fields.RESTRICT)
    local_date = fields.DateField()
    streak = fields.IntField()
    day_in_cycle = fields.IntField()
    points = fields.IntField()
    makeup = fields.BooleanField(default=False)
    created_at = fields.DatetimeField()

    class Meta:
        table = "points_check_in"
        unique_together = (("customer_id", "local_date"),)
        indexes = (("customer_id", "makeup", "created_at"),)


class ExpiryReminder(Model):
    """A reminder that points expire soon: one per customer and expiry moment."""

    id = fields.BigIntField(primary_key=True)
    customer = fields.ForeignKeyField("kernel.Customer", related_name=False, on_delete=fields.RESTRICT)
    expires_at = fields.DatetimeField()
    points = fields.IntField()
    created_at = fields.DatetimeField()
    sent_at = fields.DatetimeField(null=True)

    class Meta:
        table = "points_expiry_reminder"
        unique_together = (("customer_id", "expires_at"),)


class VoucherStatus(StrEnum):
    issued = "issued"
    redeemed = "redeemed"
    expired = "expired"
    cancelled = "cancelled"


class Voucher(Model):
    """An entitlement (券) with an unguessable code, redeemed once at a branch (核销).

    Issued by mall redemptions, group buys and referral welcomes alike: `source_type`/`source_id`
    name what issued it, `seq` numbers the vouchers of one source so issuing is idempotent.
    """

    id = fields.BigIntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True)
    customer = fields.ForeignKeyField("kernel.Customer", related_name=False, on_delete=fields.RESTRICT)
    source_type = fields.CharField(max_length=32)
    source_id = fields.CharField(max_length=64)
    seq = fields.IntField()
    title = fields.CharField(max_length=128)
    status = fields.CharEnumField(VoucherStatus, max_length=16, default=VoucherStatus.issued)
    valid_until = fields.DatetimeField()
    # Branches where it can be redeemed; empty means any branch.
    branch_ids = fields.JSONField(default=list)
    service_id = fields.BigIntField(null=True)
    issued_at = fields.DatetimeField()
    redeemed_at = fields.DatetimeField(null=True)
    redeemed_branch_id = fields.BigIntField(null=True)
    redeemed_by_staff_id = fields.BigIntField(null=True)
    cancelled_at = fields.DatetimeField(null=True)
    cancel_reason = fields.CharField(max_length=255, default="")
    expired_at = fields.DatetimeField(null=True)

    class Meta:
        table = "voucher"
        unique_together = (("source_type", "source_id", "seq"),)
        indexes = (("customer_id", "status"), ("status", "valid_until"))

    @property
    def qr_text(self) -> str:
        # What the mini-program renders as a QR code; the front desk's scanner reads the code back.
        return f"clinic-voucher:{self.code}"


class MallItemKind(StrEnum):
    service_voucher = "service_voucher"
    gift = "gift"
    coupon = "coupon"


class MallItem(Model):
    """Something customers buy with points (积分商品)."""

    id = fields.BigIntField(primary_key=True)
    kind = fields.CharEnumField(MallItemKind, max_length=16)
    title = fields.CharField(max_length=128)
    description = fields.TextField(default="")
    image_urls = fields.JSONField(default=list)
    points_price = fields.IntField()
    # Units ever offered; reserved = units held by live redemptions. Available = total - reserved.
    stock_total = fields.IntField()
    stock_reserved = fields.IntField(default=0)
    limit_per_customer = fields.IntField(null=True)
    limit_per_month = fields.IntField(null=True)
    available_from = fields.DatetimeField(null=True)
    available_until = fields.DatetimeField(null=True)
    min_tier_level = fields.IntField(null=True)
    voucher_valid_days = fields.IntField(default=30)
    branch_ids = fields.JSONField(default=list)
    service_id = fields.BigIntField(null=True)
    on_shelf = fields.BooleanField(default=False)
    sort_order = fields.IntField(default=0)
    archived = fields.BooleanField(default=False)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "mall_item"
        indexes = (("on_shelf", "sort_order"),)


class RedemptionStatus(StrEnum):
    active = "active"
    cancelled = "cancelled"


class MallRedemption(Model):
    """A customer's exchange of points for an item: the item's terms are copied, so editing it changes nothing here."""

    id = fields.BigIntField(primary_key=True)
    customer = fields.ForeignKeyField("kernel.Customer", related_name=False, on_delete=fields.RESTRICT)
    # No database constraint on purpose: an FK check takes a shared lock on the item row, and a crowd of
    # redemptions holding it and then asking for the exclusive lock (the stock update) deadlock. Items
    # are never deleted (only archived), so the reference stays valid.
    item = fields.ForeignKeyField(
        "points_mall.MallItem", related_name=False, on_delete=fields.RESTRICT, db_constraint=False
    )
    idempotency_key = fields.CharField(max_length=64)
    quantity = fields.IntField()
    unit_points = fields.IntField()
    points_spent = fields.IntField()
    item_title = fields.CharField(max_length=128)
    item_kind = fields.CharEnumField(MallItemKind, max_length=16)
    status = fields.CharEnumField(RedemptionStatus, max_length=16, default=RedemptionStatus.active)
    cancelled_quantity = fields.IntField(default=0)
    ledger_ref = fields.CharField(max_length=128)
    created_at = fields.DatetimeField()
    cancelled_at = fields.DatetimeField(null=True)

    class Meta:
        table = "mall_redemption"
        unique_together = (("customer_id", "idempotency_key"),)
        indexes = (("item_id", "customer_id", "status"), ("created_at",))
