"""Every job of the campaigns room (orders and payments, group buys), for workers/registry.py."""

from campaigns.groupbuy import hooks as _line_kinds  # noqa: F401  (registers the group-buy line kind)
from campaigns.groupbuy import tasks as groupbuy_tasks
from orders import tasks as order_tasks

FUNCTIONS = [*order_tasks.FUNCTIONS, *groupbuy_tasks.FUNCTIONS]
CRON_JOBS = [*order_tasks.CRON_JOBS, *groupbuy_tasks.CRON_JOBS]
