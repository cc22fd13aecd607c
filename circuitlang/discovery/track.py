"""Circuits across training: apply a file's checks to a sequence of checkpoints (and, on
request, discover a circuit in each) and say what changed between consecutive ones.

`checkpoints(spec, base)` reads the sequence from what a researcher has: checkpoint
directories listed or globbed, or a Hugging Face model's revisions in the local cache
(Pythia's `step1000`-style branches). `measure(job)` evaluates one checkpoint: it is a
module-level function of plain data so that `eval.parallel` can run the checkpoints on
Ray workers as well as in this process, with identical results. `track(...)` runs them
all and returns the JSON-able result that `present.track` draws (schema 1).

It lives in the discovery layer because a checkpoint's circuit may be discovered; it
uses the evaluator (eval) for the checks and writes discovered circuits with lang.write.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..core.errors import CircuitlangError
from ..core.models import ModelRef, ShapeError, check_fits, hf_hub_cache
from ..core.paths import is_dir, is_file, path_from

SCHEMA = 1
_STEP_IN_NAME = re.compile(r"(?:step|checkpoint|ckpt|iter)[-_]?(\d+)", re.I)


class TrackError(CircuitlangError):
    """The checkpoints cannot be found or read as a sequence."""


@dataclass(frozen=True)
class Checkpoint:
    """One model of the sequence: a name to show, the directory to load, and its
    training step (None when neither its metadata nor its name says)."""

    name: str
    path: str
    step: int | None
    training: dict = field(default_factory=dict, compare=False)  # numbers trainer_state.json records (a loss)


@dataclass(frozen=True)
class Options:
    """What to measure at every checkpoint (plain data: it travels to Ray workers)."""

    file: str
    circuit: str | None = None  # with task: this circuit of the file on that task, no expectations
    task: str | None = None
    method: str | None = None  # discover a circuit per checkpoint with this method
    edges: int | None = None
    target: float | None = None
    out_dir: str | None = None  # where discovered circuits are written, one .circ per checkpoint
    device: str = "cpu"
    dtype: str = "float32"
    batch_size: int = 32
    seed: int | None = None
    sensitivity: str = "off"
    bootstrap: int = 1000


# ---------------------------------------------------------------------------------
# The sequence
# ---------------------------------------------------------------------------------

def step_of(path: Path) -> int | None:
    """The training step of a checkpoint directory: `global_step` (or `step`) in its
    trainer_state.json (as the Hugging Face Trainer writes it), else a number after
    `step`/`checkpoint` in its name (`step-00150`, `checkpoint-500`, Pythia's `step1000`)."""
    state = path / "trainer_state.json"
    if is_file(state):
        try:
            data = json.loads(state.read_text(encoding="utf-8"))
            value = data.get("global_step", data.get("step")) if isinstance(data, dict) else None
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                return value
        except (OSError, UnicodeDecodeError, ValueError, RecursionError):
            pass
    found = _STEP_IN_NAME.search(path.name)
    return int(found.group(1)) if found else None


def training_numbers(path: Path) -> dict:
    """The numbers at the top of a checkpoint's trainer_state.json other than its step
    (e.g. the loss the training script measured there), shown beside what circuitlang
    measures; {} when there are none."""
    try:
        data = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if k not in ("global_step", "step") and isinstance(v, (int, float))
            and not isinstance(v, bool) and math.isfinite(v)}


def checkpoints(spec: str, base: Path | None = None) -> list[Checkpoint]:
    """The checkpoints `spec` names, sorted by step (in the order given where steps are
    unknown). SPEC is `MODEL@REVISIONS` (a Hugging Face name in the local cache and a
    comma-separated list of its revisions, each may be a glob: `EleutherAI/pythia-70m@step*`)
    or a comma-separated list of checkpoint directories and globs of them."""
    base = base or Path.cwd()
    if "@" in spec and not Path(spec).exists():
        name, _, revisions = spec.partition("@")
        found = _revisions(name, [r.strip() for r in revisions.split(",") if r.strip()])
    else:
        found = []
        for item in (p.strip() for p in spec.split(",")):
            if not item:
                continue
            found += _directories(item, base)
    seen, unique = set(), []
    for cp in found:
        if cp.path not in seen:
            seen.add(cp.path)
            unique.append(cp)
    if not unique:
        raise TrackError(f"--checkpoints {spec!r} names no checkpoint",
                         "give checkpoint directories (each with config.json), a glob such as 'runs/step-*' "
                         "(quoted, so the shell leaves it), or MODEL@REVISIONS for a model in the Hugging Face cache")
    if all(cp.step is not None for cp in unique):
        steps = [cp.step for cp in unique]
        if len(set(steps)) != len(steps):
            twice = sorted({s for s in steps if steps.count(s) > 1})
            raise TrackError(f"--checkpoints: step {twice[0]} names more than one checkpoint",
                             "give one checkpoint per step")
        unique.sort(key=lambda cp: cp.step)
    return unique


