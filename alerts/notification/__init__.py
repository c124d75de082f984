"""Who is told, how and when: routing, on-call, escalation, the notifiers and the durable outbox."""
