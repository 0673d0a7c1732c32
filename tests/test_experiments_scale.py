"""experiments/scale_sweep.py: test-time input scales on the shipped events model."""

from __future__ import annotations

import argparse

import pytest
import torch

from experiments import scale_sweep
from streamdet.model import load_detector

pytestmark = pytest.mark.usefixtures("single_thread")


def _inputs(bundle) -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    width, height = bundle.spec.sensor_size
    counts = torch.zeros(1, bundle.config.in_channels, height, width)
    counts[..., 100:140, 150:170] = torch.rand(1, bundle.config.in_channels, 40, 20, generator=generator)
    return counts


def test_scale_one_is_the_detector_and_scales_map_boxes_back() -> None:
    bundle = load_detector("events-default")
    inputs = _inputs(bundle)
    with torch.no_grad():
        native = bundle.detect(inputs)[0]
        one = scale_sweep.detect_at_scales(bundle, inputs, (1.0,), "nearest")[0]
        doubled = scale_sweep.detect_at_scales(bundle, inputs, (2.0,), "nearest")[0]
        merged = scale_sweep.detect_at_scales(bundle, inputs, (1.0, 2.0), "nearest")[0]
    assert torch.equal(native, one)
    width, height = bundle.spec.sensor_size
    assert doubled.shape[0] > 0
    assert float(doubled[:, [0, 2]].max()) <= width and float(doubled[:, [1, 3]].max()) <= height
    assert 0 < merged.shape[0] <= bundle.decoding.max_dets
    union = torch.cat([native, doubled])
    assert all(bool((union == row).all(dim=1).any()) for row in merged), "merged boxes come from the scales"
    assert torch.all(merged[:-1, 4] >= merged[1:, 4])


def test_scale_sets_parse_and_reject_bad_text() -> None:
    assert scale_sweep.parse_scale_set("1+2") == (1.0, 2.0)
    assert scale_sweep.parse_scale_set("1.5") == (1.5,)
    for text in ("1+x", "0", "-2"):
        with pytest.raises(argparse.ArgumentTypeError, match="scale set"):
            scale_sweep.parse_scale_set(text)
