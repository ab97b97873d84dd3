"""Coupons from the CRM: an outreach and the birthday gift may name a coupon template, and staff set
the coupon rules of occasions (birthday, after a visit)."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from crm.models import CouponOccasion
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('crm', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='CouponRule',
            fields=[
                ('occasion', fields.CharEnumField(primary_key=True, unique=True, db_index=True, description='birthday: birthday\nafter_visit: after_visit', enum_type=CouponOccasion, max_length=16)),
                ('coupon_template_id', fields.BigIntField(null=True)),
                ('with_voucher', fields.BooleanField(default=True)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_by_staff_id', fields.BigIntField(null=True)),
            ],
            options={'table': 'crm_coupon_rule', 'app': 'crm', 'pk_attr': 'occasion', 'table_description': 'The coupon template the CRM gives on an occasion (birthday, a completed visit), set by staff.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='BirthdayGift',
            name='coupon_id',
            field=fields.BigIntField(null=True),
        ),
        ops.AddField(
            model_name='Outreach',
            name='coupon_template_id',
            field=fields.BigIntField(null=True),
        ),
        ops.AddField(
            model_name='Outreach',
            name='coupons_issued',
            field=fields.IntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name='OutreachRecipient',
            name='coupon_id',
            field=fields.BigIntField(null=True),
        ),
        ops.AddField(
            model_name='OutreachRecipient',
            name='coupon_outcome',
            field=fields.CharField(default='', db_default='', max_length=16),
        ),
    ]
