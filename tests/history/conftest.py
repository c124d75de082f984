"""History tests run on SQLite and on a throwaway PostgreSQL cluster (`db_url` is parametrised)."""

from tests.integration.pg_fixtures import db_url, pg_cluster  # noqa: F401 (fixtures)
