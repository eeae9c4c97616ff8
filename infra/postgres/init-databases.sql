-- Runs once, when the PostgreSQL volume is first created (docker-entrypoint-initdb.d).
-- POSTGRES_DB already created `mlflow`; the Prefect server gets a database of its own, and
-- MLflow's basic-auth app one for its users and permissions. All belong to POSTGRES_USER, the
-- role this script runs as. (A volume made before mlflow_auth was added needs it created by hand.)
CREATE DATABASE prefect;
CREATE DATABASE mlflow_auth;
