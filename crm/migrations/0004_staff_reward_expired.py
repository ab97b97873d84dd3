"""A staff reward may be `expired`: a consumption the staff-reward scan met only past its horizon is recorded once,
never paid automatically, instead of being warned about every hour. The column stays VARCHAR(16); only its
comment (the list of statuses) changes, which MariaDB does in place without touching a row."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops

from crm.models import StaffRewardStatus


class Migration(migrations.Migration):
    dependencies = [('crm', '0003_birthday_coupon_outcome')]

    initial = False

    operations = [
        ops.AlterField(
            model_name='StaffReward',
            name='status',
            field=fields.CharEnumField(default=StaffRewardStatus.pending, description='pending: pending\nhanded_over: handed_over\ncancelled: cancelled\nexpired: expired', enum_type=StaffRewardStatus, max_length=16),
        ),
    ]
