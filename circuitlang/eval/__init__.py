"""Layer 3, eval: circuits measured on a model (torch).

`backends` (a loaded model behind one interface), `zoo` (models built in code),
`loading` (the one loader), `tasks` (examples), `senders`, `positions`, `engines` (fast
and reference), `session` (a model, a task and an ablation, prepared once), `evaluator`
(faithfulness, minimality, completeness, verdicts), `results`, `runner` (a file's
checks) and `report` (tables, JSON, Markdown). docs/architecture.md describes the layers.
"""
