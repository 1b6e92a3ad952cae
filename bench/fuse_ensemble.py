"""Time of a fused SplitNet ensemble against its members run one after another, and against
the unsplit network (SplitNet, Zhao et al., arXiv 2011.14660).

Three models of one network (default WRN-28-10 for CIFAR-100, 32x32 inputs):
- ``unsplit``: the original network (the baseline of every ratio);
- ``members``: ``split:S=N`` compiled as it is: the S members run one after another;
- ``fused``:   ``split:S=N`` then ``fuse``: one network of grouped layers, one call.

Each row is a (pass, batch) pair, forward only (``fwd``, no_grad, eval) or forward+backward
(``fwd+bwd``, train mode). Rounds are interleaved (unsplit, members, fused, unsplit, ...),
torch's thread count is fixed, and each figure is the median over the rounds of process CPU
time and of wall time per step; ratios are against ``unsplit`` measured in the same run.

    python bench/fuse_ensemble.py [--network splitnet_wrn28_10_c100_s1 --by widen] [--S 4]
        [--batch 1 64] [--rounds 5] [--threads 2] [--device cpu|cuda] [--quick]

``--quick`` uses CIFAR ResNet-56 split by the GCD rule and batches 1 and 8 (minutes, not
hours, on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

import nasir  # noqa: E402
from nasir.passes.fuse import ensemble_members, fuse_state_dict  # noqa: E402

MODELS = ("unsplit", "members", "fused")


def build(network: str, split: str, device: str) -> dict[str, nn.Module]:
    """The three modules; the fused one carries the separate members' weights."""
    ir = nasir.load(network)
    divided = nasir.transform(ir, [split])
    separate = nasir.compile(divided)
    fused = nasir.compile(nasir.transform(divided, ["fuse"]))
    members, _ = ensemble_members(divided)
    fused.load_state_dict(fuse_state_dict(separate.state_dict(), members))
    return {"unsplit": nasir.compile(ir).to(device), "members": separate.to(device),
            "fused": fused.to(device)}


def step_fn(model: nn.Module, x: torch.Tensor, backward: bool) -> Callable[[], None]:
    """One timed step: a forward (no_grad, eval) or a forward+backward (train)."""
    if backward:
        model.train()

        def step() -> None:
            model(x).sum().backward()
            model.zero_grad(set_to_none=True)
    else:
        model.eval()

        def step() -> None:
            with torch.no_grad():
                model(x)
    return step


def timed(step: Callable[[], None], device: str) -> tuple[float, float]:
    """(process CPU seconds, wall seconds) of one step."""
    if device == "cuda":
        torch.cuda.synchronize()
    cpu, wall = time.process_time(), time.perf_counter()
    step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.process_time() - cpu, time.perf_counter() - wall


def measure(models: dict[str, nn.Module], shape: tuple[int, ...], batch: int, backward: bool,
            rounds: int, device: str) -> dict[str, tuple[float, float]]:
    """Median (CPU, wall) seconds per step of each model, rounds interleaved."""
    x = torch.randn(batch, *shape, device=device)
    steps = {name: step_fn(model, x, backward) for name, model in models.items()}
    for step in steps.values():  # warm-up: allocator, kernels, BN buffers
        step()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            samples[name].append(timed(step, device))
    return {name: (statistics.median(s[0] for s in got), statistics.median(s[1] for s in got))
            for name, got in samples.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", default="splitnet_wrn28_10_c100_s1")
    parser.add_argument("--by", default="widen", help="split by this spec parameter ('' = GCD)")
    parser.add_argument("--S", type=int, default=4)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.network, args.by, args.batch = "resnet56", "", [1, 8]
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    split = f"split:S={args.S}" + (f",by={args.by}" if args.by else "")
    models = build(args.network, split, args.device)
    shape = nasir.load(args.network).node(nasir.load(args.network).inputs[0]).shape
    print(f"{args.network} --pass {split} [--pass fuse]; device {args.device}, "
          f"{args.threads} threads, median of {args.rounds} interleaved rounds; "
          "ratio = time / unsplit time (CPU time, wall time)")
    print(f"{'pass':<8} {'batch':>5}  {'model':<8} {'cpu s':>9} {'wall s':>9} "
          f"{'cpu ratio':>9} {'wall ratio':>10}")
    for backward in (False, True):
        for batch in args.batch:
            got = measure(models, shape, batch, backward, args.rounds, args.device)
            base = got["unsplit"]
            for name in MODELS:
                cpu, wall = got[name]
                print(f"{'fwd+bwd' if backward else 'fwd':<8} {batch:>5}  {name:<8} "
                      f"{cpu:>9.4f} {wall:>9.4f} {cpu / base[0]:>8.2f}x {wall / base[1]:>9.2f}x")


if __name__ == "__main__":
    main()
