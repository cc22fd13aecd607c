"""The two engines that evaluate circuits: `fast` (computes only what differs, batched over
circuit variants, from the backend's pieces) and `reference` (the literal masked formula
with hooks, the yardstick the fast engine is tested against)."""
