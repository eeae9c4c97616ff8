"""Hyperparameter search on Ray Tune: search spaces, trials evaluated at milestones, results."""
