from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from campaigns.groupbuy.models import CampaignKind, CampaignStatus, EntryRole, EntryStatus, GroupStatus
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('campaigns', '0001_initial'), ('kernel', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Campaign',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('kind', fields.CharEnumField(description='category: category\nbestie_card: bestie_card', enum_type=CampaignKind, max_length=16)),
                ('title', fields.CharField(max_length=64)),
                ('description', fields.CharField(default='', max_length=500)),
                ('status', fields.CharEnumField(default=CampaignStatus.draft, description='draft: draft\nscheduled: scheduled\nlive: live\nended: ended\ncancelled: cancelled', enum_type=CampaignStatus, max_length=16)),
                ('starts_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('ends_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('group_size', fields.IntField(default=1)),
                ('time_limit_minutes', fields.IntField(default=0)),
                ('per_customer_limit', fields.IntField(default=1)),
                ('new_customers_only', fields.BooleanField(default=False)),
                ('virtual_min_paid', fields.IntField(null=True)),
                ('leader_bonus_points', fields.IntField(default=0)),
                ('voucher_valid_days', fields.IntField(default=90)),
                ('branch_ids', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_by', fields.BigIntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('ended_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('settled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'gb_campaign', 'app': 'campaigns', 'indexes': [Index(fields=['status', 'ends_at'])], 'pk_attr': 'id', 'table_description': 'A time-boxed group-buy offer configured by campaign staff.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CampaignEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('campaign_id', fields.BigIntField(db_index=True)),
                ('sku_id', fields.BigIntField()),
                ('group_id', fields.BigIntField(null=True, db_index=True)),
                ('customer_id', fields.BigIntField(db_index=True)),
                ('order_id', fields.BigIntField(unique=True)),
                ('role', fields.CharEnumField(description='leader: leader\nmember: member\nbuyer: buyer', enum_type=EntryRole, max_length=16)),
                ('quantity', fields.IntField(default=1)),
                ('unit_price_fen', fields.IntField()),
                ('status', fields.CharEnumField(default=EntryStatus.held, description='held: held\npaid: paid\nfulfilled: fulfilled\nreleased: released\nrefunding: refunding\nrefunded: refunded', enum_type=EntryStatus, max_length=16)),
                ('active_slot', fields.SmallIntField(null=True, default=1)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('paid_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'gb_entry', 'app': 'campaigns', 'unique_together': (('group_id', 'customer_id', 'active_slot'),), 'indexes': [Index(fields=['campaign_id', 'status'])], 'pk_attr': 'id', 'table_description': "A customer's place in a campaign: a seat in a bestie group or a category purchase, sold by one order."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CampaignQuota',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('campaign_id', fields.BigIntField()),
                ('customer_id', fields.BigIntField()),
                ('units', fields.IntField(default=0)),
            ],
            options={'table': 'gb_quota', 'app': 'campaigns', 'unique_together': (('campaign_id', 'customer_id'),), 'pk_attr': 'id', 'table_description': 'Units a customer holds or owns in a campaign, kept under the per-customer limit by a conditional update.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CampaignSku',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('campaign', fields.ForeignKeyField('campaigns.Campaign', source_field='campaign_id', db_constraint=True, to_field='id', related_name='skus', on_delete=OnDelete.RESTRICT)),
                ('title', fields.CharField(max_length=64)),
                ('service_id', fields.BigIntField(null=True)),
                ('original_price_fen', fields.IntField()),
                ('group_price_fen', fields.IntField()),
                ('stock_total', fields.IntField()),
                ('stock_left', fields.IntField()),
                ('sold_units', fields.IntField(default=0)),
                ('tiers', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('final_price_fen', fields.IntField(null=True)),
                ('position', fields.IntField(default=0)),
            ],
            options={'table': 'gb_sku', 'app': 'campaigns', 'pk_attr': 'id', 'table_description': 'What a campaign sells: a service at a group price, with its stock and optional tier prices (阶梯价).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Group',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('campaign', fields.ForeignKeyField('campaigns.Campaign', source_field='campaign_id', db_constraint=True, to_field='id', related_name='groups', on_delete=OnDelete.RESTRICT)),
                ('sku_id', fields.BigIntField()),
                ('leader_id', fields.BigIntField()),
                ('size', fields.IntField()),
                ('seats_taken', fields.IntField(default=1)),
                ('paid_count', fields.IntField(default=0)),
                ('status', fields.CharEnumField(default=GroupStatus.pending, description='pending: pending\nopen: open\nsucceeded: succeeded\nfailed: failed', enum_type=GroupStatus, max_length=16)),
                ('deadline', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('open_slot', fields.SmallIntField(null=True, default=1)),
                ('virtual', fields.BooleanField(default=False)),
                ('share_views', fields.IntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('settled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'gb_group', 'app': 'campaigns', 'unique_together': (('campaign_id', 'leader_id', 'open_slot'),), 'indexes': [Index(fields=['status', 'deadline'])], 'pk_attr': 'id', 'table_description': 'One bestie-card group (团): opened by a leader, joined by friends until full or the deadline.'},
            bases=['Model'],
        ),
    ]
