"""The telemetry store seam: bulk writes of batches and events, range queries, and the current
view of the site kept on the write path (`current_view`).

Every implementation is idempotent on (measurement, tags, time): writing the same rows twice
leaves one copy, so replays after a crash (at-least-once delivery) cannot double-count.
"""

from dcops.store.base import AGGREGATES, CurrentView, Store, StoreError, StoreUnavailable
from dcops.store.current import current_view

__all__ = ["AGGREGATES", "CurrentView", "Store", "StoreError", "StoreUnavailable", "current_view", "open_store"]


def open_store(settings, inventory=None) -> Store:
    """Build the store the settings name. Imports the implementation lazily."""
    if settings.kind == "duckdb":
        from dcops.store.duckdb_store import DuckDBStore

        return DuckDBStore(settings.path, retention_days=settings.retention_days)
    if settings.kind == "influxdb":
        from dcops.store.influx_store import InfluxStore  # production seam (issue: data path)

        return InfluxStore.from_settings(settings)
    raise ValueError(f"unknown store kind {settings.kind!r}")
