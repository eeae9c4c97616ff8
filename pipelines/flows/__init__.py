"""Prefect flows: the pipeline as a person runs it and as deployments schedule it.

prepare -> search -> train -> evaluate -> register -> promote, each a task that retries
transient faults; `gan-pipeline` chains them and leaves a markdown report.
"""
