"""`python -m circuitlang` is the `circ` command."""

from .cli import main

main()
