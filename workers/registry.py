"""Every room's job functions and cron jobs, named once by import (each room lists them in its tasks.py)."""

from __future__ import annotations

from arq.cron import CronJob
from arq.worker import Function

from booking import tasks as booking_tasks
from campaigns.groupbuy import tasks as groupbuy_tasks
from campaigns.referrals import tasks as referral_tasks
from crm import tasks as crm_tasks
from kernel import tasks as kernel_tasks
from orders import tasks as order_tasks
from points_mall import tasks as points_tasks
from reports import tasks as report_tasks

TASK_MODULES = [kernel_tasks, points_tasks, booking_tasks, order_tasks, groupbuy_tasks, referral_tasks, crm_tasks,
                report_tasks]


def functions() -> list[Function]:
    found = [f for module in TASK_MODULES for f in module.FUNCTIONS]
    names = [f.name for f in found]
    duplicated = {n for n in names if names.count(n) > 1}
    if duplicated:
        raise RuntimeError(f"job names registered twice: {sorted(duplicated)}")
    return found


def cron_jobs() -> list[CronJob]:
    return [job for module in TASK_MODULES for job in module.CRON_JOBS]
