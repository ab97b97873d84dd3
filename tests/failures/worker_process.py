"""An arq worker as its own OS process, for the failure tests (run: python -m tests.failures.worker_process).

It is the production worker (`workers.settings`: every job, the outbox relay, the gateway and database
from the environment) with three test settings: no cron jobs (the tests enqueue what the cron would),
short job timeouts, and arq's in-progress key kept for timeout + 1 s instead of arq's
max-timeout + 10 s, so a job whose worker was SIGKILLed is picked up again within seconds, not minutes.
"""

from __future__ import annotations

import logging
import os

from arq import func
from arq.connections import RedisSettings
from arq.worker import Worker

from kernel.settings import get_settings
from workers import registry
from workers.settings import worker_kwargs


def build_worker() -> Worker:
    timeout = float(os.environ.get("FAILURE_JOB_TIMEOUT", "3"))
    functions = [
        func(f.coroutine, name=f.name, timeout=timeout, max_tries=f.max_tries) for f in registry.functions()
    ]
    worker = Worker(
        **worker_kwargs(
            redis_settings=RedisSettings.from_dsn(get_settings().redis.url),
            functions=functions,
            cron_jobs=[],
            poll_delay=0.05,
            handle_signals=True,
        )
    )
    # arq sets `arq:in-progress:<job id>` for this long when a job starts; while it lives no other
    # worker starts the job. In production it is 1800 + 10 s (the longest job timeout).
    worker.in_progress_timeout_s = timeout + 1
    return worker


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    build_worker().run()
