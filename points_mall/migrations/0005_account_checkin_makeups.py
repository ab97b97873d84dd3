"""The account counts its make-up check-ins, so a check-in that read yesterday's streak before a make-up
committed notices it when it credits (points_mall.checkin) instead of saving a broken streak."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('kernel', '0001_initial'), ('points_mall', '0004_points_lot_index_customer_id')]

    initial = False

    operations = [
        ops.AddField(
            model_name='PointsAccount',
            name='checkin_makeups',
            field=fields.IntField(default=0, db_default=0),
        ),
    ]
