"""`ganpipe`: one module per command group; `main` parses and turns errors into one line."""
