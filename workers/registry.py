"""Collects every room's job functions and cron jobs (each room lists them in its tasks.py)."""

from __future__ import annotations

from arq.cron import CronJob
from arq.worker import Function

from kernel.modules import import_present

_TASK_MODULES = [
    "kernel.tasks",
    "points_mall.tasks",
    "booking.tasks",
    "campaigns.tasks",
    "campaigns.referrals.tasks",
    "crm.tasks",
    "reports.tasks",
]


def _modules():
    return import_present(_TASK_MODULES)


def functions() -> list[Function]:
    found: list[Function] = []
    for module in _modules():
        found.extend(getattr(module, "FUNCTIONS", []))
    names = [f.name for f in found]
    duplicated = {n for n in names if names.count(n) > 1}
    if duplicated:
        raise RuntimeError(f"job names registered twice: {sorted(duplicated)}")
    return found


def cron_jobs() -> list[CronJob]:
    jobs: list[CronJob] = []
    for module in _modules():
        jobs.extend(getattr(module, "CRON_JOBS", []))
    return jobs
