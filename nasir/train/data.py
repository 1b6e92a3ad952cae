"""Data sets for `nasir train`, named on the command line (`--data digits`).

`digits` is scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), shipped inside
scikit-learn, so a first run needs no download: pixel values 0..16 are scaled to [0, 1] and
standardised with the training split's mean and deviation; a fixed, seeded fifth of the
images is held out for validation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import TensorDataset

from nasir.errors import SpecError, shown

KNOWN = ("digits",)
VAL_FRACTION = 0.2
SPLIT_SEED = 0


@dataclass(frozen=True)
class DataSplit:
    name: str
    train: TensorDataset
    val: TensorDataset
    input_shape: tuple[int, ...]
    classes: int


def load_data(spec: str) -> DataSplit:
    """The data set `spec` names, split into training and validation sets."""
    if spec == "digits":
        return _digits()
    raise SpecError(f"unknown data set '{shown(spec)}'", expected="one of: " + ", ".join(KNOWN))


def _digits() -> DataSplit:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SpecError("--data digits needs scikit-learn, which ships the digits images",
                        expected="pip install scikit-learn") from None
    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(bunch.target, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_val = int(len(labels) * VAL_FRACTION)
    val, train = order[:n_val], order[n_val:]
    mean, std = images[train].mean(), images[train].std()
    images = (images - mean) / std
    return DataSplit("digits", TensorDataset(images[train], labels[train]),
                     TensorDataset(images[val], labels[val]), (1, 8, 8), 10)
