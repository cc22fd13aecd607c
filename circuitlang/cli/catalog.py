"""`circ models` (the shapes known without weights) and `circ stdlib` (the standard library)."""

from __future__ import annotations

import json
import textwrap
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ..core.shapes import ModelShape

WIDTH = 100  # `circ models` stays readable in a terminal this wide


def _kind(shape: ModelShape) -> str:
    if shape.attn_only:
        return "attention-only"
    return "parallel attention + MLP" if shape.parallel_attn_mlp else "attention + MLP"


def _heads(shape: ModelShape) -> str:
    kv = f" (kv {shape.n_kv_heads})" if shape.n_kv_heads < shape.n_heads else ""
    return f"{shape.n_layers} x {shape.n_heads}{kv}"


@click.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def models(fmt: str) -> None:
    """List the models whose shapes are known without weights: the zoo and the shipped
    table of pretrained models (GPT-2, Pythia, Qwen2.5, Gemma 2, Llama 3, OLMo 2), each with
    its aliases and where its numbers come from.

    A `model` line may also name a Hugging Face model in the local cache (its cached
    config.json gives the shape) or a checkpoint directory with a config.json.

    \b
    Example:
      circ models
      circ models --format json
    """
    from ..core.models import KNOWN_SHAPES, aliases_of

    if fmt == "json":
        click.echo(json.dumps([
            {"name": name, "aliases": list(aliases_of(name)), "n_layers": s.n_layers, "n_heads": s.n_heads,
             "n_kv_heads": s.n_kv_heads, "d_model": s.d_model, "d_head": s.d_head, "attn_only": s.attn_only,
             "parallel_attn_mlp": s.parallel_attn_mlp, "kind": _kind(s), "source": s.source}
            for name, s in KNOWN_SHAPES.items()], indent=2))
        return
    shapes = KNOWN_SHAPES.values()
    name_width = max(len(n) for n in KNOWN_SHAPES)
    heads_width = max(len("layers x heads"), *(len(_heads(s)) for s in shapes))
    model_width = max(len("d_model"), *(len(str(s.d_model)) for s in shapes))  # every column fits its widest
    head_width = max(len("d_head"), *(len(str(s.d_head)) for s in shapes))
    click.echo(f"{'name':<{name_width}}  {'layers x heads':<{heads_width}}  {'d_model':>{model_width}}  "
               f"{'d_head':>{head_width}}  kind")
    click.echo("    where the shape comes from; aliases: other names of the same model")
    for name, shape in KNOWN_SHAPES.items():
        click.echo(f"{name:<{name_width}}  {_heads(shape):<{heads_width}}  {shape.d_model:>{model_width}}  "
                   f"{shape.d_head:>{head_width}}  {_kind(shape)}")
        detail = shape.source + (f"; aliases: {', '.join(aliases_of(name))}" if aliases_of(name) else "")
        click.echo(textwrap.fill(detail, WIDTH, initial_indent="    ", subsequent_indent="      "))
    click.echo("\n(kv N: N key/value heads shared by the query heads. A Hugging Face name in the local cache"
               " or a\ncheckpoint directory's config.json gives the shape of a model not listed here.)")


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
        if entry.errors:
            click.echo(f"    {entry.errors} error(s): `circ check {entry.path}` shows them")
