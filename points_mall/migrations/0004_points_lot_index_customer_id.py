"""Lock a customer's lots through (customer_id, id), a key a spend never changes, instead of (customer_id, remaining).

The new index is added before the old one is dropped: the customer foreign key needs an index that starts
with customer_id at every moment, and MariaDB refuses to drop the only one.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('kernel', '0001_initial'), ('points_mall', '0003_consumption_approval')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='PointsLot',
            index=Index(fields=['customer_id', 'id']),
        ),
        ops.RemoveIndex(
            model_name='PointsLot',
            name=None,
            fields=['customer_id', 'remaining'],
        ),
    ]
