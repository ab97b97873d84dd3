"""The shared kernel: settings, database, errors, clock, identity, WeChat adapters and the outbox."""
