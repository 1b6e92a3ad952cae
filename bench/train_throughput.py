"""`nasir train`'s throughput against a plain hand-written PyTorch loop.

Both train the same compiled module on the same data (scikit-learn's digits) with the same
optimizer (SGD, momentum 0.9, weight decay 5e-4), batch size and number of epochs. The
hand-written loop is the cheapest alternative a user has: shuffle, forward, cross-entropy,
backward, step, and (as nasir does, so the work is the same) a validation pass per epoch;
a second figure leaves that pass out. nasir's figure includes everything a run does:
per-epoch validation, training metrics, an atomic checkpoint and a log line. Rounds are interleaved,
each figure is the median process CPU time (and wall time), torch runs on one thread.

    python bench/train_throughput.py [--network digits_cnn] [--epochs 3] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

import nasir
from nasir.train import TrainConfig, train
from nasir.train.data import load_data


def nasir_run(network: str, epochs: int, batch: int) -> float:
    data = load_data("digits")
    with tempfile.TemporaryDirectory() as folder:
        start = time.process_time()
        train(nasir.load(network, input="1x8x8"), data,
              TrainConfig(epochs=epochs, batch=batch, out=Path(folder) / "run"))
        return time.process_time() - start


def plain_run(network: str, epochs: int, batch: int, validate: bool = True) -> float:
    data = load_data("digits")
    start = time.process_time()
    torch.manual_seed(0)
    model = nasir.compile(nasir.load(network, input="1x8x8"))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    loader = DataLoader(data.train, batch_size=batch, shuffle=True)
    model.train()
    for _ in range(epochs):
        model.train()
        for x, y in loader:
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        if validate:
            model.eval()
            with torch.no_grad():
                x, y = data.val.tensors
                float((model(x).argmax(1) == y).float().mean())
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="digits_cnn")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    samples = len(load_data("digits").train) * args.epochs
    ours, plain, bare = [], [], []
    nasir_run(args.network, 1, args.batch)  # warm-up: imports, allocator, caches
    for _ in range(args.rounds):
        ours.append(nasir_run(args.network, args.epochs, args.batch))
        plain.append(plain_run(args.network, args.epochs, args.batch))
        bare.append(plain_run(args.network, args.epochs, args.batch, validate=False))
    a, b, c = statistics.median(ours), statistics.median(plain), statistics.median(bare)
    print(f"torch {torch.__version__}, 1 thread, {args.network}, {args.epochs} epochs of "
          f"{samples // args.epochs} digits, batch {args.batch}; median CPU of {args.rounds} "
          "interleaved rounds")
    print(f"nasir train     {a:.3f} s  {samples / a:,.0f} samples/s")
    print(f"plain loop      {b:.3f} s  {samples / b:,.0f} samples/s  (validating per epoch)")
    print(f"bare loop       {c:.3f} s  {samples / c:,.0f} samples/s  (no validation)")
    print(f"throughput ratio (nasir / plain): {b / a:.2f}  (target >= 0.95); "
          f"against the bare loop: {c / a:.2f}")


if __name__ == "__main__":
    main()