def _directories(item: str, base: Path) -> list[Checkpoint]:
    pattern = item if Path(item).is_absolute() else str(base / item)
    if glob.has_magic(item):
        paths = sorted(Path(p) for p in glob.glob(pattern) if is_dir(Path(p)))
        if not paths:
            raise TrackError(f"--checkpoints: no directory matches {item!r}")
    else:
        paths = [Path(pattern)]
    out = []
    for path in paths:
        if not is_file(path / "config.json"):
            raise TrackError(f"--checkpoints: {item if len(paths) == 1 else path} is not a checkpoint directory "
                             f"(no config.json)", "a checkpoint directory holds config.json and its weights")
        out.append(Checkpoint(path.name, str(path), step_of(path), training_numbers(path)))
    return out


def _revisions(name: str, wanted: list[str]) -> list[Checkpoint]:
    """Revisions of a Hub model in the local cache: `refs/REVISION` holds the commit
    whose snapshot folder has the files (as huggingface_hub writes the cache)."""
    folder = hf_hub_cache() / ("models--" + name.replace("/", "--"))
    refs = folder / "refs"
    if not is_dir(refs):
        raise TrackError(f"--checkpoints: `{name}` is not in the Hugging Face cache ({hf_hub_cache()})",
                         "download its revisions where there is network, e.g. "
                         f"`huggingface-cli download {name} --revision step1000`")
    available = sorted(p.name for p in refs.iterdir() if p.is_file())
    chosen: list[str] = []
    for pattern in wanted or ["*"]:
        matches = [r for r in available if fnmatch.fnmatchcase(r, pattern)]
        if not matches:
            raise TrackError(f"--checkpoints: no cached revision of `{name}` matches {pattern!r}",
                             f"cached: {', '.join(available) or 'none'}")
        chosen += [m for m in matches if m not in chosen]
    out = []
    for revision in chosen:
        commit = (refs / revision).read_text(encoding="utf-8").strip()
        snapshot = folder / "snapshots" / commit
        if not is_file(snapshot / "config.json"):
            raise TrackError(f"--checkpoints: revision {revision} of `{name}` has no config.json in the cache "
                             f"({snapshot})")
        found = _STEP_IN_NAME.search(revision)
        out.append(Checkpoint(f"{name}@{revision}", str(snapshot),
                              int(found.group(1)) if found else step_of(snapshot)))
    return out


# ---------------------------------------------------------------------------------
# One checkpoint
# ---------------------------------------------------------------------------------

def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _check_json(report) -> dict:
    """One check's numbers at one checkpoint (the fields present.track reads)."""
    r = report.circuit
    interval = r.faithfulness_interval
    return {"check": f"{r.circuit} on {r.task}" + ("" if report.results else " (no expectations)"),
            "circuit": r.circuit, "task": r.task, "ablation": r.ablation, "metric": r.metric,
            "passed": report.passed if report.results else None,
            "faithfulness": _finite(r.faithfulness),
            "interval": [interval.low, interval.high] if interval is not None else None,
            "m_model": _finite(r.m_model), "m_empty": _finite(r.m_empty),
            "nodes": {c.name: _finite(c.delta) for c in r.nodes},
            "expectations": [{"text": e.text, "passed": e.passed, "value": _finite(e.value)} for e in report.results],
            "warnings": list(r.warnings)}


