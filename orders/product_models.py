"""Tortoise models of the money products: the catalogue, checkout rules, coupons, stored value, package cards,
and the per-source parts of refunds (tables of the orders app, named shop_*)."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class ProductKind(StrEnum):
    service = "service"  # one treatment (项目), delivered as a one-session card redeemed at a branch
    product = "product"  # a good (skincare), handed over at once
    package = "package"  # 套餐卡: several services, each with its sessions
    course = "course"  # 次卡: N sessions of one service
    topup = "topup"  # 储值: a stored-value top-up plan (pay principal, get principal + bonus)


class Product(Model):
    """Something that can be bought online, priced in fen (商品/项目/套餐/次卡/储值方案)."""

    id = fields.BigIntField(primary_key=True)
    kind = fields.CharEnumField(ProductKind, max_length=16)
    name = fields.CharField(max_length=127)
    category = fields.CharField(max_length=32, default="")
    description = fields.CharField(max_length=500, default="")
    price_fen = fields.IntField()
    # Null: sold and redeemable at every branch; else only this branch's.
    branch_id = fields.BigIntField(null=True)
    # What a card holds: [{"title": ..., "sessions": n}] (service/course: one item; package: several).
    items = fields.JSONField(default=list)
    validity_days = fields.IntField(null=True)
    topup_bonus_fen = fields.IntField(default=0)
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "shop_product"
        indexes = (("is_active", "kind"),)


class ProductMemberPrice(Model):
    """The price a member tier pays for a product (会员价), a tier that is switched off gives nothing."""

    id = fields.BigIntField(primary_key=True)
    product = fields.ForeignKeyField("orders.Product", related_name="member_prices", on_delete=fields.CASCADE)
    tier_id = fields.BigIntField()
    price_fen = fields.IntField()

    class Meta:
        table = "shop_product_member_price"
        unique_together = (("product", "tier_id"),)


class CheckoutRule(Model):
    """The one row of checkout settings staff change: points as cash and its cap."""

    id = fields.IntField(primary_key=True)
    # How many points make one yuan (100 = 1 point per fen).
    points_per_yuan = fields.IntField(default=100)
    # The most of an order (after the coupon) that points may pay, in basis points (5000 = 50%).
    points_max_share_bp = fields.IntField(default=5000)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "shop_checkout_rule"


class CouponKind(StrEnum):
    cash_off = "cash_off"  # 满减: value_fen off once the order reaches threshold_fen
    percent_off = "percent_off"  # 折扣: discount_bp off (2000 = 20% off, i.e. 8折)
    free_service = "free_service"  # 免费项目: the named product's price off an order that holds it


class CouponTemplate(Model):
    """What a coupon gives and to whom it may be given (优惠券模板)."""

    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=64)
    kind = fields.CharEnumField(CouponKind, max_length=16)
    value_fen = fields.IntField(default=0)
    threshold_fen = fields.IntField(default=0)
    discount_bp = fields.IntField(default=0)
    free_product_id = fields.BigIntField(null=True)
    # Empty lists: applies to everything (except top-ups, which no coupon touches).
    product_ids = fields.JSONField(default=list)
    categories = fields.JSONField(default=list)
    # A coupon is valid from issue for valid_days, never past valid_until when that is set.
    valid_days = fields.IntField(default=30)
    valid_until = fields.DatetimeField(null=True)
    per_customer_limit = fields.IntField(default=1)
    claimable = fields.BooleanField(default=False)
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "shop_coupon_template"


class CouponStatus(StrEnum):
    available = "available"
    locked = "locked"  # on an order waiting for payment
    used = "used"  # on a paid order
    void = "void"  # taken back by staff


class Coupon(Model):
    """A coupon held by one customer, unique per (source, source_ref, customer), so issuing twice gives one."""

    id = fields.BigIntField(primary_key=True)
    template = fields.ForeignKeyField("orders.CouponTemplate", related_name=False, on_delete=fields.RESTRICT)
    customer = fields.ForeignKeyField("kernel.Customer", related_name=False, on_delete=fields.RESTRICT)
    source = fields.CharField(max_length=16)  # staff | outreach | birthday | visit | claim | demo
    source_ref = fields.CharField(max_length=64)
    status = fields.CharEnumField(CouponStatus, max_length=16, default=CouponStatus.available)
    valid_from = fields.DatetimeField()
    valid_until = fields.DatetimeField()
    order_id = fields.BigIntField(null=True)
    used_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "shop_coupon"
        unique_together = (("source", "source_ref", "customer"),)
        indexes = (("customer_id", "status"),)


class StoredValueAccount(Model):
    """The stored value of a customer (储值): principal paid and bonus given, kept apart."""

    id = fields.BigIntField(primary_key=True)
    customer = fields.OneToOneField("kernel.Customer", related_name=False, on_delete=fields.RESTRICT)
    principal_fen = fields.BigIntField(default=0)
    bonus_fen = fields.BigIntField(default=0)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "shop_stored_value_account"


class StoredValueEntry(Model):
    """Append-only ledger of stored value: the account equals the sum of its entries (each ref once)."""

    id = fields.BigIntField(primary_key=True)
    customer = fields.ForeignKeyField("kernel.Customer", related_name=False, on_delete=fields.RESTRICT)
    # topup | spend | release | refund | topup_refund | forfeit | refund_failed (a top-up refund ended unpaid)
    kind = fields.CharField(max_length=16)
    principal_delta = fields.BigIntField()
    bonus_delta = fields.BigIntField()
    ref = fields.CharField(max_length=96, unique=True)
    order_id = fields.BigIntField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "shop_stored_value_entry"
        indexes = (("customer_id", "id"), ("created_at",))


class PackageCardStatus(StrEnum):
    active = "active"
    refunded = "refunded"  # every unused session was refunded


class PackageCard(Model):
    """A package or course card (套餐卡/次卡) bought by an order line: sessions redeemed at a branch."""

    id = fields.BigIntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True)
    customer = fields.ForeignKeyField("kernel.Customer", related_name=False, on_delete=fields.RESTRICT)
    order_id = fields.BigIntField()
    line_id = fields.BigIntField(unique=True)
    product_id = fields.BigIntField()
    title = fields.CharField(max_length=127)
    branch_id = fields.BigIntField(null=True)
    # What the card actually cost, after tier price, coupon and points (its sessions' values add up to it).
    paid_fen = fields.IntField()
    sessions_total = fields.IntField()
    status = fields.CharEnumField(PackageCardStatus, max_length=16, default=PackageCardStatus.active)
    expires_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "shop_package_card"
        indexes = (("customer_id", "id"),)


class PackageSession(Model):
    """One session of a card: redeemed once (核销), or refunded once, never both."""

    id = fields.BigIntField(primary_key=True)
    card = fields.ForeignKeyField("orders.PackageCard", related_name="sessions", on_delete=fields.RESTRICT)
    seq = fields.IntField()
    title = fields.CharField(max_length=127)
    value_fen = fields.IntField()
    redeemed_at = fields.DatetimeField(null=True)
    redeemed_branch_id = fields.BigIntField(null=True)
    redeemed_by_id = fields.BigIntField(null=True)
    refunded_at = fields.DatetimeField(null=True)
    refund_id = fields.BigIntField(null=True)

    class Meta:
        table = "shop_package_session"
        unique_together = (("card", "seq"),)


class RefundPart(Model):
    """What one refund returns to one source (stored value, points), returned when the refund is confirmed."""

    id = fields.BigIntField(primary_key=True)
    refund = fields.ForeignKeyField("orders.Refund", related_name="parts", on_delete=fields.RESTRICT)
    source = fields.CharField(max_length=16)  # stored_value | points | coupon
    amount_fen = fields.IntField()
    points = fields.IntField(default=0)

    class Meta:
        table = "shop_refund_part"
        unique_together = (("refund", "source"),)
