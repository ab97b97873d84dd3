"""Every job of the campaigns room (orders and payments, group buys), for workers/registry.py."""

from campaigns.orders import tasks as order_tasks

FUNCTIONS = [*order_tasks.FUNCTIONS]
CRON_JOBS = [*order_tasks.CRON_JOBS]
