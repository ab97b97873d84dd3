"""Staff refunds carry the Idempotency-Key the client sent, and the amount it asked for."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('orders', '0001_initial')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Refund',
            name='idempotency_key',
            field=fields.CharField(null=True, unique=True, max_length=64),
        ),
        ops.AddField(
            model_name='Refund',
            name='requested_fen',
            field=fields.IntField(null=True),
        ),
    ]
