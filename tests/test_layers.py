"""The package's layers (docs/architecture.md): core < lang < present < eval < discovery < serve < cli.

A module imports only from its own layer or lower ones (imports inside functions count);
the modules of one layer import each other without cycles; core, lang and present never
load torch; only eval/backends imports a model library (TransformerLens, transformers).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("core", "lang", "present", "eval", "discovery", "serve", "cli")
MODEL_LIBRARIES = ("transformer_lens", "transformers")


def modules(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module below `package` (a package folder)."""
    found = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path) -> list[str]:
    """Absolute names of what a module imports (`from x import y` gives x and x.y)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out += [target] + [f"{target}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
    return out


def layer_of(module: str) -> int | None:
    """The rank of a module's layer; None for the package's own entry points."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def violations(package: Path) -> tuple[list[str], list[list[str]], list[str]]:
    """(upward imports, import cycles, model-library imports outside eval/backends)."""
    known = modules(package)
    graph = nx.DiGraph()
    upward, libraries = [], []
    for name, path in known.items():
        graph.add_node(name)
        mine = layer_of(name)
        for target in imports(name, path):
            if target.split(".")[0] in MODEL_LIBRARIES and not name.startswith(f"{package.name}.eval.backends"):
                libraries.append(f"{name} imports {target}")
            if target not in known or target == name:
                continue
            graph.add_edge(name, target)
            theirs = layer_of(target)
            if mine is not None and theirs is not None and theirs > mine:
                upward.append(f"{name} ({LAYERS[mine]}) imports {target} ({LAYERS[theirs]})")
    # a package's __init__ and one of its own modules may name each other (a registry
    # that imports its entries' base module, whose code looks the registry up)
    cycles = [c for c in nx.simple_cycles(graph)
              if not (len(c) == 2 and (c[0].startswith(c[1] + ".") or c[1].startswith(c[0] + ".")))]
    return sorted(set(upward)), cycles, sorted(set(libraries))


def test_no_upward_imports_no_cycles_no_model_library_outside_backends() -> None:
    upward, cycles, libraries = violations(ROOT / "circuitlang")
    assert not upward, upward
    assert not cycles, cycles[:5]
    assert not libraries, libraries


def test_the_checker_finds_each_kind_of_violation(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    for folder in ("core", "lang", "eval", "eval/backends"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "core" / "a.py").write_text("def f():\n    from ..lang import b\n")  # upward, inside a function
    (package / "lang" / "b.py").write_text("from .c import x\n")
    (package / "lang" / "c.py").write_text("from .b import y\n")  # b <-> c
    (package / "eval" / "d.py").write_text("import transformer_lens\n")
    (package / "eval" / "backends" / "tl.py").write_text("import transformer_lens\n")  # allowed here
    upward, cycles, libraries = violations(package)
    assert upward == ["pkg.core.a (core) imports pkg.lang (lang)", "pkg.core.a (core) imports pkg.lang.b (lang)"]
    assert sorted(map(sorted, cycles)) == [["pkg.lang.b", "pkg.lang.c"]]
    assert libraries == ["pkg.eval.d imports transformer_lens"]


def test_core_lang_and_present_import_no_torch() -> None:
    probe = """
import importlib, pkgutil, sys
import circuitlang
for layer in ("core", "lang", "present"):
    package = importlib.import_module(f"circuitlang.{layer}")
    for info in pkgutil.walk_packages(package.__path__, f"circuitlang.{layer}."):
        importlib.import_module(info.name)
print(sorted(m for m in ("torch", "transformer_lens", "transformers") if m in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
