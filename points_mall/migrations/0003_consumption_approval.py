from tortoise import migrations
from tortoise.migrations import operations as ops
from points_mall.models import ApprovalStatus
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('kernel', '0001_initial'), ('points_mall', '0002_redemption_item_without_fk')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ConsumptionApproval',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('customer', fields.ForeignKeyField('kernel.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('amount_fen', fields.BigIntField()),
                ('external_ref', fields.CharField(unique=True, max_length=128)),
                ('branch_id', fields.BigIntField(null=True)),
                ('service_id', fields.BigIntField(null=True)),
                ('recorded_by_id', fields.BigIntField()),
                ('status', fields.CharEnumField(default=ApprovalStatus.pending, description='pending: pending\napproved: approved\nrejected: rejected', enum_type=ApprovalStatus, max_length=16)),
                ('decided_by_id', fields.BigIntField(null=True)),
                ('decided_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('decision_note', fields.CharField(default='', max_length=200)),
                ('consumption_id', fields.BigIntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'points_consumption_approval', 'app': 'points_mall', 'indexes': [Index(fields=['status', 'id'])], 'pk_attr': 'id', 'table_description': 'A consumption recorded above the approval threshold, waiting for a second staff member.'},
            bases=['Model'],
        ),
    ]
