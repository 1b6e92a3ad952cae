"""The training rules a network's layers call for, switched on by what the module holds.

- Learned group convolutions (CondenseNet, Huang et al. CVPR 2018): the condensation
  schedule is advanced every iteration with the training progress, as the official loop
  calls `_check_drop` (C-1 condensing stages in the first half of training, columns of least
  L1 importance masked per group; `LearnedGroupConv.update_progress`), and the group-lasso
  term lambda * sum_g,j ||W[g, j]|| is added to the loss (lambda = 1e-5, the official recipe).
- ScheduledDropPath (NASNet, TF-slim): the drop probability ramps linearly with progress.
- Ensembles (SplitNet, Zhao et al., arXiv 2011.14660): the loss is the members' summed
  cross-entropies plus the co-training term w * (H(mean_i p_i) - mean_i H(p_i)) (their
  Jensen-Shannon divergence), w = 0.5 ramped up linearly over the first COT_WARMUP of
  training, as the official `cot_weight` and its warm-up; validation reports each member.
- Adder layers (AdderNet): nothing to do here; `Adder2d`'s backward already applies the
  paper's full-precision weight gradient, HardTanh input gradient and adaptive learning rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from nasir.layers.adder import Adder2d
from nasir.layers.drop_path import ScheduledDropPath, set_drop_path_progress
from nasir.layers.learned_group_conv import LearnedGroupConv, group_lasso, update_condensation

DEFAULT_LASSO = 1e-5
COT_WEIGHT = 0.5
COT_WARMUP = 0.25  # share of training over which the co-training weight ramps up


@dataclass
class Methods:
    model: nn.Module
    lasso: float = DEFAULT_LASSO
    condensing: int = 0
    drop_paths: int = 0
    adders: int = 0
    ensembles: int = 0
    members: list[Tensor] = field(default_factory=list, repr=False)  # the last forward's

    @classmethod
    def of(cls, model: nn.Module, lasso: float = DEFAULT_LASSO) -> Methods:
        """The rules `model` needs, from the layers it holds."""
        from nasir.layers.ensemble import Ensemble

        count = {LearnedGroupConv: 0, ScheduledDropPath: 0, Adder2d: 0, Ensemble: 0}
        for layer in model.modules():
            for kind in count:
                if isinstance(layer, kind):
                    count[kind] += 1
        methods = cls(model, lasso, count[LearnedGroupConv], count[ScheduledDropPath],
                      count[Adder2d], count[Ensemble])
        if methods.ensembles == 1:  # the members' logits, seen as the ensemble reads them
            ensemble = next(m for m in model.modules() if isinstance(m, Ensemble))
            ensemble.register_forward_hook(methods._keep_members)
        return methods

    def _keep_members(self, module: nn.Module, inputs: tuple, output: Tensor) -> None:
        self.members = list(inputs)

    def task_loss(self, logits: Tensor, target: Tensor, progress: float) -> Tensor:
        """Cross-entropy, or for an ensemble SplitNet's co-training loss."""
        if not (self.ensembles == 1 and self.members):
            return torch.nn.functional.cross_entropy(logits, target)
        return cotraining_loss(self.members, target, cot_weight(progress))

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
        if self.ensembles == 1:
            lines.append(f"SplitNet: co-training loss of the ensemble's members, weight "
                         f"{COT_WEIGHT} ramped up over the first {COT_WARMUP:.0%} of training")
        if self.adders:
            lines.append(f"AdderNet: {self.adders} adder layer(s) with the paper's gradients "
                         "and adaptive learning rate")
        return lines


def progress_of(epoch: int, step: int, steps: int, epochs: int) -> float:
    """Training progress (epoch * steps + step) / (epochs * steps), as the official loops."""
    return (epoch * steps + step) / max(epochs * steps, 1)


def cot_weight(progress: float) -> float:
    """The co-training weight at training `progress`: COT_WEIGHT after a linear warm-up."""
    return COT_WEIGHT * min(1.0, max(progress, 0.0) / COT_WARMUP)


def cotraining_loss(members: list[Tensor], target: Tensor, weight: float) -> Tensor:
    """SplitNet: sum_i CE(z_i, y) + weight * (H(mean_i p_i) - mean_i H(p_i))."""
    ce = sum(torch.nn.functional.cross_entropy(z, target) for z in members)
    probs = [torch.softmax(z, dim=-1) for z in members]
    logs = [torch.log_softmax(z, dim=-1) for z in members]
    mean = torch.stack(probs).mean(0)
    h_mean = -(mean * torch.log(mean.clamp_min(1e-12))).sum(-1)
    mean_h = torch.stack([-(p * lp).sum(-1) for p, lp in zip(probs, logs, strict=True)]).mean(0)
    return ce + weight * (h_mean - mean_h).mean()
