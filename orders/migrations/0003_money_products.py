"""Money products (0.2): catalogue, member prices, checkout rules, coupons, stored value, package cards,
refund parts; and the checkout columns of orders and refunds (nullable or defaulted: old rows read the same)."""

from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from orders.product_models import CouponKind, CouponStatus, PackageCardStatus, ProductKind
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('kernel', '0003_drop_signup_referral_code'), ('orders', '0002_refund_idempotency_key')]

    initial = False

    operations = [
        ops.CreateModel(
            name='CheckoutRule',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('points_per_yuan', fields.IntField(default=100)),
                ('points_max_share_bp', fields.IntField(default=5000)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'shop_checkout_rule', 'app': 'orders', 'pk_attr': 'id', 'table_description': 'The one row of checkout settings staff change: points as cash and its cap.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CouponTemplate',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=64)),
                ('kind', fields.CharEnumField(description='cash_off: cash_off\npercent_off: percent_off\nfree_service: free_service', enum_type=CouponKind, max_length=16)),
                ('value_fen', fields.IntField(default=0)),
                ('threshold_fen', fields.IntField(default=0)),
                ('discount_bp', fields.IntField(default=0)),
                ('free_product_id', fields.BigIntField(null=True)),
                ('product_ids', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('categories', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('valid_days', fields.IntField(default=30)),
                ('valid_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('per_customer_limit', fields.IntField(default=1)),
                ('claimable', fields.BooleanField(default=False)),
                ('is_active', fields.BooleanField(default=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'shop_coupon_template', 'app': 'orders', 'pk_attr': 'id', 'table_description': 'What a coupon gives and to whom it may be given (优惠券模板).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Coupon',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('template', fields.ForeignKeyField('orders.CouponTemplate', source_field='template_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('customer', fields.ForeignKeyField('kernel.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('source', fields.CharField(max_length=16)),
                ('source_ref', fields.CharField(max_length=64)),
                ('status', fields.CharEnumField(default=CouponStatus.available, description='available: available\nlocked: locked\nused: used\nvoid: void', enum_type=CouponStatus, max_length=16)),
                ('valid_from', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('valid_until', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('order_id', fields.BigIntField(null=True)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'shop_coupon', 'app': 'orders', 'unique_together': (('source', 'source_ref', 'customer'),), 'indexes': [Index(fields=['customer_id', 'status'])], 'pk_attr': 'id', 'table_description': 'A coupon held by one customer, unique per (source, source_ref, customer), so issuing twice gives one.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PackageCard',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('code', fields.CharField(unique=True, max_length=32)),
                ('customer', fields.ForeignKeyField('kernel.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('order_id', fields.BigIntField()),
                ('line_id', fields.BigIntField(unique=True)),
                ('product_id', fields.BigIntField()),
                ('title', fields.CharField(max_length=127)),
                ('branch_id', fields.BigIntField(null=True)),
                ('paid_fen', fields.IntField()),
                ('sessions_total', fields.IntField()),
                ('status', fields.CharEnumField(default=PackageCardStatus.active, description='active: active\nrefunded: refunded', enum_type=PackageCardStatus, max_length=16)),
                ('expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'shop_package_card', 'app': 'orders', 'indexes': [Index(fields=['customer_id', 'id'])], 'pk_attr': 'id', 'table_description': 'A package or course card (套餐卡/次卡) bought by an order line: sessions redeemed at a branch.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PackageSession',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('card', fields.ForeignKeyField('orders.PackageCard', source_field='card_id', db_constraint=True, to_field='id', related_name='sessions', on_delete=OnDelete.RESTRICT)),
                ('seq', fields.IntField()),
                ('title', fields.CharField(max_length=127)),
                ('value_fen', fields.IntField()),
                ('redeemed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('redeemed_branch_id', fields.BigIntField(null=True)),
                ('redeemed_by_id', fields.BigIntField(null=True)),
                ('refunded_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('refund_id', fields.BigIntField(null=True)),
            ],
            options={'table': 'shop_package_session', 'app': 'orders', 'unique_together': (('card', 'seq'),), 'pk_attr': 'id', 'table_description': 'One session of a card: redeemed once (核销), or refunded once, never both.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Product',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('kind', fields.CharEnumField(description='service: service\nproduct: product\npackage: package\ncourse: course\ntopup: topup', enum_type=ProductKind, max_length=16)),
                ('name', fields.CharField(max_length=127)),
                ('category', fields.CharField(default='', max_length=32)),
                ('description', fields.CharField(default='', max_length=500)),
                ('price_fen', fields.IntField()),
                ('branch_id', fields.BigIntField(null=True)),
                ('items', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('validity_days', fields.IntField(null=True)),
                ('topup_bonus_fen', fields.IntField(default=0)),
                ('is_active', fields.BooleanField(default=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'shop_product', 'app': 'orders', 'indexes': [Index(fields=['is_active', 'kind'])], 'pk_attr': 'id', 'table_description': 'Something that can be bought online, priced in fen (商品/项目/套餐/次卡/储值方案).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ProductMemberPrice',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('product', fields.ForeignKeyField('orders.Product', source_field='product_id', db_constraint=True, to_field='id', related_name='member_prices', on_delete=OnDelete.CASCADE)),
                ('tier_id', fields.BigIntField()),
                ('price_fen', fields.IntField()),
            ],
            options={'table': 'shop_product_member_price', 'app': 'orders', 'unique_together': (('product', 'tier_id'),), 'pk_attr': 'id', 'table_description': 'The price a member tier pays for a product (会员价), a tier that is switched off gives nothing.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RefundPart',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('refund', fields.ForeignKeyField('orders.Refund', source_field='refund_id', db_constraint=True, to_field='id', related_name='parts', on_delete=OnDelete.RESTRICT)),
                ('source', fields.CharField(max_length=16)),
                ('amount_fen', fields.IntField()),
                ('points', fields.IntField(default=0)),
            ],
            options={'table': 'shop_refund_part', 'app': 'orders', 'unique_together': (('refund', 'source'),), 'pk_attr': 'id', 'table_description': 'What one refund returns to one source (stored value, points), returned when the refund is confirmed.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='StoredValueAccount',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('customer', fields.OneToOneField('kernel.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('principal_fen', fields.BigIntField(default=0)),
                ('bonus_fen', fields.BigIntField(default=0)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'shop_stored_value_account', 'app': 'orders', 'pk_attr': 'id', 'table_description': 'The stored value of a customer (储值): principal paid and bonus given, kept apart.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='StoredValueEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('customer', fields.ForeignKeyField('kernel.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('kind', fields.CharField(max_length=16)),
                ('principal_delta', fields.BigIntField()),
                ('bonus_delta', fields.BigIntField()),
                ('ref', fields.CharField(unique=True, max_length=96)),
                ('order_id', fields.BigIntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'shop_stored_value_entry', 'app': 'orders', 'indexes': [Index(fields=['customer_id', 'id']), Index(fields=['created_at'])], 'pk_attr': 'id', 'table_description': 'Append-only ledger of stored value: the account equals the sum of its entries (each ref once).'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Order',
            name='coupon_fen',
            field=fields.IntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name='Order',
            name='coupon_id',
            field=fields.BigIntField(null=True),
        ),
        ops.AddField(
            model_name='Order',
            name='list_fen',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='Order',
            name='member_discount_fen',
            field=fields.IntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name='Order',
            name='points_cash_fen',
            field=fields.IntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name='Order',
            name='points_used',
            field=fields.IntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name='Order',
            name='stored_value_fen',
            field=fields.IntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name='Order',
            name='wechat_fen',
            field=fields.IntField(null=True),
        ),
        ops.AlterModelOptions(
            name='Refund',
            options={'table': 'shop_refund', 'app': 'orders', 'indexes': [Index(fields=['status', 'updated_at'])], 'pk_attr': 'id', 'table_description': 'A refund of all or part of an order.'},
        ),
        ops.AddField(
            model_name='Refund',
            name='wechat_fen',
            field=fields.IntField(null=True),
        ),
    ]
