"""Database: table definitions, engine factory and Alembic migrations."""
