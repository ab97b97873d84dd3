"""Customers get a keyed hash of their phone's last four digits (staff search by 尾号), backfilled on upgrade.

The backfill unseals each stored phone with the running SECRET_KEY (the migration runs with the
service's environment) and writes only the hash; the number never leaves the process in clear.
"""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


async def backfill_last4_hashes(apps, schema_editor) -> None:
    from kernel.identity.backfill import fill_phone_last4_hashes

    await fill_phone_last4_hashes(schema_editor.client)


class Migration(migrations.Migration):
    dependencies = [('kernel', '0003_drop_signup_referral_code')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Customer',
            name='phone_last4_hash',
            field=fields.CharField(null=True, db_index=True, max_length=64),
        ),
        ops.RunPython(backfill_last4_hashes, ops.RunPython.noop),
    ]
