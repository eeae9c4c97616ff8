"""MLflow: runs and their metrics, the background sender of training workers, the server's
health, and the generator as a servable pyfunc model."""
