"""The events model's selection score (docs/history/model-card-history.md): for each model, the mean
of its clean mAP@0.5 (mean over the validation splits of a `experiments/window_sweep.py` JSON) and its
perturbed mAP@0.5 (mean over the perturbed rows of a `experiments/robustness.py` JSON).

    .venv/bin/python -m experiments.selection_score --window out/window/val-s14h.json \
        --robustness out/robustness/val9-s14h.json

Without `--window`, the clean figures are the `none` rows of the `--robustness` files (a robustness run
over the validation splits scores both, as the intensity model's rules do):

    .venv/bin/python -m experiments.selection_score --robustness out/robustness/val-i6a.json

Several files of each kind may be given; rows are matched by model name (the path an experiment was given),
so score two files of one path, such as a run and its re-run, in separate calls. Prints one line per model
(the clean split figures, the perturbed ones, the two means and the score), best last; `--json OUT`
writes the same as a list of records.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path


def selection_scores(window_rows: list[dict], robustness_rows: list[dict]) -> list[dict]:
    """One record per model present in both row lists: ``clean`` (``{split: map50}``), ``perturbed``
    (``{"split kind:level": map50}``, the split left out of rows that name none, so perturbations of
    several splits all count), their means and ``score`` (the mean of the two means), sorted by score."""
    clean: dict[str, dict[str, float]] = defaultdict(dict)
    for row in window_rows:
        clean[row["model"]][row["data"]] = row["map50"]
    perturbed: dict[str, dict[str, float]] = defaultdict(dict)
    for row in robustness_rows:
        if row["perturbation"] != "none":
            split = f"{row['data']} " if "data" in row else ""
            perturbed[row["model"]][f"{split}{row['perturbation']}:{row['level']:g}"] = row["map50"]
    records = []
    for model in clean.keys() & perturbed.keys():
        clean_mean = sum(clean[model].values()) / len(clean[model])
        perturbed_mean = sum(perturbed[model].values()) / len(perturbed[model])
        records.append(
            {
                "model": model,
                "clean": clean[model],
                "perturbed": perturbed[model],
                "clean_mean": round(clean_mean, 4),
                "perturbed_mean": round(perturbed_mean, 4),
                "score": round((clean_mean + perturbed_mean) / 2, 4),
            }
        )
    return sorted(records, key=lambda record: record["score"])


def _rows(paths: list[Path]) -> list[dict]:
    rows = []
    for path in paths:
        try:
            rows += json.loads(path.read_text())["rows"]
        except (OSError, ValueError, KeyError) as error:
            sys.exit(f"error: {path}: not an experiment JSON with 'rows' ({error})")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--window",
        type=Path,
        nargs="+",
        default=None,
        help="experiments/window_sweep.py JSON(s) (default: the 'none' rows of the --robustness files)",
    )
    parser.add_argument(
        "--robustness", type=Path, nargs="+", required=True, help="experiments/robustness.py JSON(s)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the records here")
    args = parser.parse_args(argv)
    robustness_rows = _rows(args.robustness)
    if args.window is None:
        window_rows = [row for row in robustness_rows if row["perturbation"] == "none"]
    else:
        window_rows = _rows(args.window)
    records = selection_scores(window_rows, robustness_rows)
    if not records:
        sys.exit("error: no model has both clean and perturbed rows in the files given")
    for record in records:
        clean = " / ".join(f"{value:.3f}" for value in record["clean"].values())
        perturbed = " / ".join(f"{value:.3f}" for value in record["perturbed"].values())
        print(
            f"{record['model']}: clean {clean} (mean {record['clean_mean']:.4f}), perturbed {perturbed} "
            f"(mean {record['perturbed_mean']:.4f}), score {record['score']:.4f}"
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(records, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
