"""The birthday gift records why its coupon is missing, so a later run of the month gives the coupon alone."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('crm', '0002_crm_coupons')]

    initial = False

    operations = [
        ops.AddField(
            model_name='BirthdayGift',
            name='coupon_outcome',
            field=fields.CharField(default='', db_default='', max_length=16),
        ),
    ]
