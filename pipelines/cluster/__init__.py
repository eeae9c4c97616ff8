"""Reaching Ray: the cluster at RAY_ADDRESS or a local one, and whether it has room for the work."""
