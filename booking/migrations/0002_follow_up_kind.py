"""Follow-up tasks get a kind: "aftercare" calls, and "consultation" calls (咨询回访) the CRM room creates."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.migrations.constraints import UniqueConstraint

class Migration(migrations.Migration):
    dependencies = [('booking', '0001_initial'), ('kernel', '0004_customer_phone_last4')]

    initial = False

    operations = [
        ops.RemoveConstraint(
            model_name='FollowUpTask',
            name=None,
            fields=['booking_id', 'days_after'],
        ),
        ops.AddField(
            model_name='FollowUpTask',
            name='kind',
            field=fields.CharField(default='aftercare', max_length=16),
        ),
        ops.AddConstraint(
            model_name='FollowUpTask',
            constraint=UniqueConstraint(fields=('booking_id', 'kind', 'days_after'), name=None),
        ),
    ]
