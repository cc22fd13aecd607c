"""The standard library as data: what `circ stdlib` lists and docs/stdlib.md shows.

Each stdlib file's first comment line names its source; its circuits are lowered
against its own model (motif files, without a model, list their motifs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import syntax as S
from .pipeline import compile_file
from .resolve import stdlib_root


@dataclass(frozen=True)
class LibraryEntry:
    import_name: str
    path: str
    model: str | None
    source: str
    circuits: tuple[tuple[str, int, int], ...] = field(default=())
    motifs: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())
    errors: int = 0

    def to_json(self) -> dict:
        return {
            "import": self.import_name, "path": self.path, "model": self.model, "source": self.source,
            "circuits": [{"name": n, "nodes": a, "edges": b} for n, a, b in self.circuits],
            "motifs": [{"name": n, "params": list(p)} for n, p in self.motifs], "errors": self.errors,
        }


def _source_line(module: S.Module) -> str:
    """The first sentence of the file's header comment (it names the source)."""
    words: list[str] = []
    expected = None
    for comment in sorted(module.comments, key=lambda c: c.line):
        text = comment.text.lstrip("/").strip()
        if (expected is not None and comment.line != expected) or not text:
            break
        words.append(text)
        expected = comment.line + 1
    header = " ".join(words)
    end = _SENTENCE_END.search(header)
    return header if end is None else header[:end.start() + 1]


# A full stop that ends a sentence: not the one in "et al." or "e.g.", and followed by a capital.
_SENTENCE_END = re.compile(r"(?<!\bal)(?<!\be\.g)(?<!\bi\.e)(?<!\bcf)(?<!\bvs)\.\s+(?=[A-Z`\"(])")


def list_stdlib() -> list[LibraryEntry]:
    root = stdlib_root()
    entries = []
    for path in sorted(root.rglob("*.circ")):
        result = compile_file(path, check_files=False)
        module = result.program.root.module if result.program else S.Module(())
        motifs = tuple((s.name, s.params or ()) for s in module.statements
                       if isinstance(s, S.CircuitDef) and s.is_motif)
        rel = path.relative_to(root).with_suffix("")
        entries.append(LibraryEntry(
            import_name="stdlib." + ".".join(rel.parts), path=str(path), model=result.model,
            source=_source_line(module),
            circuits=tuple((n, len(g.nodes), len(g.edges)) for n, g in result.circuits.items()),
            motifs=motifs, errors=sum(d.is_error for d in result.diagnostics)))
    return entries
