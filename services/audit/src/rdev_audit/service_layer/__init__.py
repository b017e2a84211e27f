"""service layer of the audit service."""
