"""nasir's performance goals in one table: each row nasir against a baseline measured in the
same run.

    python bench/perf_table.py            # every row (about 10 minutes on 2 cores)
    python bench/perf_table.py --quick    # smaller sizes and fewer rounds (about 2 minutes)
    python bench/perf_table.py --only scaling,startup

Method: the machines are shared and noisy, so every figure is the median over interleaved
rounds (A, B, A, B, ...) of process CPU time (user + system), with wall time beside it;
torch runs on a fixed number of threads (`--threads`, default 1). Process rows start a fresh
interpreter per run (CPU from the OS's accounting of the child); in-process rows run in a
fresh worker process per row and time calls with `time.process_time`. Ratios are nasir's
median over the baseline's median: below 1 means nasir is faster (for rates, above 1).

Baselines are what a user has without nasir: interpreter start-up; building the network as
a torch module and counting it with FlopCounterMode (on cpu and on meta), ptflops and fvcore
when installed (`pip install ptflops fvcore`); hand-written modules written as the official
code runs them (bench/reference_models.py) with nasir's weights copied in; nn.Conv2d for the
adder layer; Lark's tree-building parse for the parser; and for the scaling rows the per-node
cost of the same phase at 1k nodes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))


# ---- measuring ----------------------------------------------------------------------------

def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_process(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one run of `command` as a fresh process."""
    cpu, wall = _child_cpu(), time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - wall, _child_cpu() - cpu
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return cpu, wall


def interleaved(fns: list[Callable[[], tuple[float, float]]], rounds: int,
                warmup: int = 1) -> list[tuple[float, float]]:
    """Median (CPU, wall) of each measurement function, run in turn round after round."""
    samples: list[list[tuple[float, float]]] = [[] for _ in fns]
    for r in range(warmup + rounds):
        for i, fn in enumerate(fns):
            sample = fn()
            if r >= warmup:
                samples[i].append(sample)
    return [(statistics.median(c for c, _ in s), statistics.median(w for _, w in s))
            for s in samples]


def timed(fn: Callable[[], object]) -> Callable[[], tuple[float, float]]:
    """In-process: (CPU, wall) of one call of `fn`."""
    def measure() -> tuple[float, float]:
        cpu, wall = time.process_time(), time.perf_counter()
        fn()
        return time.process_time() - cpu, time.perf_counter() - wall
    return measure


def worker(task: str, *args: str, threads: int, env: dict[str, str],
           timeout: float = 1800) -> dict:
    """Run `task` in a fresh worker process and return what it prints (one JSON object)."""
    command = [sys.executable, str(Path(__file__)), "--worker", task, "--threads",
               str(threads), *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"worker {task} {args} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---- the table ----------------------------------------------------------------------------

class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, ...]] = []

    def add(self, what: str, nasir: str, baseline: str, ratio: str, target: str) -> None:
        self.rows.append((what, nasir, baseline, ratio, target))
        print(f"  {what}: {nasir} | {baseline} | {ratio}", file=sys.stderr, flush=True)

    def render(self) -> str:
        head = ("what", "nasir: CPU (wall)", "baseline: CPU (wall)", "ratio", "target")
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


def fmt(sample: tuple[float, float]) -> str:
    cpu, wall = sample
    return f"{_seconds(cpu)} ({_seconds(wall)})"


def _seconds(value: float) -> str:
    if value < 0.01:
        return f"{value * 1000:.2f} ms"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s"


def ratio(a: tuple[float, float], b: tuple[float, float]) -> str:
    return f"{a[0] / b[0]:.2f}x" if b[0] > 0 else "n/a"


# ---- rows ---------------------------------------------------------------------------------

def nasir_command() -> list[str]:
    script = Path(sys.executable).with_name("nasir")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "nasir.cli"]


