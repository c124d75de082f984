"""console/pages."""
