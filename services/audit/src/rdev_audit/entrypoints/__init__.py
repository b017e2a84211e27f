"""entrypoints of the audit service."""
