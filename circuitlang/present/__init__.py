"""Layer 2, present: turning circuits and diagnostics into what people and other tools read,
without torch: diagnostic text (`diagnostic_text`), drawings (`render`), differences
(`diff`), circuits across training checkpoints (`track`), and EAP-IG/MIB graph JSON
(`interop`). docs/architecture.md describes the layers.
"""
