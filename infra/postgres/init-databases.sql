-- Runs once, when the PostgreSQL volume is first created (docker-entrypoint-initdb.d).
-- POSTGRES_DB already created `mlflow`; the Prefect server gets a database of its own.
-- Both belong to POSTGRES_USER, the role this script runs as.
CREATE DATABASE prefect;
