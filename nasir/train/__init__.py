"""Training compiled networks: data sets, the training loop, checkpoints (`nasir train`)."""

from nasir.train.loop import TrainConfig, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
