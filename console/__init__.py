"""The NOC console (Dash)."""
