"""The alarm lifecycle: signals in, alarms out (dedup, flapping), matchers, silences."""
