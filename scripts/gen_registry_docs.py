"""Write the tables of ablations, metrics and discovery methods in docs/ from their registries.

    .venv/bin/python scripts/gen_registry_docs.py            # rewrite the tables in place
    .venv/bin/python scripts/gen_registry_docs.py --check    # exit 1 if one is out of date

Each table sits between `<!-- registry: NAME -->` and `<!-- /registry -->` in its page
(docs/evaluation.md: ablations and metrics; docs/discovery.md: methods); the text around
it is left as it is. tests/test_registries.py fails while a table differs from what this
script writes, so adding an ablation, a metric or a method updates the docs in one step.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from circuitlang.core.ablations import ABLATIONS
from circuitlang.core.ablations import DEFAULT as DEFAULT_ABLATION
from circuitlang.core.metrics import DEFAULT as DEFAULT_METRIC
from circuitlang.core.metrics import METRICS
from circuitlang.discovery.methods import DEFAULT as DEFAULT_METHOD
from circuitlang.discovery.methods import METHODS

ROOT = Path(__file__).resolve().parent.parent
PAGES = {"ablations": "docs/evaluation.md", "metrics": "docs/evaluation.md", "methods": "docs/discovery.md"}


def _name(name: str, default: str) -> str:
    return f"`{name}`" + (" (default)" if name == default else "")


def tables() -> dict[str, list[str]]:
    """Each table's lines."""
    ablations = ["| ablation | `abl_S` |", "| --- | --- |"]
    ablations += [f"| {_name(a.name, DEFAULT_ABLATION)} | {a.meaning} |" for a in ABLATIONS.values()]
    metrics = ["| metric | per example | m(M) |", "| --- | --- | --- |"]
    metrics += [f"| {_name(m.name, DEFAULT_METRIC)} | {m.per_example} | {m.model_value} |" for m in METRICS.values()]
    methods = ["| method | what it does | finds | gradients | metrics it refuses |", "| --- | --- | --- | --- | --- |"]
    for m in METHODS.values():
        refused = [x.name for x in METRICS.values() if not m.accepts(x)]
        methods.append(f"| {_name(m.name, DEFAULT_METHOD)} | {m.summary} | "
                       f"{'a score per edge' if m.ranks_edges else 'a circuit'} | {m.gradient.value} | "
                       f"{', '.join(f'`{r}`' for r in refused) or 'none'} |")
    return {"ablations": ablations, "metrics": metrics, "methods": methods}


def render(text: str, page: str) -> str:
    """`text` (the page) with its registry tables replaced by the current ones."""
    for name, lines in tables().items():
        if PAGES[name] != page:
            continue
        pattern = re.compile(rf"(<!-- registry: {name} -->\n).*?(<!-- /registry -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"{page} has no `<!-- registry: {name} -->` ... `<!-- /registry -->` block")
        text = pattern.sub(lambda m: m.group(1) + "\n".join(lines) + "\n" + m.group(2), text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table is out of date")
    args = parser.parse_args()
    stale = []
    for page in sorted(set(PAGES.values())):
        path = ROOT / page
        text = path.read_text(encoding="utf-8")
        new = render(text, page)
        if new != text:
            stale.append(page)
            if not args.check:
                path.write_text(new, encoding="utf-8")
                print(f"wrote {page}", file=sys.stderr)
    if args.check and stale:
        print(f"out of date: {', '.join(stale)}: run .venv/bin/python scripts/gen_registry_docs.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
