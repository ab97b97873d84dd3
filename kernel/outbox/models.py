"""The outbox table: one row per job to run once the transaction that wrote it has committed."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class OutboxMessage(Model):
    id = fields.BigIntField(primary_key=True)
    job_name = fields.CharField(max_length=128)
    args = fields.JSONField(default=list)
    # When the job should run (a group's deadline, a reminder); null means now.
    run_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()
    delivered_at = fields.DatetimeField(null=True)
    attempts = fields.IntField(default=0)
    last_error = fields.CharField(max_length=512, default="")

    class Meta:
        table = "outbox_message"
        indexes = (("delivered_at", "id"),)
