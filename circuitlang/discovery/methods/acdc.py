"""ACDC-style pruning (Conmy et al. 2023), with the candidate edges of a receiver tested in batches.

ACDC walks the receivers from the output back to the input; for each incoming edge of
the current circuit it removes the edge for good if that changes the faithfulness by
less than `tau`. Done literally that is one forward pass per edge. Here every incoming
edge of a receiver is first tried alone, all in one batched pass of the fast engine;
the edges under `tau` are then removed together if together they also stay under `tau`
(one more pass). Only when they do not does the receiver fall back to ACDC's own order,
one edge at a time, one pass each. The result is the circuit the sequential algorithm would find whenever
the combined check passes (always, on the zoo), at a fraction of the passes.

`acdc_sequential` is the literal algorithm, one pass per edge: the baseline the batched
form is benchmarked and tested against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ...core.graph import CircuitGraph, Edge, Node
from ...core.shapes import all_edges
from ...eval.evaluator import Evaluator
from .base import Found, Gradient, Method, Request

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class AcdcResult:
    circuit: CircuitGraph
    passes: int  # batched engine calls
    variants: int  # circuits evaluated
    removed: tuple[Edge, ...] = ()


def _receivers_backwards(circuit: CircuitGraph) -> list[tuple[Node, str | None]]:
    ports = {(e.receiver, e.channel) for e in circuit.edges}
    return sorted(ports, key=lambda p: (p[0].sort_key(), p[1] or ""), reverse=True)


def _incoming(circuit: CircuitGraph, port: tuple[Node, str | None]) -> list[Edge]:
    return sorted((e for e in circuit.edges if (e.receiver, e.channel) == port), key=Edge.sort_key)


def acdc(evaluator: Evaluator, start: CircuitGraph, tau: float, progress: Progress | None = None) -> AcdcResult:
    """Prune `start` receiver by receiver, output first; edges cost under `tau` go."""
    current = start
    f_current = float(evaluator.faithfulness([current])[0])
    passes, variants, removed = 1, 1, []
    ports = _receivers_backwards(start)
    for done, port in enumerate(ports, 1):
        edges = [e for e in _incoming(current, port)]
        if edges:
            trials = [current - CircuitGraph.from_edges([e]) for e in edges]
            scores = evaluator.faithfulness(trials).tolist()
            passes, variants = passes + 1, variants + len(trials)
            cheap = [e for e, f in zip(edges, scores) if abs(f_current - f) < tau]
            if cheap:
                together = current - CircuitGraph.from_edges(cheap)
                f_together = float(evaluator.faithfulness([together])[0])
                passes, variants = passes + 1, variants + 1
                if abs(f_current - f_together) < tau:
                    current, f_current = together, f_together
                    removed += cheap
                else:
                    current, f_current, extra = _one_by_one(evaluator, current, f_current, edges, tau, removed)
                    passes, variants = passes + extra[0], variants + extra[1]
        if progress:
            progress(done, len(ports))
    return AcdcResult(current, passes, variants, tuple(removed))


def _one_by_one(evaluator: Evaluator, current: CircuitGraph, f_current: float, edges: list[Edge], tau: float,
                removed: list[Edge]) -> tuple[CircuitGraph, float, tuple[int, int]]:
    """ACDC's own order for one receiver's edges (each decision sees the earlier removals)."""
    passes = variants = 0
    for edge in edges:
        trial = current - CircuitGraph.from_edges([edge])
        f_trial = float(evaluator.faithfulness([trial])[0])
        passes, variants = passes + 1, variants + 1
        if abs(f_current - f_trial) < tau:
            current, f_current = trial, f_trial
            removed.append(edge)
    return current, f_current, (passes, variants)


def acdc_sequential(evaluator: Evaluator, start: CircuitGraph, tau: float) -> AcdcResult:
    """The literal algorithm: one evaluation per edge, in ACDC's order."""
    current = start
    f_current = float(evaluator.faithfulness([current])[0])
    removed: list[Edge] = []
    passes = 1
    for port in _receivers_backwards(start):
        current, f_current, (extra, _) = _one_by_one(evaluator, current, f_current, _incoming(current, port), tau,
                                                     removed)
        passes += extra
    return AcdcResult(current, passes, passes, tuple(removed))


def _run(request: Request) -> Found:
    evaluator, progress = request.evaluator, request.progress
    start = CircuitGraph.from_edges(all_edges(evaluator.session.backend.shape))
    result = acdc(evaluator, start, request.tau,
                  progress=(lambda done, total: progress("acdc: pruning receivers", done, total)) if progress else None)
    return Found(f"acdc, tau = {request.tau:g}, {result.passes} batched passes", circuit=result.circuit)


ENTRY = Method("acdc", 3, "ACDC-style pruning: from every edge, remove those that change faithfulness by less "
               "than `tau`, receiver by receiver from the output back", False, Gradient.NONE, _run)
