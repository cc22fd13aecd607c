"""`circ serve`: a local web page over a folder of .circ files (the layer above discovery).

- `workspace`: the served files, the circuits as the page edits them, the measures
  (the same Evaluator as `circ eval --task`);
- `http`: the standard library's HTTP server, the JSON API, and the page in `static/`.
"""
