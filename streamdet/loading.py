"""Loading a detector by name or file, converting it to a spiking network where needed: the one place
below both the runtime (detector node, demo, evaluation) and the CLI that knows every model file.

Files:
- an ANN checkpoint (``streamdet-ann/2``, or ``/1`` migrated on read; ``streamdet.model``);
- a converted SNN (``streamdet-snn/2``): tensors and plain values only, read with
  ``torch.load(weights_only=True)``, so a file cannot run code. It stores the ANN's weights, the
  conversion settings and each population's calibrated range, from which :func:`load_snn` rebuilds the
  same spiking graph, and the graph's own tensors (normalised weights, bias-calibration currents);
- a ``streamdet-snn/1`` file of earlier versions pickled its graph, whose code runs on unpickling: it is
  refused like any other file that holds more than tensors (convert the model again).
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from streamdet.contract import contract_record, read_contract_record
from streamdet.convert import ConversionConfig, convert_detector
from streamdet.errors import FileFormatError, UserFacingError
from streamdet.model import (
    DetectorBundle,
    bundle_from_checkpoint,
    load_detector,
    resolve_model_path,
)
from streamdet.neurons import IFParameters
from streamdet.safe_unpickle import load_weights_file
from streamdet.snn import IFNeurons, SpikingDetector

SNN_FORMAT = "streamdet-snn/2"
"""``format`` of a converted-network file written by :func:`save_snn`."""

__all__ = ["SNN_FORMAT", "load_detector", "load_snn", "save_snn", "convert_quant"]


def convert_quant(bundle: DetectorBundle, burst: bool = False) -> SpikingDetector:
    """The data-free conversion of a Quant-ReLU detector (its learned clips as ranges)."""
    options: dict[str, Any] = {"normalisation": "quant"}
    if burst:
        options["burst"] = True
    return convert_detector(bundle, None, ConversionConfig(**options), progress=False)


def save_snn(snn: SpikingDetector, path: str | Path) -> None:
    """Write a converted detector as one ``streamdet-snn/2`` file (tensors and plain values only;
    atomically: a temporary file, then a rename)."""
    if snn.source is None:
        raise UserFacingError(
            "this spiking network was not made by streamdet.convert.convert_detector, so it cannot be saved "
            "without pickling its graph"
        )
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    torch.save(
        {
            "format": SNN_FORMAT,
            "contract": contract_record(snn.spec, snn.decoding),
            "class_names": list(snn.class_names),
            "model_config": snn.model_config,
            "ann_state_dict": snn.source["state_dict"],
            "ranges": snn.source["ranges"],
            "conversion": snn.conversion,
            "neuron": snn.neuron._asdict(),
            "graph_state_dict": {k: v.detach().cpu() for k, v in snn.graph_module.state_dict().items()},
        },
        partial,
    )
    partial.replace(path)


def load_snn(name_or_path: str | Path, burst: bool = False) -> SpikingDetector:
    """A spiking detector from a shipped model name, an ANN checkpoint (converted with its learned
    Quant-ReLU clips, no data needed; burst neurons with ``burst``) or a converted-network file.

    UserFacingError / FileFormatError naming the file for a missing, foreign, old or damaged file.
    """
    path = resolve_model_path(name_or_path)
    if not path.is_file():
        return convert_quant(load_detector(name_or_path), burst)
    payload = load_weights_file(path)
    found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
    if isinstance(payload, dict) and str(found).startswith("streamdet-ann"):
        return convert_quant(bundle_from_checkpoint(payload, path), burst)
    if found == SNN_FORMAT:
        return _rebuild_snn(payload, path)
    raise FileFormatError(
        path, f"expected a streamdet model ({SNN_FORMAT!r} or an ANN checkpoint), found {found!r}"
    )


def _rebuild_snn(payload: dict[str, Any], path: Path) -> SpikingDetector:
    missing = [
        key
        for key in (
            "contract",
            "class_names",
            "model_config",
            "ann_state_dict",
            "ranges",
            "conversion",
            "neuron",
        )
        if key not in payload
    ]
    if missing:
        raise FileFormatError(path, f"lacks field(s) {missing}")
    spec, decoding = read_contract_record(payload["contract"], path)
    checkpoint = {
        "format": "streamdet-ann/2",
        "contract": payload["contract"],
        "config": payload["model_config"],
        "class_names": payload["class_names"],
        "state_dict": payload["ann_state_dict"],
    }
    bundle = bundle_from_checkpoint(checkpoint, path)
    known = {f.name for f in fields(ConversionConfig)}
    conversion = {key: value for key, value in payload["conversion"].items() if key in known}
    for key in ("percentiles", "membrane_bounds"):
        if isinstance(conversion.get(key), list):
            conversion[key] = tuple(conversion[key])
    ranges = {name: (low, high) for name, (low, high) in payload["ranges"].items()}
    snn = convert_detector(bundle, None, ConversionConfig(**conversion), progress=False, ranges=ranges)
    _load_graph_state(snn, payload.get("graph_state_dict", {}), path)
    snn.conversion = dict(payload["conversion"])
    snn.neuron = IFParameters(**payload["neuron"])
    return snn


def _load_graph_state(snn: SpikingDetector, state: dict[str, torch.Tensor], path: Path) -> None:
    """The saved graph's tensors into the rebuilt graph: bias-calibration currents first (buffers that a
    fresh conversion does not have), then everything else, strictly."""
    modules = dict(snn.graph_module.named_modules())
    for key, value in state.items():
        owner, _, name = key.rpartition(".")
        if name == "current_offset" and isinstance(modules.get(owner), IFNeurons):
            modules[owner].set_current_offset(value)
    try:
        snn.graph_module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise FileFormatError(path, f"its graph does not match its ANN and conversion ({first})") from None
