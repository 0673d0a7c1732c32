"""One-off studies that shaped the shipped models, kept runnable: ``python -m experiments.<name>`` from
the repository root.

Each module answers one question its docstring states (how anchors cover the labels, which boxes a
model misses, how decoding or input windows change mAP, how a model holds up under another sensor's
noise); their findings are written down in docs/model-card.md and docs/history/. They are not part of
the installed ``streamdet`` package, and the maintained benchmarks live in ``bench/``.
"""
