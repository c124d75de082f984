"""Where the alerter keeps its state: alarm, incident, silence and outbox tables, the alerter's
writes, the read API for the console and runbooks, the console's accounts and sessions, and the
append-only audit log."""
