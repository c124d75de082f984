"""dcops/sim."""
