"""Check that a compiled nasir network computes the same function as a reference module.

When you write a spec from a paper, the strongest check is numerical: build the official
(or a faithful transcription of the official) PyTorch module, give it random but realistic
weights, copy them into nasir's module under nasir's names, and compare outputs. This is how
nasir's own "same function" tests (tests/test_*_official.py: ResNet, MobileNetV2, GhostNet,
WRN, SplitNet, AdderNet, CondenseNet, NASNet-A) work::

    reference = OfficialNet()
    randomize_for_comparison(reference, torch.randn(2, 3, 32, 32))
    ours = nasir.compile("my_net").eval()
    copy_renamed(reference, ours, lambda key: key.replace("layer", "stage"))
    diff, scale = max_abs_diff(ours, reference, torch.randn(2, 3, 32, 32))
    assert diff <= 1e-4 * max(1.0, scale)

A good test also shows the comparison can fail (e.g. nudge one copied weight and assert the
difference grows by orders of magnitude).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn


def identity(key: str) -> str:
    """The default renaming: the reference already uses nasir's names."""
    return key


def randomize_for_comparison(model: nn.Module, x: Tensor, seed: int = 0) -> None:
    """Give `model` realistic BatchNorm state, then leave it in eval mode.

    Freshly initialised BN layers (running mean 0, var 1, weight 1, bias 0) hide mistakes
    such as a wrong eps or a swapped BN; so the running statistics are set from one
    training-mode forward of `x` (momentum 1), and then every `nn.BatchNorm2d` gets a random
    positive scale, a random bias and randomly perturbed (still positive) running statistics,
    drawn from a generator seeded with `seed` (reproducible, independent of the global RNG).
    Other weights keep their (random) initialisation.
    """
    gen = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(x)
        for m in bns:
            m.momentum = 0.1
            m.weight.uniform_(0.5, 1.5, generator=gen)
            m.bias.normal_(0.0, 0.1, generator=gen)
            m.running_mean.add_(0.1 * torch.randn(m.num_features, generator=gen))
            m.running_var.mul_(torch.empty(m.num_features).uniform_(0.5, 2.0, generator=gen))
    model.eval()


def copy_renamed(reference: nn.Module | Mapping[str, Tensor], target: nn.Module,
                 rename: Callable[[str], str] = identity, *,
                 target_only: Callable[[str], bool] | None = None) -> None:
    """Copy every parameter and buffer of `reference` into `target` under `rename(key)`.

    `reference` is a module or an already translated state dict (for translations that also
    drop or convert entries). The renaming must be one to one, onto exactly `target`'s names,
    with equal shapes, so nothing is silently left at its initial value; each of these is an
    AssertionError naming what differs. `target_only(key)` marks target entries that have no
    counterpart in the reference (e.g. nasir's drop-path `progress` buffers); they are then
    the only ones allowed (and required) to stay missing.
    """
    ref = reference.state_dict() if isinstance(reference, nn.Module) else dict(reference)
    ours = target.state_dict()
    mapped = {rename(k): v for k, v in ref.items()}
    assert len(mapped) == len(ref), "the renaming merges two reference names"
    extra = {k for k in ours if target_only(k)} if target_only is not None else set()
    assert set(mapped) == set(ours) - extra, sorted(set(mapped) ^ (set(ours) - extra))[:10]
    assert all(mapped[k].shape == ours[k].shape for k in mapped)
    if not extra:
        target.load_state_dict(mapped, strict=True)
        return
    missing, unexpected = target.load_state_dict(mapped, strict=False)
    assert set(missing) == extra and not unexpected, (missing, unexpected)


def max_abs_diff(a: nn.Module, b: nn.Module, x: Tensor) -> tuple[float, float]:
    """max |a(x) - b(x)|, and max |b(x)| to scale a tolerance by (outputs must match in shape).

    Both run without gradients; put them in eval mode first.
    """
    with torch.no_grad():
        got, expected = a(x), b(x)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    return (got - expected).abs().max().item(), expected.abs().max().item()
