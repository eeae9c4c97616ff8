"""Benchmarks that ship with the package (`ganpipe bench ...`), measured beside published rows."""
