"""Backends: a loaded model behind one interface (`base.Backend`), one module per library.

`transformer_lens` wraps a TransformerLens 3.x `HookedTransformer`. Nothing outside this
package touches a model library's attributes.
"""
