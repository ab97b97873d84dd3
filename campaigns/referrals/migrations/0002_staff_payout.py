"""Staff payouts (员工推荐 rewards handed over by the CRM room) join the settlement batches."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from campaigns.referrals.models import StaffPayoutStatus
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('kernel', '0001_initial'), ('referrals', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='StaffPayout',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('staff', fields.ForeignKeyField('kernel.StaffMember', source_field='staff_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('ref', fields.CharField(unique=True, max_length=64)),
                ('amount_fen', fields.BigIntField()),
                ('note', fields.CharField(default='', max_length=255)),
                ('status', fields.CharEnumField(default=StaffPayoutStatus.payable, description='payable: payable\nbatched: batched\npaid: paid', enum_type=StaffPayoutStatus, max_length=16)),
                ('batch', fields.ForeignKeyField('referrals.SettlementBatch', source_field='batch_id', null=True, db_constraint=True, to_field='id', related_name='staff_payouts', on_delete=OnDelete.RESTRICT)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('paid_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'referral_staff_payout', 'app': 'referrals', 'indexes': [Index(fields=['status', 'created_at'])], 'pk_attr': 'id', 'table_description': 'Money owed to a staff member (员工推荐: a share of what the customers they brought spent), handed over'},
            bases=['Model'],
        ),
    ]
