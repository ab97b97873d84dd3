"""Fixtures of the points room's tests."""

from __future__ import annotations

import pytest

from kernel import clock
from kernel.outbox.models import OutboxMessage
from workers import registry


@pytest.fixture(autouse=True)
async def park_unregistered_contract_jobs():
    """Until the referrals room is merged nobody registers `referrals.*`; mark those outbox rows delivered
    after each test so a later burst worker elsewhere in the suite does not count them as failed jobs."""
    yield
    names = {f.name for f in registry.functions()}
    if "referrals.consumption_recorded" not in names:
        await OutboxMessage.filter(job_name__startswith="referrals.", delivered_at=None).update(
            delivered_at=clock.now()
        )
