"""Background work: the arq WorkerSettings, the cron schedule and the outbox relay."""