def startup_rows(table: Table, args: argparse.Namespace, env: dict[str, str]) -> None:
    python = [sys.executable, "-c", "pass"]
    version, floor = interleaved([lambda: run_process([*nasir_command(), "--version"], env),
                                  lambda: run_process(python, env)], args.rounds)
    table.add("`nasir --version` (process)", fmt(version), f"python -c pass: {fmt(floor)}",
              ratio(version, floor), "<= 0.1 s CPU")
    flop = [sys.executable, str(Path(__file__)), "--worker", "flopcounter-process",
            "--threads", str(args.threads), "resnet20"]
    stats, baseline = interleaved([
        lambda: run_process([*nasir_command(), "stats", "resnet20"], env),
        lambda: run_process(flop, env)], args.rounds)
    table.add("`nasir stats resnet20` (process)", fmt(stats),
              f"script: build + FlopCounterMode(meta): {fmt(baseline)}", ratio(stats, baseline),
              "<= 0.2 s CPU")

    def first_run() -> tuple[float, float]:  # an empty cache: Lark tables built, spec parsed
        with tempfile.TemporaryDirectory() as folder:
            return run_process([*nasir_command(), "stats", "resnet20"],
                               {**env, "NASIR_CACHE_DIR": folder})

    (cold,) = interleaved([first_run], args.rounds)
    table.add("`nasir stats resnet20`, first run (empty cache)", fmt(cold),
              f"script: build + FlopCounterMode(meta): {fmt(baseline)}", ratio(cold, baseline),
              "reported, as the cache's cost")


def parse_rows(table: Table, args: argparse.Namespace, env: dict[str, str]) -> None:
    data = worker("parse", str(args.rounds), threads=args.threads, env=env)
    kb = data["bytes"] / 1000
    ours, base = tuple(data["nasir"]), tuple(data["baseline"])
    table.add(f"parse all shipped specs ({kb:.0f} KB)",
              f"{fmt(ours)}: {kb / ours[0]:.0f} KB/s",
              f"Lark tree + transform: {fmt(base)}: {kb / base[0]:.0f} KB/s",
              f"{base[0] / ours[0]:.2f}x faster", ">= 5x faster")
    cached = tuple(data["cached"])
    table.add(f"read the same specs parsed before (nasir's cache, {kb:.0f} KB)",
              f"{fmt(cached)}: {kb / cached[0]:.0f} KB/s",
              f"Lark tree + transform: {fmt(base)}", f"{base[0] / cached[0]:.2f}x faster",
              "(what repeated commands do)")


def count_rows(table: Table, args: argparse.Namespace, env: dict[str, str]) -> None:
    name = args.count_network
    data = worker("count", name, str(args.rounds), threads=args.threads, env=env)
    ours = tuple(data["nasir"])
    baselines = {k: tuple(v) for k, v in data["baselines"].items()}
    best = min(baselines, key=lambda k: baselines[k][0])
    for key, sample in baselines.items():
        table.add(f"static count {name} (in process)", fmt(ours), f"{key}: {fmt(sample)}",
                  f"{sample[0] / ours[0]:.1f}x faster", ">= 50x faster than the best"
                  + (" (best)" if key == best else ""))
    for missing in data["missing"]:
        table.add(f"static count {name}", "", f"{missing}: not installed", "", "")


SCALING_PHASES = ("check", "stats", "module", "source")


