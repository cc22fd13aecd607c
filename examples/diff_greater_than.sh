#!/bin/sh
# Compare the two published Greater-Than circuits of GPT-2 small (Hanna et al. 2023), both
# in stdlib/gpt2/greater_than.circ: `acdc`, the version ACDC uses as ground truth, and
# `hanna`, the version in the authors' repository. Static: no weights are needed.
#
#     sh examples/diff_greater_than.sh              # from the repository root
#     OUT=/tmp CIRC=.venv/bin/circ sh examples/diff_greater_than.sh
#
# Writes gt-diff.json and gt-diff.svg into $OUT (default: the current folder). The SVG
# needs Graphviz's `dot`. `circ diff` exits 1 when the circuits differ (like diff(1)), which
# is the expected answer here; only 2 (a usage or internal error) stops the script.
set -u
CIRC=${CIRC:-circ}
OUT=${OUT:-.}
GT=stdlib/gpt2/greater_than.circ

run() {
    "$CIRC" "$@"
    status=$?
    [ "$status" -le 1 ] || exit "$status"
}

# Nodes and edges in one circuit and not the other, as text ("-" only in acdc, "+" only in hanna).
run diff "$GT:acdc" "$GT:hanna"

# The same as JSON, for scripts.
run diff "$GT:acdc" "$GT:hanna" --format json -o "$OUT/gt-diff.json"

# One drawing of both: shared nodes and edges, and those only in one of them, coloured.
run diff "$GT:acdc" "$GT:hanna" --format svg -o "$OUT/gt-diff.svg"
