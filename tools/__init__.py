"""Release tools, run from the repository root: ``python -m tools.<name>``.

- ``tools.weights_card``: the JSON card beside a shipped checkpoint, from the checkpoint and its eval
  reports.
- ``tools.same_weights``: whether a re-run of a training command gives bit-identical weights.
- ``tools.gallery``: the images of docs/gallery/ (one per synthetic scene preset).

Not part of the installed ``streamdet`` package.
"""
