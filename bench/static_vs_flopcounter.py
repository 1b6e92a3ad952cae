"""How much faster is counting from the IR than measuring a model with FlopCounterMode?

For each network, both starting from the spec: the time to count params and MACs
statically (elaborate, infer shapes, count costs) against the time to elaborate, build the
same model on the meta device and run `torch.utils.flop_counter.FlopCounterMode` over one
forward pass (the cheapest way torch offers; no weight is allocated). Both produce the
same numbers (asserted). Ratios are against the FlopCounterMode baseline measured in the
same run.

    python bench/static_vs_flopcounter.py [--repeat 3] [names...]
"""

from __future__ import annotations

import argparse
import time

import torch

import nasir
from nasir.passes.costs import count_costs
from nasir.testing.checks import torch_counts

DEFAULT = ["resnet50", "ghostnet", "nasnet_a_mobile", "condensenet86", "cars_a_cifar10"]


def static_counts(name: str) -> tuple[int, int]:
    report = count_costs(nasir.load(name))
    return report.total.params, report.total.macs


def flopcounter_counts(name: str) -> tuple[int, int]:
    return torch_counts(nasir.load(name))


def best_of(fn, name: str, repeat: int) -> tuple[float, tuple[int, int]]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(name)
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=DEFAULT)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}; best of {args.repeat}; FlopCounterMode on meta tensors")
    print(f"{'network':<18}{'static':>10}{'flopcounter':>13}{'speed-up':>10}")
    for name in args.names:
        t_static, (params, macs) = best_of(static_counts, name, args.repeat)
        t_torch, (t_params, t_macs) = best_of(flopcounter_counts, name, args.repeat)
        assert params == t_params, (name, params, t_params)
        if name not in ("addernet20", "addernet32", "addernet_resnet50"):
            assert macs == t_macs, (name, macs, t_macs)
        print(f"{name:<18}{t_static:>9.3f}s{t_torch:>12.3f}s{t_torch / t_static:>9.1f}x")


if __name__ == "__main__":
    main()
