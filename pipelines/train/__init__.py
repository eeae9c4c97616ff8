"""Distributed training on Ray Train: the driver, the trainer it starts, the workers, publishing."""
