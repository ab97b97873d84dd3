from tortoise import migrations
from tortoise.migrations import operations as ops
from orders.models import NotificationOutcome, OrderStatus, RefundStatus
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('kernel', '0001_initial')]

    initial = True

    operations = [
        ops.CreateModel(
            name='Order',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('customer', fields.ForeignKeyField('kernel.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('out_trade_no', fields.CharField(unique=True, max_length=32)),
                ('description', fields.CharField(max_length=127)),
                ('total_fen', fields.IntField()),
                ('status', fields.CharEnumField(default=OrderStatus.pending_payment, description='pending_payment: pending_payment\npaid: paid\nfulfilled: fulfilled\nrefunding: refunding\nrefunded: refunded\nclosed: closed', enum_type=OrderStatus, max_length=20)),
                ('transaction_id', fields.CharField(null=True, unique=True, max_length=64)),
                ('prepay_id', fields.CharField(null=True, max_length=128)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('paid_fen', fields.IntField(default=0)),
                ('refund_reserved_fen', fields.IntField(default=0)),
                ('refunded_fen', fields.IntField(default=0)),
                ('close_reason', fields.CharField(default='', max_length=32)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('paid_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('paid_handled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('fulfilled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('closed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('refunded_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'shop_order', 'app': 'campaigns', 'indexes': [Index(fields=['customer_id', 'id']), Index(fields=['status', 'expires_at']), Index(fields=['created_at'])], 'pk_attr': 'id', 'table_description': "A customer's order: what they buy (lines), what they owe in fen, and where the payment stands."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OrderLine',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('order', fields.ForeignKeyField('campaigns.Order', source_field='order_id', db_constraint=True, to_field='id', related_name='lines', on_delete=OnDelete.RESTRICT)),
                ('kind', fields.CharField(max_length=32)),
                ('ref_id', fields.BigIntField(null=True)),
                ('title', fields.CharField(max_length=127)),
                ('quantity', fields.IntField()),
                ('unit_price_fen', fields.IntField()),
                ('amount_fen', fields.IntField()),
                ('released_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'shop_order_line', 'app': 'campaigns', 'indexes': [Index(fields=['kind', 'ref_id'])], 'pk_attr': 'id', 'table_description': 'One thing bought: its kind says which room holds it (whose hooks release or fulfil it), ref_id which row.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PaymentEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('source', fields.CharField(max_length=16)),
                ('notification_id', fields.CharField(default='', max_length=64)),
                ('event_type', fields.CharField(default='', max_length=48)),
                ('out_trade_no', fields.CharField(default='', db_index=True, max_length=32)),
                ('out_refund_no', fields.CharField(default='', max_length=64)),
                ('transaction_id', fields.CharField(default='', max_length=64)),
                ('amount_fen', fields.IntField(null=True)),
                ('outcome', fields.CharEnumField(description='applied: applied\nduplicate: duplicate\npaid_after_close: paid_after_close\nnot_success: not_success\nunknown_order: unknown_order\namount_mismatch: amount_mismatch\nmerchant_mismatch: merchant_mismatch', enum_type=NotificationOutcome, max_length=24)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'shop_payment_event', 'app': 'campaigns', 'pk_attr': 'id', 'table_description': 'Every authentic notification (and reconciliation answer) we acted on, with what we did: the audit trail.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Refund',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('order', fields.ForeignKeyField('campaigns.Order', source_field='order_id', db_constraint=True, to_field='id', related_name='refunds', on_delete=OnDelete.RESTRICT)),
                ('out_refund_no', fields.CharField(unique=True, max_length=64)),
                ('reason', fields.CharField(max_length=32)),
                ('amount_fen', fields.IntField()),
                ('status', fields.CharEnumField(default=RefundStatus.pending, description='pending: pending\nprocessing: processing\nsucceeded: succeeded\nclosed: closed\nabnormal: abnormal\nfailed: failed', enum_type=RefundStatus, max_length=16)),
                ('refund_id', fields.CharField(null=True, max_length=64)),
                ('attempts', fields.IntField(default=0)),
                ('last_error', fields.CharField(default='', max_length=255)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('succeeded_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'shop_refund', 'app': 'campaigns', 'indexes': [Index(fields=['status', 'updated_at'])], 'pk_attr': 'id', 'table_description': 'A refund of all or part of an order, its out_refund_no derived from the order and the reason.'},
            bases=['Model'],
        ),
    ]
