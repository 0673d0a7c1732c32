"""Fixtures shared by several test modules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="module")
def single_thread():
    """One torch thread for a module: its networks are small, and on a shared machine extra threads only
    wait. Modules opt in with ``pytestmark = pytest.mark.usefixtures("single_thread")``."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset root with a tiny ``train`` split (tests/test_evaluate.py, ``write_tiny_split``)."""
    from test_evaluate import write_tiny_split

    root = tmp_path_factory.mktemp("tiny-data")
    write_tiny_split(root, "train", images=8, seed=0)
    return root


@pytest.fixture(scope="session")
def overfit_checkpoint(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny events model trained until it fits ``tiny_root`` (mAP@0.5 about 1 on it), without
    augmentation (``NO_AUGMENT`` of tests/test_train.py), event scale 3."""
    from streamdet.train import AugmentConfig, TrainConfig, train_detector

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    config = TrainConfig(
        modality="events",
        size="tiny",
        epochs=20,
        batch_size=4,
        lr=2e-2,
        warmup_steps=5,
        event_scale=3.0,
        augment=AugmentConfig(
            flip=0.0, crop_size=None, count_scale=(1.0, 1.0), noise_rate=0.0, polarity_swap=0.0
        ),
    )
    train_detector(config, [tiny_root], out, progress=False, log=lambda line: None)
    torch.set_num_threads(previous)
    return out
