"""The arq worker run inside the API process (embedded stack), kept alive across Redis outages.

arq's poll loop ends with an exception when it loses Redis; a separate worker process then exits and its
supervisor (systemd, Kubernetes) starts it again. Inside the API process nobody would, so this module
is that supervisor: it disposes of the dead worker (its relay and heartbeat stop with it) and builds a new
one after a back-off that doubles up to a ceiling, until the API shuts down.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

import structlog
from arq.worker import Worker

log = structlog.get_logger(__name__)

# A worker that ran this long before dying was healthy: the next failure starts the back-off again.
_HEALTHY_RUN_SECONDS = 60.0
_CLOSE_TIMEOUT_SECONDS = 5.0


class EmbeddedWorker:
    """Runs `make_worker()` until `stop()`; restarts it with back-off whenever it ends unexpectedly."""

    def __init__(self, make_worker: Callable[[], Worker], *, base_delay: float = 0.5, max_delay: float = 30.0):
        self._make_worker = make_worker
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._stopping = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.worker: Worker | None = None
        self.restarts = 0
        self.running = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name="embedded-arq-worker")

    async def _supervise(self) -> None:
        delay = self._base_delay
        while not self._stopping.is_set():
            worker = self.worker = self._make_worker()
            started = time.monotonic()
            self.running = True
            try:
                await worker.async_run()
                log.warning("worker.embedded_ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis lost, or a start-up failure: restart after the back-off
                log.warning("worker.embedded_lost", error_type=type(exc).__name__, error=str(exc)[:200],
                            retry_in=delay)
            finally:
                self.running = False
                await _dispose(worker)
            if self._stopping.is_set():
                break
            if time.monotonic() - started > _HEALTHY_RUN_SECONDS:
                delay = self._base_delay
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass
            delay = min(delay * 2, self._max_delay)
            self.restarts += 1
            log.info("worker.embedded_restarting", restarts=self.restarts)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the current worker and the supervisor; bounded, whatever state Redis is in."""
        self._stopping.set()
        if self._task is None:
            return
        self._task.cancel()
        try:
            await asyncio.wait_for(self._task, timeout=timeout)
        except (asyncio.CancelledError, asyncio.TimeoutError, Exception):
            pass


async def _dispose(worker: Worker) -> None:
    """Cancel the worker's jobs and poll loop, then close it; with Redis gone arq's close() fails before
    running our shutdown hook, so run that directly (it is idempotent)."""
    from workers.settings import shutdown

    worker.handle_sig(signal.SIGUSR1)  # cancels running jobs (arq retries them) and the poll loop
    try:
        await asyncio.wait_for(asyncio.shield(worker.close()), timeout=_CLOSE_TIMEOUT_SECONDS)
    except (asyncio.CancelledError, asyncio.TimeoutError, Exception) as exc:
        log.info("worker.embedded_close_incomplete", error_type=type(exc).__name__)
    try:
        await asyncio.wait_for(shutdown(worker.ctx), timeout=_CLOSE_TIMEOUT_SECONDS)
    except (asyncio.TimeoutError, Exception) as exc:
        log.warning("worker.embedded_shutdown_incomplete", error_type=type(exc).__name__)
    pool = worker._pool
    if pool is not None:
        worker._pool = None
        try:
            await asyncio.wait_for(pool.close(close_connection_pool=True), timeout=_CLOSE_TIMEOUT_SECONDS)
        except (asyncio.TimeoutError, Exception):
            pass
