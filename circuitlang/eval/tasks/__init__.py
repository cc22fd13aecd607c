"""Tasks: the examples a circuit is evaluated on (`base.TaskData`), from generators
(`zoo`, `stdlib`, listed in `registry.GENERATORS`) or JSONL files (`jsonl`)."""
