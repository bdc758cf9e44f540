"""`python -m rtalign ...` runs the command-line tool, as `rtalign ...` does."""
from .cli import main

main()
