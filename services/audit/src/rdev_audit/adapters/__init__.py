"""adapters of the audit service."""
