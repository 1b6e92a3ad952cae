"""Training checkpoints: written atomically every epoch, read back as hostile input.

A checkpoint holds, for each network trained (one, or K with grafting), the model,
optimizer and scheduler states and its shuffling RNG, then the global RNG state, the epoch,
the history of metrics and the network's structure (its IR signature), so `--resume`
continues exactly where a run stopped and refuses a checkpoint of another network. Files are
written with `nasir.files.write_atomic` (temporary file, fsync, rename: a crash leaves the
previous checkpoint whole) and read with `torch.load(weights_only=True)` (tensors and plain
containers only, never code); anything missing or malformed is a `SpecError` naming the
file, and the file is left as it is.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from nasir.errors import SpecError, shown
from nasir.files import write_atomic
from nasir.ir.graph import IR
from nasir.weights import saved_bytes

FORMAT = "nasir-train-1"
FILE_NAME = "checkpoint.pt"
REQUIRED = ("format", "network", "structure", "epoch", "replicas", "rng", "history")
REPLICA = ("model", "optimizer", "scheduler", "shuffle_rng")


def structure_hash(ir: IR) -> str:
    """A digest of the network's structure (ids, ops, attributes, inputs, shapes)."""
    return hashlib.sha256(repr(ir.signature()).encode()).hexdigest()


def save_checkpoint(folder: Path, state: dict[str, Any]) -> Path:
    """Write `state` (with FORMAT) to folder/checkpoint.pt, replacing the previous one."""
    path = folder / FILE_NAME
    write_atomic(path, saved_bytes({"format": FORMAT, **state}), force=True)
    return path


def load_checkpoint(folder: Path, ir: IR) -> dict[str, Any]:
    """The checkpoint in `folder`, checked to be whole and to belong to `ir`'s network."""
    path = folder / FILE_NAME
    name = shown(os.fsdecode(path))
    if not path.is_file() or path.is_symlink():
        raise SpecError(f"cannot resume from '{name}': "
                        + ("no such file" if not path.exists() else "not a regular file"),
                        expected=f"a folder written by `nasir train --out`, holding {FILE_NAME}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, corrupt or hostile: the file's fault
        detail = shown(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 200)
        raise SpecError(f"cannot read checkpoint '{name}': {detail}",
                        expected="a whole checkpoint written by `nasir train` (it was left "
                                 "untouched)") from None
    replicas = state.get("replicas") if isinstance(state, dict) else None
    if not isinstance(state, dict) or state.get("format") != FORMAT or any(
            key not in state for key in REQUIRED) or not isinstance(replicas, list) or not (
            replicas and all(isinstance(r, dict) and all(k in r for k in REPLICA)
                             for r in replicas)):
        raise SpecError(f"'{name}' is not a nasir training checkpoint (format {FORMAT})",
                        expected="a checkpoint written by `nasir train`")
    if state["network"] != ir.name or state["structure"] != structure_hash(ir):
        raise SpecError(f"checkpoint '{name}' was written for network '{shown(state['network'])}'"
                        " with another structure, not for this spec",
                        expected="the same spec, --set values and --pass options as the run "
                                 "that wrote it")
    return state
