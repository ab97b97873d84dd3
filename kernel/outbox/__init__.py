"""The transactional outbox: jobs recorded with the business change and relayed to arq after commit."""

from kernel.outbox.service import enqueue

__all__ = ["enqueue"]
