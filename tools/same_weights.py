"""Does a re-run of a training command give the same model? Compare two `streamdet train` checkpoints.

Prints, for each pair of files: how many weight tensors there are, how many are bit-identical
(``torch.equal``), the largest absolute difference, and the two runs' per-epoch training loss and
validation mAP@0.5 side by side (from each checkpoint's ``train`` record). Exits 1 when a pair differs.

    .venv/bin/python -m tools.same_weights runs/repro/events.pt streamdet/weights/events-default.pt
    .venv/bin/python -m tools.same_weights A.pt B.pt C.pt D.pt --json out/same.json   # A vs B, C vs D
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from streamdet.errors import UserFacingError
from streamdet.model import read_checkpoint


def compare_checkpoints(first: dict, second: dict) -> dict:
    """Tensor-by-tensor comparison and the two training histories."""
    a, b = first["state_dict"], second["state_dict"]
    if a.keys() != b.keys():
        return {"tensors": len(a), "same_keys": False, "identical": False}
    equal, largest = 0, 0.0
    for name, tensor in a.items():
        other = b[name]
        if tensor.shape == other.shape and torch.equal(tensor, other):
            equal += 1
        elif tensor.shape == other.shape:
            largest = max(largest, float((tensor.double() - other.double()).abs().max()))
        else:
            largest = float("inf")
    return {
        "tensors": len(a),
        "same_keys": True,
        "equal_tensors": equal,
        "identical": equal == len(a),
        "max_abs_difference": largest,
        "history": [history(first), history(second)],
    }


def history(checkpoint: dict) -> list[dict]:
    """Per-epoch ``{"epoch", "loss", "val_map50"}`` from a checkpoint's ``train`` record (may be empty)."""
    epochs = checkpoint.get("train", {}).get("history", [])
    return [
        {key: entry.get(key) for key in ("epoch", "loss", "val_map50")}
        for entry in epochs
        if isinstance(entry, dict)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "checkpoints", nargs="+", help="pairs of checkpoint paths or shipped model names: A B [C D ...]"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if len(args.checkpoints) % 2:
        parser.error("give the checkpoints in pairs (an even number of paths)")
    results = []
    for first, second in zip(args.checkpoints[::2], args.checkpoints[1::2], strict=True):
        result = {"a": str(first), "b": str(second)}
        try:
            result.update(compare_checkpoints(read_checkpoint(first), read_checkpoint(second)))
        except UserFacingError as error:
            parser.exit(2, f"same_weights: error: {error}\n")
        results.append(result)
        verdict = "identical" if result["identical"] else "DIFFERENT"
        equal = f"{result.get('equal_tensors', 0)}/{result['tensors']}"
        print(f"{first} vs {second}: {verdict}, {equal} tensors equal")
        for left, right in zip(*result.get("history", [[], []]), strict=False):
            print(
                f"  epoch {left['epoch']}: loss {left['loss']} / {right['loss']}, "
                f"val mAP@0.5 {left['val_map50']} / {right['val_map50']}"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if all(result["identical"] for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