def measure(job: tuple[Checkpoint, Options]) -> dict:
    """Load one checkpoint, run the file's checks (or the circuit on the task) with per-node
    necessity, and discover a circuit when asked. Problems (a checkpoint that does not
    load, has another shape, a check that cannot run) are returned, not raised, so one
    bad checkpoint does not end the run."""
    from ..eval.backends.base import ModelLoadError
    from ..eval.loading import DTYPES, load_model
    from ..eval.runner import RunOptions, run_checks
    from ..lang.pipeline import load

    checkpoint, options = job
    entry = {"name": checkpoint.name, "path": checkpoint.path, "step": checkpoint.step,
             "training": dict(checkpoint.training), "checks": [], "discovered": None}
    compiled = load(options.file)
    try:
        backend = load_model(ModelRef(checkpoint.path, quoted=True), device=options.device,
                             dtype=DTYPES[options.dtype])
    except (ModelLoadError, CircuitlangError) as err:
        return {**entry, "problem": str(err)}
    if compiled.shape is not None:
        try:
            check_fits(compiled.shape, compiled.model_ref.name, checkpoint.name, backend.shape)
        except ShapeError as err:
            return {**entry, "problem": err.message}
    run = RunOptions(options.device, options.dtype, options.batch_size, options.seed, full_report=True,
                     completeness_samples=0, sensitivity=options.sensitivity, bootstrap=options.bootstrap)
    outcome = run_checks(compiled, run, _checks(compiled, options), backend=backend)
    entry["checks"] = [_check_json(report) for report in outcome.checks]
    entry["checks"] += [{"check": p.where, "problem": p.message} for p in outcome.problems]
    if options.method:
        entry["discovered"] = _discover(compiled, backend, checkpoint, options)
    return entry


def _checks(compiled, options: Options):
    """The file's check blocks, or one `CheckSpec` of --circuit on --task."""
    if options.task is None:
        return compiled.checks
    from ..lang.check import CheckSpec

    task = compiled.tasks[options.task]
    names = [options.circuit] if options.circuit else list(compiled.circuits)
    return tuple(CheckSpec(compiled.circuits[n], task, ()) for n in names)


