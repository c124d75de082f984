"""Topology correlation: which alarm explains which, and the incidents built from the groups."""
