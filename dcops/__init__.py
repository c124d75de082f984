"""dcops: telemetry and outage response for AI inference data centres (shared core)."""

__version__ = "0.1.0"
