"""CondenseNet's learned group convolution and its condensed (converted) form.

Huang, Liu, van der Maaten, Weinberger, "CondenseNet: An Efficient DenseNet using Learned
Group Convolutions", CVPR 2018 (arXiv 1711.09224); behaviour follows the official
`ShichenLiu/CondenseNet` code (`layers.py`, `utils.convert_model`).

During training a `LearnedGroupConv` is a dense 1x1 convolution whose weight is multiplied by a
0/1 mask. Output filter o belongs to group o mod G (interleaved, as the official
`mask[i::G, d]`). Over the first half of training there are C-1 condensing stages; at each one
every group drops in // C of its input columns, those with the smallest L1 importance. After
that each group reads in/C input channels, so the layer becomes `CondensedGroupConv`: pick those
channels (`IndexSelect`), a grouped 1x1 conv, then `ChannelShuffle` to restore the filter order.

The BN and ReLU that precede the convolution in the paper are separate nodes in nasir's IR
and so are not part of these modules.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LASSO_EPSILON = 1e-6
"""Floor under each group-column squared norm before the square root, as the official code."""


def _check_sizes(in_channels: int, out_channels: int, groups: int, condense_factor: int) -> None:
    """Raise ValueError unless the official asserts of `LearnedGroupConv.__init__` hold."""
    for name, value in (
        ("in_channels", in_channels),
        ("out_channels", out_channels),
        ("groups", groups),
        ("condense_factor", condense_factor),
    ):
        if value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
    if in_channels % groups:
        raise ValueError(f"in_channels ({in_channels}) must be divisible by groups ({groups})")
    if in_channels % condense_factor:
        raise ValueError(
            f"in_channels ({in_channels}) must be divisible by condense_factor ({condense_factor})"
        )
    if out_channels % groups:
        raise ValueError(f"out_channels ({out_channels}) must be divisible by groups ({groups})")


def condensing_stage(progress: float, condense_factor: int) -> int:
    """The condensing stage reached at training progress p, as the official `_check_drop`.

    Stage = the smallest i in 0..C-2 with 2p < (i+1)/(C-1), else C-1: C-1 condensing stages
    of equal length fill the first half of training, the second half is the optimization stage.
    """
    for stage in range(condense_factor - 1):
        if progress * 2 < (stage + 1) / (condense_factor - 1):
            return stage
    return condense_factor - 1


class CondensedWeights(NamedTuple):
    """What `LearnedGroupConv.condense` hands to `CondensedGroupConv`.

    `index` (in*G/C,) lists each group's kept input channels, group by group, increasing within
    a group (a channel may appear in several groups). `weight` (out, in/C, 1, 1) is the grouped
    conv's weight, output filters in the official permuted order (see `LearnedGroupConv.condense`).
    """

    index: Tensor
    weight: Tensor


class LearnedGroupConv(nn.Module):
    """A 1x1 convolution that learns, by masking, which inputs each of its G groups reads.

    `weight` (out, in, 1, 1) is dense; `mask` (same shape) zeroes the dropped connections and
    `stage` (long scalar) records the condensing stage reached. `condense_factor` (C) defaults
    to `groups`, as in the official code.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        groups: int,
        condense_factor: int | None = None,
    ) -> None:
        super().__init__()
        condense_factor = groups if condense_factor is None else condense_factor
        _check_sizes(in_channels, out_channels, groups, condense_factor)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = groups
        self.condense_factor = condense_factor
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, 1, 1))
        self.register_buffer("mask", torch.ones(out_channels, in_channels, 1, 1))
        self.register_buffer("stage", torch.zeros((), dtype=torch.long))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise the weight as `nn.Conv2d` does (the official layer wraps one)."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, groups={self.groups}, "
            f"condense_factor={self.condense_factor}"
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask)

    def masked_weight(self) -> Tensor:
        """The effective weight, weight * mask, as (out, in)."""
        return (self.weight * self.mask).flatten(1)

    def _per_group(self, values: Tensor) -> Tensor:
        """Sum an (out, in) tensor over the filters of each group into (G, in).

        Filter o = k*G + g is in group g, so viewing rows as (out/G, G) puts group g at [:, g].
        """
        return values.view(self.out_channels // self.groups, self.groups, -1).sum(0)

    def importance(self) -> Tensor:
        """(G, in): the L1 norm of each group's masked weight column (the paper's Sec. 3.1).

        Detached: it only ranks columns for dropping.
        """
        return self._per_group(self.masked_weight().detach().abs())

    def kept_columns(self) -> Tensor:
        """(G, in) bool: which input channels each group still reads.

        Read off the group's first filter (row g of the mask), as the official conversion does.
        """
        return self.mask[: self.groups, :, 0, 0] > 0

    def lasso_loss(self) -> Tensor:
        """The group-lasso regulariser: sum over g, j of sqrt(max(sum_{o in g} W[o, j]^2, 1e-6)).

        The official code returns 0 once its stage reaches `groups - 1` (the optimization stage
        when G = C, as in every published configuration); this follows it.
        """
        if int(self.stage) >= self.groups - 1:
            return self.weight.new_zeros(())
        squares = self._per_group(self.masked_weight().pow(2))
        return squares.clamp(min=LASSO_EPSILON).sqrt().sum()

    def update_progress(self, progress: float) -> bool:
        """Advance the condensing schedule to training progress p in [0, 1]; True if masked.

        For each stage the schedule advances by, every group drops `in // C` columns: those of
        lowest `importance()` among the ones it still reads. The official `_check_drop` runs
        every iteration, so its stage advances one at a time; dropping once per stage passed
        keeps a coarser caller (say once per epoch) on the same in/C-per-group end point.
        """
        if not 0.0 <= progress <= 1.0:
            raise ValueError(f"progress must be in [0, 1], got {progress}")
        target = condensing_stage(progress, self.condense_factor)
        advanced = target - int(self.stage)
        if advanced <= 0:
            return False
        with torch.no_grad():
            for _ in range(advanced):
                self._drop(self.in_channels // self.condense_factor)
            self.stage.fill_(target)
        return True

    def _drop(self, delta: int) -> None:
        """Mask, in every group, the `delta` kept columns of least importance."""
        kept = self.kept_columns()
        ranking = self.importance().masked_fill(~kept, math.inf)
        dropped = ranking.sort(dim=1, stable=True).indices[:, :delta]
        kept = kept.scatter(1, dropped, False)
        group_of_filter = torch.arange(self.out_channels, device=kept.device) % self.groups
        self.mask.copy_(kept[group_of_filter][:, :, None, None])

    def condense(self) -> CondensedWeights:
        """The index and grouped weight of the equivalent `CondensedGroupConv`.

        Each group keeps in/C columns, listed group by group in increasing order. New output
        k + g*(out/G) takes old filter g + k*G (official `CondensingConv`), so the grouped conv
        emits group-major order and `ChannelShuffle(G)` restores filter order. Raises ValueError
        if condensing has not finished (some group still reads more than in/C channels).
        """
        per_group = self.in_channels // self.condense_factor
        kept = self.kept_columns()
        counts = kept.sum(1).tolist()
        if any(count != per_group for count in counts):
            raise ValueError(
                f"condensing has not finished: groups read {counts} input channels, expected "
                f"{per_group} each (run update_progress up to 0.5 first)"
            )
        index = kept.nonzero()[:, 1]
        columns = index.view(self.groups, 1, per_group)
        d_out = self.out_channels // self.groups
        by_group = self.weight.detach().flatten(1).view(d_out, self.groups, -1).transpose(0, 1)
        weight = by_group.gather(2, columns.expand(-1, d_out, -1))
        return CondensedWeights(index, weight.reshape(self.out_channels, per_group, 1, 1).clone())


class IndexSelect(nn.Module):
    """Select input channels by a stored index (the official `torch.index_select(x, 1, index)`)."""

    def __init__(self, index: Tensor) -> None:
        super().__init__()
        self.register_buffer("index", index.to(torch.long).clone())

    def extra_repr(self) -> str:
        return f"channels={self.index.numel()}"

    def forward(self, x: Tensor) -> Tensor:
        return x.index_select(1, self.index)


class ChannelShuffle(nn.Module):
    """The official `ShuffleLayer`: view (B, G, C/G, H, W), swap the two channel axes, flatten."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        if groups < 1:
            raise ValueError(f"groups must be a positive integer, got {groups}")
        self.groups = groups

    def extra_repr(self) -> str:
        return f"groups={self.groups}"

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        x = x.view(batch, self.groups, channels // self.groups, height, width)
        return x.transpose(1, 2).reshape(batch, channels, height, width)


class CondensedGroupConv(nn.Module):
    """A condensed `LearnedGroupConv`: IndexSelect -> grouped 1x1 Conv2d -> ChannelShuffle.

    Same constructor arguments as `LearnedGroupConv` (in_channels is the dense input width); the
    conv reads in*G/C selected channels and holds out*in/C weights, 1/C of the dense layer's.
    Build it with `from_learned`, or construct it empty and load a converted state dict (the
    official `CondenseConv`, whose index starts as zeros).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        groups: int,
        condense_factor: int | None = None,
    ) -> None:
        super().__init__()
        condense_factor = groups if condense_factor is None else condense_factor
        _check_sizes(in_channels, out_channels, groups, condense_factor)
        selected = in_channels * groups // condense_factor
        self.select = IndexSelect(torch.zeros(selected, dtype=torch.long))
        self.conv = nn.Conv2d(selected, out_channels, 1, groups=groups, bias=False)
        self.shuffle = ChannelShuffle(groups)

    @classmethod
    def from_learned(cls, learned: LearnedGroupConv) -> CondensedGroupConv:
        """Convert a fully condensed `LearnedGroupConv` into an equivalent condensed layer."""
        index, weight = learned.condense()
        module = cls(
            learned.in_channels, learned.out_channels, learned.groups, learned.condense_factor
        )
        module = module.to(device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            module.select.index.copy_(index)
            module.conv.weight.copy_(weight)
        return module

    def forward(self, x: Tensor) -> Tensor:
        return self.shuffle(self.conv(self.select(x)))


def update_condensation(module: nn.Module, progress: float) -> int:
    """Advance every LearnedGroupConv in `module` to training `progress` in [0, 1].

    Call it once per iteration with (epoch·batches + i)/(epochs·batches), as the official
    training loop does; returns how many layers changed their mask.
    """
    return sum(layer.update_progress(progress) for layer in module.modules()
               if isinstance(layer, LearnedGroupConv))


def group_lasso(module: nn.Module) -> Tensor:
    """Σ of `lasso_loss()` over every LearnedGroupConv: add λ times it to the training loss
    (CondenseNet's group-lasso regulariser; the ImageNet recipe uses λ = 1e-5)."""
    terms = [layer.lasso_loss() for layer in module.modules()
             if isinstance(layer, LearnedGroupConv)]
    if not terms:
        return torch.zeros(())
    return torch.stack(terms).sum()
