"""Forward+backward time of AdderNet layers against nn.Conv2d of the same shape, on CPU.

Shapes: every distinct adder-layer shape of ResNet-20/32 on CIFAR (AdderNet, Chen et al.
CVPR 2020: 3x3 16/32/64 channels at 32/16/8 px, the stride-2 transitions and the 1x1 stride-2
downsample) and of ResNet-50 on ImageNet (He et al. 2016: the bottleneck 3x3 layers at
56/28/14/7 px, a stride-2 3x3 and the 1x1 reduce/expand layers).
Variants: ``conv`` (nn.Conv2d, no bias; the baseline), ``torch`` (nasir's pure-PyTorch adder
path) and ``cpp`` (nasir's C++ kernel; omitted if it cannot be built, with the reason).
Each step is forward + backward (input and weight gradients) with ``torch.set_num_threads``
threads (default 1). Time is process CPU time (``time.process_time``), measured in
interleaved rounds (conv, torch, cpp, conv, ...) after a warm-up, reported as the median.

    python bench/adder_speed.py [--rounds 5] [--threads 1] [--only r20|r50] [--no-torch]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Shape:
    """One layer: batch, in/out channels, input size, kernel, stride and padding."""

    net: str
    batch: int
    cin: int
    cout: int
    size: int
    kernel: int
    stride: int
    padding: int

    def label(self) -> str:
        out = (self.size + 2 * self.padding - self.kernel) // self.stride + 1
        return (
            f"{self.net} {self.cin}->{self.cout} {self.kernel}x{self.kernel}/{self.stride} "
            f"{self.size}->{out}px b{self.batch}"
        )


SHAPES = [
    Shape("r20", 32, 16, 16, 32, 3, 1, 1),
    Shape("r20", 32, 32, 32, 16, 3, 1, 1),
    Shape("r20", 32, 64, 64, 8, 3, 1, 1),
    Shape("r20", 32, 16, 32, 32, 3, 2, 1),
    Shape("r20", 32, 32, 64, 16, 3, 2, 1),
    Shape("r20", 32, 16, 32, 32, 1, 2, 0),
    Shape("r50", 8, 64, 64, 56, 3, 1, 1),
    Shape("r50", 8, 128, 128, 28, 3, 1, 1),
    Shape("r50", 8, 256, 256, 14, 3, 1, 1),
    Shape("r50", 8, 512, 512, 7, 3, 1, 1),
    Shape("r50", 8, 128, 128, 56, 3, 2, 1),
    Shape("r50", 8, 256, 64, 56, 1, 1, 0),
    Shape("r50", 8, 64, 256, 56, 1, 1, 0),
]


def _adder_module():
    """Import nasir's adder layer from this checkout, whether or not nasir is installed."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from nasir.layers import adder

    return adder


def make_step(variant: str, shape: Shape) -> Callable[[], None]:
    """A closure running one forward+backward of ``variant`` on a fixed random batch."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape.batch, shape.cin, shape.size, shape.size, generator=gen)
    x.requires_grad_()
    w_shape = (shape.cout, shape.cin, shape.kernel, shape.kernel)
    weight = nn.Parameter(torch.randn(w_shape, generator=gen))
    if variant == "conv":

        def forward(inp: Tensor) -> Tensor:
            return nn.functional.conv2d(inp, weight, None, shape.stride, shape.padding)
    else:
        adder2d = _adder_module().adder2d

        def forward(inp: Tensor) -> Tensor:
            return adder2d(inp, weight, None, shape.stride, shape.padding, backend=variant)

    grad = torch.randn_like(forward(x.detach()))

    def step() -> None:
        x.grad = None
        weight.grad = None
        forward(x).backward(grad)

    return step


def measure(shape: Shape, variants: list[str], rounds: int) -> dict[str, float]:
    """Median CPU seconds per step of each variant, over interleaved rounds."""
    steps = {v: make_step(v, shape) for v in variants}
    for step in steps.values():
        step()  # warm-up: allocator, kernel build, caches
    samples: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(rounds):
        for variant, step in steps.items():
            start = time.process_time()
            step()
            samples[variant].append(time.process_time() - start)
    return {v: statistics.median(s) for v, s in samples.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", choices=("r20", "r50"), default=None)
    parser.add_argument("--no-torch", action="store_true", help="skip the slow PyTorch path")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from nasir.layers import adder_ext  # after _adder_module() put the checkout on sys.path

    _adder_module()
    variants = ["conv"] + ([] if args.no_torch else ["torch"])
    if adder_ext.load_extension() is not None:
        variants.append("cpp")
    else:
        print(f"cpp variant skipped: {adder_ext.extension_error()}")
    shapes = [s for s in SHAPES if args.only in (None, s.net)]
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), CPU time per forward+backward, "
        f"median of {args.rounds} interleaved rounds"
    )
    header = f"{'layer':<34}" + "".join(f"{v + ' ms':>11}" for v in variants)
    header += "".join(f"{v + '/conv':>11}" for v in variants[1:])
    print(header)
    for shape in shapes:
        times = measure(shape, variants, args.rounds)
        row = f"{shape.label():<34}" + "".join(f"{times[v] * 1e3:>11.1f}" for v in variants)
        row += "".join(f"{times[v] / times['conv']:>10.2f}x" for v in variants[1:])
        print(row, flush=True)


if __name__ == "__main__":
    main()
