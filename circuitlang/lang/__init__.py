"""Layer 1, lang: .circ text -> `Compiled`, without torch.

One stage per module: `source` (reading the file), `parse` (syntax tree with spans,
`syntax`), `resolve` (imports and names), `lower` (expansion against the model's shape:
`CircuitGraph`s), `check` (tasks and checks: `CheckSpec`s); `pipeline` runs them all.
`fmt` and `write` turn trees and graphs back into canonical text; `library` lists the
standard library. docs/architecture.md describes the layers.
"""
