"""Layer 0, core: the values every other layer shares, with no torch and no parser.

Spans, the circuit graph (`Node`, `Edge`, `CircuitGraph`), token positions, model shapes
and the one list of a model's edges, the model table, diagnostics and the error root,
file-system helpers, and the registries of what the language's `ablation` and `metric`
words name. docs/architecture.md describes the layers.
"""
