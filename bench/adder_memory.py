"""Peak memory and time of one AdderNet layer's forward+backward against nn.Conv2d.

The layer is the ResNet-20 16→16 3×3 adder at 32×32 (AdderNet, Chen et al. CVPR 2020).
Variants: ``conv`` (nn.Conv2d, the baseline), ``unfold`` (the official unfold algorithm, via
``adder2d_unfold_reference``; skipped when its estimated peak exceeds ``--mem-cap-gb``),
``adder-torch`` (nasir's chunked pure-PyTorch adder) and ``adder-cpp`` (nasir's C++ kernel;
CPU only, skipped with the reason if it cannot be built).

CUDA: peak = torch.cuda.max_memory_allocated above what was allocated before the step.
CPU: each variant runs in a fresh subprocess and reports its peak RSS (getrusage) growth
during the step, after a batch-1 warm-up has loaded the kernels.

    python bench/adder_memory.py [--batch 256] [--device cpu|cuda] [--mem-cap-gb 8]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

REPO_ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("conv", "unfold", "adder-torch", "adder-cpp")
CHANNELS, KERNEL, SIZE, PADDING = 16, 3, 32, 1
MIB = 1 << 20


def _adder_module():
    """Import nasir's adder layer from this checkout, whether or not nasir is installed."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from nasir.layers import adder

    return adder


def unfold_estimate_bytes(batch: int, itemsize: int = 4) -> int:
    """Estimated peak of the unfold algorithm: two (Cout, Cin·k², N·L) tensors plus X_col."""
    cols = CHANNELS * KERNEL * KERNEL * batch * SIZE * SIZE
    return (2 * CHANNELS * cols + cols) * itemsize


def make_step(variant: str, device: str, chunk: int | None) -> Callable[[Tensor], None]:
    """A closure running forward+backward of one variant on an input batch."""
    if variant == "conv":
        layer = nn.Conv2d(CHANNELS, CHANNELS, KERNEL, padding=PADDING, bias=False).to(device)
        forward = layer
        params = [layer.weight]
    elif variant.startswith("adder-"):
        adder = _adder_module()
        chunk = chunk or adder.DEFAULT_CHUNK_ELEMENTS
        layer = adder.Adder2d(CHANNELS, CHANNELS, KERNEL, padding=PADDING).to(device)
        backend = variant.removeprefix("adder-")

        def forward(x: Tensor) -> Tensor:
            return adder.adder2d(x, layer.weight, None, 1, PADDING, layer.eta, chunk, backend)

        params = [layer.weight]
    else:
        weight = torch.randn(CHANNELS, CHANNELS, KERNEL, KERNEL, device=device, requires_grad=True)
        reference = _adder_module().adder2d_unfold_reference

        def forward(x: Tensor) -> Tensor:
            return reference(x, weight, 1, PADDING)

        params = [weight]

    def step(x: Tensor) -> None:
        y = forward(x)
        y.backward(torch.ones_like(y))
        for p in params:
            p.grad = None

    return step


def _input(batch: int, device: str) -> Tensor:
    return torch.randn(batch, CHANNELS, SIZE, SIZE, device=device, requires_grad=True)


def _rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_cpu_worker(
    variant: str, batch: int, repeats: int, chunk: int | None
) -> dict[str, float]:
    """Run in a fresh process: peak RSS growth of the first step, then best step time."""
    step = make_step(variant, "cpu", chunk)
    step(_input(1, "cpu"))
    x = _input(batch, "cpu")
    before = _rss_bytes()
    start = time.perf_counter()
    step(x)
    first = time.perf_counter() - start
    peak = _rss_bytes() - before
    times = [first]
    for _ in range(repeats - 1):
        start = time.perf_counter()
        step(x)
        times.append(time.perf_counter() - start)
    return {"peak_bytes": peak, "seconds": min(times)}


def measure_cpu(variant: str, batch: int, repeats: int, chunk: int | None) -> dict[str, float]:
    """Peak RSS and time of one variant, measured in a subprocess so peaks do not mix."""
    cmd = [sys.executable, __file__, "--worker", variant, "--batch", str(batch)]
    cmd += ["--repeats", str(repeats)] + (["--chunk-elements", str(chunk)] if chunk else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure_cuda(variant: str, batch: int, repeats: int, chunk: int | None) -> dict[str, float]:
    """Peak allocated CUDA memory above the resting state, and best step time."""
    step = make_step(variant, "cuda", chunk)
    x = _input(batch, "cuda")
    step(x)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        step(x)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return {"peak_bytes": torch.cuda.max_memory_allocated() - before, "seconds": min(times)}


def _row(name: str, result: dict[str, float] | None, base: dict[str, float], note: str) -> str:
    if result is None:
        return f"{name:<11} {'skipped':>12} {'':>10} {'':>8} {'':>8}  {note}"
    mem = result["peak_bytes"] / MIB
    mem_ratio = result["peak_bytes"] / max(base["peak_bytes"], 1)
    time_ratio = result["seconds"] / base["seconds"]
    return (
        f"{name:<11} {mem:>10.1f}MB {result['seconds']:>9.3f}s {mem_ratio:>7.1f}x "
        f"{time_ratio:>7.1f}x  {note}"
    )


def _cpp_unavailable(device: str) -> tuple[bool, str]:
    """Whether the C++ variant must be skipped, and why."""
    if device != "cpu":
        return True, "the C++ kernel is CPU-only"
    _adder_module()
    from nasir.layers import adder_ext

    if adder_ext.load_extension() is None:
        return True, f"not built: {adder_ext.extension_error()}"[:200]
    return False, ""


def run(batch: int, device: str, cap_gb: float, repeats: int, chunk: int | None) -> None:
    """Measure the three variants and print a table with ratios to the conv baseline."""
    measure = measure_cuda if device == "cuda" else measure_cpu
    estimate = unfold_estimate_bytes(batch)
    results: dict[str, dict[str, float] | None] = {}
    notes = {"conv": "baseline", "unfold": f"estimated {estimate / MIB:.0f} MB > cap"}
    for variant in VARIANTS:
        skip = variant == "unfold" and estimate > cap_gb * (1 << 30)
        if variant == "adder-cpp":
            skip, notes[variant] = _cpp_unavailable(device)
        results[variant] = None if skip else measure(variant, batch, repeats, chunk)
    base = results["conv"]
    assert base is not None
    print(f"device={device} ({torch.__version__}), batch={batch}, layer 16->16 3x3 pad 1 at 32x32")
    print(
        f"input {batch * CHANNELS * SIZE * SIZE * 4 / MIB:.1f} MB fp32; "
        f"unfold estimated peak {estimate / MIB:.0f} MB (cap {cap_gb} GB)"
    )
    print(f"{'variant':<11} {'peak mem':>12} {'fwd+bwd':>10} {'mem/conv':>8} {'time/conv':>8}")
    for variant in VARIANTS:
        note = notes.get(variant, "") if results[variant] is None or variant == "conv" else ""
        print(_row(variant, results[variant], base, note))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--mem-cap-gb", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-elements", type=int, default=None, help="adder chunk budget")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        result = measure_cpu_worker(args.worker, args.batch, args.repeats, args.chunk_elements)
        print(json.dumps(result))
        return
    run(args.batch, args.device, args.mem_cap_gb, args.repeats, args.chunk_elements)


if __name__ == "__main__":
    main()
