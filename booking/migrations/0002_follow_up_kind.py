"""Follow-up tasks get a kind: "aftercare" calls, and "consultation" calls (咨询回访) the CRM room creates."""

import re

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.migrations.constraints import UniqueConstraint

class RemoveInlineUnique(ops.RemoveConstraint):
    """RemoveConstraint that also works on SQLite, where the unique key was created inside CREATE TABLE and
    cannot be dropped: the table is rebuilt without it (the embedded stack's small follow-up table)."""

    async def database_forward(self, app_label, old_state, new_state, state_editor=None) -> None:
        if not state_editor or state_editor.client.capabilities.dialect != "sqlite":
            return await super().database_forward(app_label, old_state, new_state, state_editor)
        client = state_editor.client
        _, rows = await client.execute_query(
            "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'booking_follow_up' AND sql IS NOT NULL")
        table_sql = next(r["sql"] for r in rows if r["type"] == "table")
        indexes = [r["sql"] for r in rows if r["type"] == "index"]
        rebuilt = re.sub(r',\s*CONSTRAINT "[^"]+" UNIQUE \("booking_id", "days_after"\)', "", table_sql)
        rebuilt = rebuilt.replace('CREATE TABLE "booking_follow_up"', 'CREATE TABLE "booking_follow_up_rebuilt"', 1)
        await client.execute_script(rebuilt)
        await client.execute_script('INSERT INTO "booking_follow_up_rebuilt" SELECT * FROM "booking_follow_up"')
        await client.execute_script('DROP TABLE "booking_follow_up"')
        await client.execute_script('ALTER TABLE "booking_follow_up_rebuilt" RENAME TO "booking_follow_up"')
        for statement in indexes:
            await client.execute_script(statement)


class Migration(migrations.Migration):
    dependencies = [('booking', '0001_initial'), ('kernel', '0004_customer_phone_last4')]

    initial = False

    operations = [
        RemoveInlineUnique(
            model_name='FollowUpTask',
            name=None,
            fields=['booking_id', 'days_after'],
        ),
        ops.AddField(
            model_name='FollowUpTask',
            name='kind',
            field=fields.CharField(default='aftercare', db_default='aftercare', max_length=16),
        ),
        ops.AddConstraint(
            model_name='FollowUpTask',
            constraint=UniqueConstraint(fields=('booking_id', 'kind', 'days_after'), name=None),
        ),
    ]
