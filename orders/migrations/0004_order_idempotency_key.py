"""A catalogue purchase may carry an Idempotency-Key: nullable columns and a unique key per customer."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.migrations.constraints import UniqueConstraint

class Migration(migrations.Migration):
    dependencies = [('orders', '0003_money_products')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Order',
            name='idempotency_key',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddField(
            model_name='Order',
            name='request_digest',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddConstraint(
            model_name='Order',
            constraint=UniqueConstraint(fields=('customer_id', 'idempotency_key'), name=None),
        ),
    ]
