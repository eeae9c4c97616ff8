"""Judging and looking at a generator from anywhere: an MLflow model, a checkpoint, a run folder."""
