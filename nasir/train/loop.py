"""The training loop of `nasir train`: SGD with momentum and a cosine schedule, one
checkpoint per epoch, a JSON-lines log, and exact resumption.

Contract: `train(ir, data, config)` trains `ir`'s compiled module on `data` for
`config.epochs` epochs (continuing from the checkpoint in `config.out` with `resume`) and
returns the history of per-epoch metrics. A run is reproducible: the model's initial weights,
the shuffling and every random op follow `config.seed`, and their states are checkpointed,
so a run stopped after epoch k and resumed ends with the same weights as one that ran
through. A fresh run never overwrites an earlier run's files.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from nasir.backends.pytorch import to_module
from nasir.errors import SpecError, shown
from nasir.files import write_atomic
from nasir.ir.graph import IR
from nasir.train.checkpoint import FILE_NAME, load_checkpoint, save_checkpoint, structure_hash
from nasir.train.data import DataSplit
from nasir.train.graft import graft
from nasir.train.methods import DEFAULT_LASSO, Methods, progress_of

LOG_NAME = "log.jsonl"
REPORT_NAME = "report.json"
MAX_EPOCHS = 100_000
MAX_GRAFT = 16


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    batch: int = 64
    lr: float = 0.05
    lasso: float = DEFAULT_LASSO  # group-lasso weight, for learned group convs
    graft: int = 1  # K > 1: train K networks and graft them in a ring every epoch
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    out: Path = Path("runs")
    resume: bool = False

    def __post_init__(self) -> None:
        """A configuration that cannot run is refused when it is made, before any work."""
        if not 1 <= self.epochs <= MAX_EPOCHS:
            raise SpecError(f"--epochs {self.epochs} is out of range",
                            expected=f"1 to {MAX_EPOCHS:,} (MAX_EPOCHS)")
        if not 1 <= self.graft <= MAX_GRAFT:
            raise SpecError(f"--graft {self.graft} is out of range",
                            expected=f"1 (no grafting) to {MAX_GRAFT} networks (MAX_GRAFT)")
        if self.batch < 1 or not math.isfinite(self.lr) or self.lr <= 0:
            raise SpecError(f"bad --batch {self.batch} or --lr {self.lr}",
                            expected="a batch of 1 or more and a positive, finite learning "
                                     "rate")


@dataclass
class TrainResult:
    network: str
    history: list[dict[str, Any]] = field(default_factory=list)
    out: Path | None = None
    methods: list[str] = field(default_factory=list)  # the training rules in force

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}


@dataclass
class _Replica:
    """One network being trained: with `--graft K` there are K, grafted in a ring."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    shuffle: torch.Generator
    loader: DataLoader
    methods: Methods

    def state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "shuffle_rng": self.shuffle.get_state()}


def _replica(ir: IR, data: DataSplit, config: TrainConfig, index: int) -> _Replica:
    torch.manual_seed(config.seed + index)  # K networks start from different weights
    model = to_module(ir)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    shuffle = torch.Generator().manual_seed(config.seed + 1 + index)  # and see other orders
    loader = DataLoader(data.train, batch_size=config.batch, shuffle=True, generator=shuffle)
    return _Replica(model, optimizer, scheduler, shuffle, loader,
                    Methods.of(model, config.lasso))


def train(ir: IR, data: DataSplit, config: TrainConfig,
          progress: Callable[[str], None] | None = None) -> TrainResult:
    """Train `ir` on `data` as `config` says (see the module docstring)."""
    _check_classes(ir, data)
    replicas = [_replica(ir, data, config, k) for k in range(config.graft)]
    methods = replicas[0].methods.describe()
    if config.graft > 1:
        methods.append(f"Filter Grafting: {config.graft} networks grafted in a ring every "
                       "epoch (entropy-weighted, A=0.4, c=500)")
    result = TrainResult(ir.name, out=config.out, methods=methods)
    _prepare_folder(config)
    start = 0
    if config.resume:
        state = load_checkpoint(config.out, ir)
        start = _restore(state, replicas, config)
        result.history = list(state["history"])
    for line in result.methods if progress is not None else ():
        progress(f"method: {line}")
    began = time.perf_counter()
    for epoch in range(start, config.epochs):
        trained = [_epoch(r.model, r.optimizer, r.loader, epoch, config.epochs, r.methods)
                   for r in replicas]  # every network trains; the record is the first's
        record = trained[0]
        for r in replicas:
            r.scheduler.step()
        if len(replicas) > 1:
            _graft_ring(replicas)
        # validated once per epoch, after grafting: the networks as they go on training
        scores = [evaluate(r.model, data, r.methods) for r in replicas]
        record["val_loss"], record["val_acc"], members = scores[0]
        if members:
            record["val_member_acc"] = members
        if len(replicas) > 1:
            record["val_acc_each"] = [acc for _, acc, _ in scores]
        result.history.append(record)
        save_checkpoint(config.out, {  # first: the checkpoint is what a resume trusts
            "network": ir.name, "structure": structure_hash(ir), "epoch": epoch + 1,
            "replicas": [r.state() for r in replicas], "rng": torch.get_rng_state(),
            "model": replicas[0].model.state_dict(),  # what weight loaders look for
            "history": result.history})
        _append_log(config.out / LOG_NAME, record)
        if progress is not None:
            done = epoch + 1 - start
            eta = (time.perf_counter() - began) / done * (config.epochs - epoch - 1)
            progress(_progress_line(record, config.epochs, eta))
    write_atomic(config.out / REPORT_NAME, json.dumps(
        {"network": ir.name, "data": data.name, "epochs": config.epochs,
         "final": result.final, "history": result.history}, indent=2) + "\n", force=True)
    return result