def scaling_rows(table: Table, args: argparse.Namespace, env: dict[str, str]) -> None:
    sizes = [1000, 10_000, 100_000] if args.quick else [1000, 10_000, 100_000, 300_000]
    for kind in ("chain", "cell"):
        for phase in SCALING_PHASES:
            per_node: dict[int, tuple[float, float]] = {}
            for n in sizes:
                if phase in ("module", "source") and n > 100_000:
                    continue
                data = worker("scale", kind, str(n), phase, str(args.scale_rounds),
                              threads=args.threads, env=env)
                nodes = data["nodes"]
                sample = tuple(data["sample"])
                per_node[n] = (sample[0] / nodes, sample[1] / nodes)
                if n == sizes[0]:
                    continue
                table.add(f"{phase}, {kind} of {nodes:,} nodes", f"{fmt(sample)}; "
                          f"{per_node[n][0] * 1e6:.1f} us/node",
                          f"same at 1k nodes: {per_node[sizes[0]][0] * 1e6:.1f} us/node",
                          f"{per_node[n][0] / per_node[sizes[0]][0]:.2f}x per node",
                          "<= 1.2x per node")
    with tempfile.TemporaryDirectory() as folder:
        from scaling_specs import spec_text

        n = 100_000
        spec = Path(folder) / "chain.arch"
        spec.write_text(spec_text("chain", n))
        out = Path(folder) / "chain.py"
        (sample,) = interleaved([lambda: run_process(
            [*nasir_command(), "compile", str(spec), "-o", str(out), "--force"], env)], 1, 0)
        table.add(f"`nasir compile -o` chain of {n:,} nodes (process)", fmt(sample), "", "",
                  "< 30 s CPU")


def model_rows(table: Table, args: argparse.Namespace, env: dict[str, str]) -> None:
    size = 112 if args.quick else 224
    for name in ("ghostnet", "resnet50"):
        for mode, batch in (("infer", 1), ("infer", 32), ("train", 8)):
            data = worker("model", name, mode, str(batch), str(size), str(args.model_rounds),
                          threads=args.threads, env=env)
            ref = tuple(data["reference"])
            for backend in ("module", "source"):
                ours = tuple(data[backend])
                table.add(f"{name} {mode} batch {batch} {size}px, nasir {backend}", fmt(ours),
                          f"official-style module: {fmt(ref)}", ratio(ours, ref), "<= 1.05x")


def adder_rows(table: Table, args: argparse.Namespace, env: dict[str, str]) -> None:
    if not (BENCH / "adder_speed.py").is_file():
        table.add("Adder2d forward+backward", "", "", "", "bench/adder_speed.py missing")
        return
    data = worker("adder", str(args.model_rounds), threads=args.threads, env=env)
    for row in data["rows"]:
        conv = tuple(row["conv"])
        for variant in row["variants"]:
            ours = tuple(row[variant])
            table.add(f"Adder2d fwd+bwd {row['shape']} ({variant})", fmt(ours),
                      f"nn.Conv2d: {fmt(conv)}", ratio(ours, conv), "<= 4x conv")


ROWS = {"startup": startup_rows, "parse": parse_rows, "count": count_rows,
        "scaling": scaling_rows, "models": model_rows, "adder": adder_rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=",".join(ROWS), help="comma list of " + ", ".join(ROWS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--count-network", default="nasnet_a_large")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.worker:
        return _run_worker(args.worker, rest, args.threads)
    args.rounds = args.rounds or (3 if args.quick else 7)
    args.scale_rounds = 1 if args.quick else 3
    args.model_rounds = 3 if args.quick else 5
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads),
           "MKL_NUM_THREADS": str(args.threads), "PYTHONHASHSEED": "0"}
    import torch

    table = Table()
    for key in args.only.split(","):
        ROWS[key.strip()](table, args, env)
    cpu = platform.processor() or platform.machine()
    print(f"nasir perf table: {platform.node()} ({cpu}, {os.cpu_count()} cores), Python "
          f"{platform.python_version()}, torch {torch.__version__}, {args.threads} torch "
          f"thread(s); medians of {args.rounds} interleaved rounds (scaling "
          f"{args.scale_rounds}, models {args.model_rounds}); {'quick' if args.quick else 'full'}"
          " run\n")
    print(table.render())


# ---- workers (each runs in its own process) -----------------------------------------------

def _run_worker(task: str, rest: list[str], threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    import bench_workers

    result = getattr(bench_workers, task.replace("-", "_"))(*rest)
    if result is not None:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
