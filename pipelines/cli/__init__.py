"""`ganpipe`: a Typer app (app.py) of one module per command group; `main` runs it, and a command
ends on a known error with one line (commands.py, errors.py)."""
