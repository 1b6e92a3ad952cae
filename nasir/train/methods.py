"""The training rules a network's layers call for, switched on by what the module holds.

- Learned group convolutions (CondenseNet, Huang et al. CVPR 2018): the condensation
  schedule is advanced every iteration with the training progress, as the official loop
  calls `_check_drop` (C-1 condensing stages in the first half of training, columns of least
  L1 importance masked per group; `LearnedGroupConv.update_progress`), and the group-lasso
  term lambda * sum_g,j ||W[g, j]|| is added to the loss (lambda = 1e-5, the official recipe).
- ScheduledDropPath (NASNet, TF-slim): the drop probability ramps linearly with progress.
- Adder layers (AdderNet): nothing to do here; `Adder2d`'s backward already applies the
  paper's full-precision weight gradient, HardTanh input gradient and adaptive learning rate.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from nasir.layers.adder import Adder2d
from nasir.layers.drop_path import ScheduledDropPath, set_drop_path_progress
from nasir.layers.learned_group_conv import LearnedGroupConv, group_lasso, update_condensation

DEFAULT_LASSO = 1e-5


@dataclass
class Methods:
    model: nn.Module
    lasso: float = DEFAULT_LASSO
    condensing: int = 0
    drop_paths: int = 0
    adders: int = 0

    @classmethod
    def of(cls, model: nn.Module, lasso: float = DEFAULT_LASSO) -> Methods:
        """The rules `model` needs, from the layers it holds."""
        count = {LearnedGroupConv: 0, ScheduledDropPath: 0, Adder2d: 0}
        for layer in model.modules():
            for kind in count:
                if isinstance(layer, kind):
                    count[kind] += 1
        return cls(model, lasso, count[LearnedGroupConv], count[ScheduledDropPath],
                   count[Adder2d])

    def before_step(self, progress: float) -> None:
        """Advance the schedules to training `progress` in [0, 1] (call before each step)."""
        if self.condensing:
            update_condensation(self.model, min(max(progress, 0.0), 1.0))
        if self.drop_paths:
            set_drop_path_progress(self.model, progress)

    def extra_loss(self) -> Tensor | None:
        """The regularisers to add to the task loss (None when there are none)."""
        if self.condensing and self.lasso > 0:
            return self.lasso * group_lasso(self.model)
        return None

    def describe(self) -> list[str]:
        """One line per rule in force, for the start of a run."""
        lines = []
        if self.condensing:
            lines.append(f"CondenseNet: condensation schedule on {self.condensing} learned "
                         f"group conv(s), group lasso lambda={self.lasso:g}")
        if self.drop_paths:
            lines.append(f"NASNet: drop path ramped over training on {self.drop_paths} path(s)")
        if self.adders:
            lines.append(f"AdderNet: {self.adders} adder layer(s) with the paper's gradients "
                         "and adaptive learning rate")
        return lines


def progress_of(epoch: int, step: int, steps: int, epochs: int) -> float:
    """Training progress (epoch * steps + step) / (epochs * steps), as the official loops."""
    return (epoch * steps + step) / max(epochs * steps, 1)

