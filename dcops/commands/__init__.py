"""CLI subcommands of the shared core (see dcops.cli.COMMANDS)."""
