"""Apply Alembic migrations: `python -m rdev_common.db.migrate` or `rdev migrate`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from rdev_common.db.engine import sync_url
from rdev_common.settings import CommonSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "heads") -> None:
    """Bring the database at `url` to `revision`; existing data is kept."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)


def main() -> None:
    upgrade(CommonSettings().resolved_database_url())


if __name__ == "__main__":
    main()
