"""/metrics: Prometheus text with request latency by route template, jobs by name and outcome,
the outbox's backlog and lag, and the database pool."""

from __future__ import annotations

import re
from datetime import timedelta

from kernel import clock
from kernel.outbox.models import OutboxMessage
from kernel.settings import get_settings
from tests.factories import customer_headers, make_customer, run_worker


def _value(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_request_latency_is_labelled_by_route_template_not_by_url(client):
    customer = await make_customer()
    for campaign_id in (987654, 987655):
        assert (await client.get(f"/app/campaigns/{campaign_id}", headers=customer_headers(customer))).status_code == 404
    text = (await client.get("/metrics")).text
    assert "/app/campaigns/987654" not in text
    count = _value(text, "clinic_request_duration_seconds_count", path="/app/campaigns/{campaign_id}",
                   method="GET", status_code="404")
    assert count is not None and count >= 2
    assert _value(text, "clinic_request_duration_seconds_bucket", path="/app/campaigns/{campaign_id}",
                  le="0.005") is not None


async def test_refused_requests_are_counted_by_status_and_leave_nothing_in_progress(client):
    before = _value((await client.get("/metrics")).text, "clinic_requests_total", path="/app/points",
                    method="GET", status_code="401") or 0
    for _ in range(3):
        assert (await client.get("/app/points")).status_code == 401  # no token: refused by the guard
    text = (await client.get("/metrics")).text
    assert _value(text, "clinic_requests_total", path="/app/points", method="GET", status_code="401") == before + 3
    assert _value(text, "clinic_requests_in_progress", path="/app/points", method="GET") == 0
    assert 'path="/metrics"' not in text


async def test_jobs_are_counted_by_name_and_outcome(client, redis):
    before = (await client.get("/metrics")).text
    ok_before = _value(before, "clinic_jobs_total", job="kernel.prune_outbox", outcome="succeeded") or 0
    failed_before = _value(before, "clinic_jobs_total", job="kernel.erase_customer", outcome="failed") or 0
    queue = get_settings().redis.queue_name
    await redis.enqueue_job("kernel.prune_outbox", _queue_name=queue)
    await redis.enqueue_job("kernel.erase_customer", "not-a-customer-id", _queue_name=queue)
    worker = await run_worker(redis)
    assert worker.jobs_complete == 1 and worker.jobs_failed == 1
    text = (await client.get("/metrics")).text
    assert _value(text, "clinic_jobs_total", job="kernel.prune_outbox", outcome="succeeded") == ok_before + 1
    assert _value(text, "clinic_jobs_total", job="kernel.erase_customer", outcome="failed") == failed_before + 1


async def test_outbox_lag_is_the_age_of_the_oldest_due_message(client):
    now = clock.now()
    due = await OutboxMessage.create(job_name="kernel.prune_outbox", args=[], created_at=now - timedelta(seconds=90))
    later = await OutboxMessage.create(job_name="kernel.prune_outbox", args=[], created_at=now,
                                       run_at=now + timedelta(hours=1))
    try:
        text = (await client.get("/metrics")).text
        assert _value(text, "clinic_outbox_due_messages") >= 1
        assert _value(text, "clinic_outbox_lag_seconds") >= 89
    finally:
        await OutboxMessage.filter(id__in=[due.id, later.id]).delete()
    text = (await client.get("/metrics")).text
    # Deferred messages (run_at in the future) are not lag.
    assert _value(text, "clinic_outbox_lag_seconds") < 89


async def test_pool_usage_is_reported(client):
    text = (await client.get("/metrics")).text
    assert _value(text, "clinic_db_pool_max") >= 1
    assert re.search(r"^clinic_db_pool_in_use \d", text, re.M)


# --- who may scrape ------------------------------------------------------------------------------

METRICS_TOKEN = "scrape-" + "t" * 40


async def test_with_a_metrics_token_only_its_bearer_reads_the_figures():
    """METRICS_TOKEN set: /metrics answers 401 (the error format, no figures) without it or with another."""
    import msgspec

    from api.app import create_app
    from tests.conftest import serve_in_loop

    settings = get_settings()
    guarded = create_app(msgspec.structs.replace(
        settings, app=msgspec.structs.replace(settings.app, metrics_token=METRICS_TOKEN)), embedded_worker=False)
    async with serve_in_loop(guarded) as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": METRICS_TOKEN},
                        {"Authorization": f"Basic {METRICS_TOKEN}"}):
            refused = await http.get("/metrics", headers=headers)
            assert refused.status_code == 401, (headers, refused.text)
            assert refused.json()["code"] == "metrics_token_required"
            assert "clinic_" not in refused.text
        allowed = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert allowed.status_code == 200 and "clinic_db_pool_max" in allowed.text
