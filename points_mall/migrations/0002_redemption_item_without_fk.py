"""Drop the database FK from mall_redemption.item_id (an FK check share-locks the hot item row; see models.py)."""

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops


async def drop_item_foreign_key(apps, schema_editor) -> None:
    client = schema_editor.client
    # AlterField records db_constraint=False in the state but leaves the constraint in MySQL/MariaDB.
    # SQLite takes no row locks, so its constraint can stay.
    if client.capabilities.dialect != "mysql":
        return
    _, rows = await client.execute_query(
        "SELECT CONSTRAINT_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME = 'mall_redemption' AND COLUMN_NAME = 'item_id' AND REFERENCED_TABLE_NAME = 'mall_item'"
    )
    for row in rows:
        name = row["CONSTRAINT_NAME"]
        await client.execute_script(f"ALTER TABLE `mall_redemption` DROP FOREIGN KEY `{name}`")


class Migration(migrations.Migration):
    dependencies = [('kernel', '0001_initial'), ('points_mall', '0001_initial')]

    initial = False

    operations = [
        ops.AlterField(
            model_name='MallRedemption',
            name='item',
            field=fields.ForeignKeyField('points_mall.MallItem', source_field='item_id', db_constraint=False, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT),
        ),
        ops.RunPython(drop_item_foreign_key, ops.RunPython.noop),
    ]