def _graft_ring(replicas: list[_Replica]) -> None:
    """Network k takes from network k+1 (mod K), all from the weights before grafting."""
    states = [r.model.state_dict() for r in replicas]
    grafted = [graft(states[k], states[(k + 1) % len(states)]) for k in range(len(states))]
    for replica, state in zip(replicas, grafted, strict=True):
        replica.model.load_state_dict(state)


def _check_classes(ir: IR, data: DataSplit) -> None:
    out = ir.node(ir.output).shape
    if out != (data.classes,):
        raise SpecError(f"network {ir.name} outputs {'x'.join(map(str, out))} values but "
                        f"{data.name} has {data.classes} classes",
                        expected=f"a classifier with {data.classes} outputs, e.g. "
                                 f"--set classes={data.classes}")


def _prepare_folder(config: TrainConfig) -> None:
    """Create the output folder; a fresh run refuses one that holds an earlier run."""
    try:
        config.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SpecError(f"cannot create output folder '{shown(str(config.out))}': "
                        f"{exc.strerror or exc}", expected="a writable folder for --out") from None
    if not config.resume:
        earlier = [n for n in (FILE_NAME, LOG_NAME, REPORT_NAME)
                   if os.path.lexists(config.out / n)]
        if earlier:
            raise SpecError(f"'{shown(str(config.out))}' already holds a training run "
                            f"({', '.join(earlier)}); it is left as it is",
                            expected="--resume to continue it, or another --out folder")


def _restore(state: dict, replicas: list[_Replica], config: TrainConfig) -> int:
    if len(state["replicas"]) != len(replicas):
        raise SpecError(f"the run in '{shown(str(config.out))}' trained "
                        f"{len(state['replicas'])} network(s), not {len(replicas)}",
                        expected=f"--graft {len(state['replicas'])} to continue it")
    try:
        for replica, saved in zip(replicas, state["replicas"], strict=True):
            replica.model.load_state_dict(saved["model"])
            replica.optimizer.load_state_dict(saved["optimizer"])
            replica.scheduler.load_state_dict(saved["scheduler"])
            replica.shuffle.set_state(saved["shuffle_rng"])
        torch.set_rng_state(state["rng"])
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise SpecError(f"the checkpoint in '{shown(str(config.out))}' does not fit this run: "
                        f"{shown(str(exc).splitlines()[0], 200)}",
                        expected="the same spec and options as the run that wrote it") from None
    epoch = int(state["epoch"])
    if epoch >= config.epochs:
        raise SpecError(f"the run in '{shown(str(config.out))}' already has {epoch} epochs",
                        expected=f"--epochs larger than {epoch} to train further")
    return epoch


def _epoch(model, optimizer, loader: DataLoader, epoch: int, epochs: int,
           methods: Methods) -> dict:
    """One epoch of training; its loss, accuracy, learning rate and speed."""
    model.train()
    began = time.perf_counter()
    total_loss, correct, seen = 0.0, 0, 0
    for step, (x, y) in enumerate(loader):
        progress = progress_of(epoch, step, len(loader), epochs)
        methods.before_step(progress)
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = methods.task_loss(logits, y, progress)
        extra = methods.extra_loss()
        (loss if extra is None else loss + extra).backward()
        optimizer.step()
        total_loss += loss.item() * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
    seconds = time.perf_counter() - began
    return {"epoch": epoch + 1, "loss": total_loss / seen, "train_acc": correct / seen,
            "lr": optimizer.param_groups[0]["lr"], "samples_per_s": seen / max(seconds, 1e-9)}


@torch.no_grad()
def evaluate(model, data: DataSplit, methods: Methods | None = None,
             batch: int = 512) -> tuple[float, float, list[float]]:
    """(mean cross-entropy, accuracy, each ensemble member's accuracy) on the validation
    split, in eval mode."""
    model.eval()
    total, correct, seen = 0.0, 0, 0
    members: list[int] = []
    for x, y in DataLoader(data.val, batch_size=batch):
        logits = model(x)
        total += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
        if methods is not None and methods.ensembles == 1:
            hits = [int((z.argmax(1) == y).sum()) for z in methods.members]
            members = [a + b for a, b in zip(members, hits, strict=True)] if members else hits
    return total / seen, correct / seen, [m / seen for m in members]


def _append_log(path: Path, record: dict) -> None:
    """Append one JSON line, never through a symlink planted at `path`."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        raise SpecError(f"cannot append to '{shown(str(path))}': {exc.strerror or exc}",
                        expected="a regular file (not a link) in a writable folder") from None
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def _progress_line(record: dict, epochs: int, eta: float) -> str:
    members = record.get("val_member_acc", record.get("val_acc_each", []))
    members = f" (each {', '.join(f'{a:.1%}' for a in members)})" if members else ""
    return (f"epoch {record['epoch']}/{epochs}  loss {record['loss']:.4f}  "
            f"train {record['train_acc']:.1%}  val {record['val_acc']:.1%}{members}  "
            f"{record['samples_per_s']:,.0f} samples/s  ETA {eta:.0f} s")
