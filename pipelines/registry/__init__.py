"""The model registry: versions with lineage, the challenger and champion aliases, promotion."""
