"""Incident history for reliability engineers: MTTA/MTTR, recurring offenders, postmortems."""
