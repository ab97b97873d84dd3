"""The transactional outbox: jobs recorded with the business change and relayed to arq after commit."""

from kernel.outbox.service import add_to_outbox, enqueue

__all__ = ["add_to_outbox", "enqueue"]
