"""Write the JSON card beside a shipped checkpoint (``streamdet/weights/<name>.json``) from the checkpoint
itself and ``streamdet eval --json`` reports, so the card cannot drift from the weights.

    .venv/bin/python -m tools.weights_card events-default --eval out/eval/events-*.json \\
        --command "streamdet train ..." --out streamdet/weights/events-default.json

The card holds what the checkpoint records (modality, classes, window, event scale, sensor, architecture,
the training record of the last stage: recipe, data, per-epoch loss and validation mAP, selected epoch),
the SHA-256 of the weights file, the test figures of every ``--eval`` report (keyed by split) and the
decoding they were measured with (the current default's), the
commands of the last training stage, and a pointer to docs/model-card.md for the whole chain.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path


def _same_model(model: str, name: str, digest: str) -> bool:
    """``model`` (as a report names it) is ``name`` or a file with the same bytes."""
    if model == name:
        return True
    path = Path(model)
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == digest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name", help="shipped model name, e.g. events-default")
    parser.add_argument("--eval", nargs="*", default=[], help="streamdet eval --json reports of this model")
    parser.add_argument("--command", action="append", default=[], help="a command of the last stage")
    parser.add_argument("--machine", default="2-core CPU sandbox (AMD EPYC), no GPU")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    from dataclasses import asdict

    from experiments.window_sweep import rows_of_report
    from streamdet.model import load_detector, resolve_model_path

    bundle = load_detector(args.name)
    path = Path(resolve_model_path(args.name))
    train = dict(bundle.metadata.get("train", {}))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    tests = {}
    for report_path in args.eval:
        # streamdet eval --json (one split) or experiments/window_sweep.py rows; only the model's own window
        for entry in rows_of_report(Path(report_path)):
            if entry["window_ms"] != entry["trained_window_ms"]:
                continue
            if not _same_model(entry["model"], args.name, digest):
                raise SystemExit(
                    f"error: {report_path} scores {entry['model']}, not the weights of {args.name}"
                )
            tests[entry["data"]] = {key: entry[key] for key in ("images", "map50", "map", "ap50_per_class")}
    card = {
        "name": args.name,
        "sha256": digest,
        "modality": bundle.spec.modality,
        "class_names": list(bundle.class_names),
        "window_us": bundle.spec.window_us,
        "event_scale": bundle.spec.event_scale,
        "history_windows": bundle.spec.history_windows,
        "sensor_size": list(bundle.spec.sensor_size),
        "config": asdict(bundle.config),
        "train": {**train, "commands": args.command},
        "test": tests,
        "decoding": {
            "score_thresh": bundle.decoding.score_thresh,
            "nms_thresh": bundle.decoding.nms_thresh,
            "vote_iou": bundle.decoding.vote_iou,
            "max_dets": bundle.decoding.max_dets,
        },
        "eval_command": f"streamdet eval --model {args.name} --data DIR/test --json OUT",
        "machine": args.machine,
        "card": "docs/model-card.md",
    }
    Path(args.out).write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {args.out} ({len(tests)} test splits)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
