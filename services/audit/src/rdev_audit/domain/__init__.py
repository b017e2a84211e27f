"""domain of the audit service."""