def _discover(compiled, backend, checkpoint: Checkpoint, options: Options) -> dict:
    """Discover a circuit on the checkpoint (the task: --task, else the file's only task)
    and write it as a .circ in the output folder."""
    from ..eval.evaluator import Evaluator
    from ..eval.session import Session
    from ..eval.tasks.registry import task_data
    from ..lang.write import graph_to_circ
    from . import select
    from .methods import METHODS
    from .methods.base import Request

    task = compiled.tasks[options.task or next(iter(compiled.tasks))]
    session = Session(backend, task_data(task, backend, options.seed if options.seed is not None else task.seed),
                      task.ablation, task.metric, options.batch_size)
    evaluator = Evaluator(session)
    found = METHODS[options.method].run(Request(evaluator))
    name = "found"
    if found.scores is None:
        circuit, how = found.circuit.renamed(name), found.how
    elif options.edges is not None:
        circuit, how = select.top_edges(found.scores, options.edges, name=name), f"{found.how}, top {options.edges}"
    else:
        goal = 0.95 if options.target is None else options.target
        circuit = select.select_by_target(evaluator, found.scores, goal, name=name).circuit
        how = f"{found.how}, fewest top edges reaching {goal:g}"
    result = {"method": options.method, "how": how, "edges": 0, "faithfulness": None, "file": None,
              "nodes": [], "edge_list": []}
    if circuit is None or not circuit.edges:
        return result
    f = float(evaluator.faithfulness([circuit])[0])
    result.update(edges=len(circuit.edges), faithfulness=_finite(f),
                  nodes=sorted({str(n) for e in circuit.edges for n in (e.sender, e.receiver)
                                if n.is_head or n.kind == "mlp"}),
                  edge_list=sorted(str(e) for e in circuit.edges))
    if options.out_dir:
        circuit = select.with_rounded_scores(circuit)
        out = Path(options.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{_safe(checkpoint.name)}.circ"
        header = [f"found by `circ track --discover {options.method}` at checkpoint {checkpoint.name}"
                  f" (step {checkpoint.step})", how]
        path.write_text(graph_to_circ(circuit, path_from(out, Path(checkpoint.path)), header), encoding="utf-8")
        result["file"] = str(path)
    return result


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


# ---------------------------------------------------------------------------------
# The whole sequence
# ---------------------------------------------------------------------------------

def transitions(entries: Sequence[dict]) -> list[dict]:
    """What changed between consecutive checkpoints: the discovered circuits' nodes and
    edges (when discovered) and each check's faithfulness, as one summary line each."""
    out = []
    for a, b in zip(entries, entries[1:]):
        label = f"step {_label(a)} -> {_label(b)}"
        da, db = a.get("discovered") or {}, b.get("discovered") or {}
        nodes_a, nodes_b = set(da.get("nodes", [])), set(db.get("nodes", []))
        edges_a, edges_b = set(da.get("edge_list", [])), set(db.get("edge_list", []))
        change = {"from_step": a.get("step"), "to_step": b.get("step"),
                  "added_nodes": sorted(nodes_b - nodes_a), "removed_nodes": sorted(nodes_a - nodes_b),
                  "added_edges": sorted(edges_b - edges_a), "removed_edges": sorted(edges_a - edges_b)}
        parts = []
        if da or db:
            moved = [f"+{n}" for n in change["added_nodes"]] + [f"-{n}" for n in change["removed_nodes"]]
            parts.append(" ".join(moved[:8]) + (f" (+{len(moved) - 8} more)" if len(moved) > 8 else "")
                         if moved else "same nodes")
            parts.append(f"{len(change['added_edges'])} edges in, {len(change['removed_edges'])} out")
        checks_a = {c["check"]: c for c in a.get("checks", [])}
        for c in b.get("checks", []):
            before = checks_a.get(c["check"], {}).get("faithfulness")
            if c.get("faithfulness") is not None and before is not None:
                parts.append(f"{c['circuit']} faithfulness {_f2(before)} -> {_f2(c['faithfulness'])}")
        if da.get("faithfulness") is not None and db.get("faithfulness") is not None:
            parts.append(f"discovered faithfulness {_f2(da['faithfulness'])} -> {_f2(db['faithfulness'])}")
        change["summary"] = f"{label}: " + (", ".join(parts) if parts else "nothing measured")
        out.append(change)
    return out


def _f2(value: float) -> str:
    """Two decimals, without a sign on a value that rounds to zero."""
    return f"{value:.2f}".replace("-0.00", "0.00")


def _label(entry: dict) -> str:
    return str(entry["step"]) if entry.get("step") is not None else entry["name"]


def track(file: str, spec: str, options: Options, workers: int | None = None, address: str | None = None,
          progress: Callable[[int, int], None] | None = None, base: Path | None = None) -> dict:
    """Measure every checkpoint `spec` names (`checkpoints`) with `options`, on Ray or in
    this process (`eval.parallel`), and return the result (schema 1, `present.track`)."""
    from dataclasses import replace

    from ..eval.loading import is_small, thread_count
    from ..eval.parallel import plan, run_jobs
    from ..lang.pipeline import load

    compiled = load(file)  # raises CircuitError (the diagnostics) when the file has errors
    _check_choice(compiled, options)
    sequence = checkpoints(spec, base)
    if workers is None and address is None and compiled.shape is not None and is_small(compiled.shape):
        # measured (bench/bench_track.py): 8 zoo checkpoints take 7 s in-process and 17 s on
        # a local Ray with 2 workers, whose start costs more than the jobs
        how = replace(plan(len(sequence), 1, None),
                      how="in-process (checkpoints this small are measured faster than Ray starts; "
                          "--workers N runs them on Ray)")
    else:
        how = plan(len(sequence), workers, address)
    # the loader's choice for this shape (1 for zoo-sized models), shared among Ray's
    # workers; the same count on both paths gives bit-identical numbers (eval.parallel)
    threads = thread_count(compiled.shape)
    if how.uses_ray:
        threads = max(1, threads // max(how.workers, 1))
    entries = run_jobs(measure, [(cp, options) for cp in sequence], how, threads=threads, progress=progress)
    return {"schema": SCHEMA, "file": file, "how": how.how, "checkpoints": entries,
            "transitions": transitions(entries)}


def _check_choice(compiled, options: Options) -> None:
    """Refuse, before loading any checkpoint, a --task or --circuit the file lacks, or a
    file with nothing to measure."""
    if options.circuit and not options.task:
        raise TrackError("--circuit needs --task")
    if options.task is not None and options.task not in compiled.tasks:
        raise TrackError(f"no task `{options.task}` in {compiled.path}; it has: {', '.join(compiled.tasks) or 'none'}")
    if options.circuit is not None and options.circuit not in compiled.circuits:
        raise TrackError(f"no circuit `{options.circuit}` in {compiled.path}; it has: "
                         f"{', '.join(compiled.circuits) or 'none'}")
    if options.task is None and not compiled.checks and not options.method:
        raise TrackError(f"{compiled.path} has no check blocks: nothing to measure",
                         "name a circuit and task with --circuit C --task T, or discover with --discover METHOD")
    if options.method and options.task is None and len(compiled.tasks) != 1:
        raise TrackError(f"--discover needs --task: {compiled.path} has {len(compiled.tasks)} tasks")
