"""`python -m rdev_audit`: the audit log and command-history projections."""

from __future__ import annotations

from rdev_audit.bootstrap import run
from rdev_audit.settings import AuditSettings
from rdev_common.logging import configure_logging
from rdev_common.service import run_async


def main() -> None:
    settings = AuditSettings()
    configure_logging(settings.log_format, settings.log_level, service="audit")
    run_async(run(settings))


if __name__ == "__main__":
    main()
