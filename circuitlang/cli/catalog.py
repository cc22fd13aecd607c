"""`circ models` (the shapes known without weights) and `circ stdlib` (the standard library)."""

from __future__ import annotations

import json

import click


@click.command()
def models() -> None:
    """List the models whose shapes are known without weights (zoo and pretrained names)."""
    from ..core.models import KNOWN_SHAPES

    width = max(len(n) for n in KNOWN_SHAPES)
    for name, shape in KNOWN_SHAPES.items():
        click.echo(f"{name:<{width}}  {shape.describe():<48}  {shape.source}")


@click.command("stdlib")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def stdlib_command(fmt: str) -> None:
    """List the standard library: import name, model, circuits with node and edge counts, source.

    \b
    Example:
      circ stdlib
      # then, in a .circ file:  import stdlib.zoo.induction
    """
    from ..lang.library import list_stdlib

    entries = list_stdlib()
    if fmt == "json":
        click.echo(json.dumps([e.to_json() for e in entries], indent=2))
        return
    for entry in entries:
        click.echo(f"{entry.import_name}  (model {entry.model or 'any: motifs'})")
        if entry.source:
            click.echo(f"    source: {entry.source}")
        for name, nodes, edges in entry.circuits:
            click.echo(f"    circuit {name}: {nodes} nodes, {edges} edges")
        for name, params in entry.motifs:
            click.echo(f"    motif {name}({', '.join(params)})")
