"""IR -> `torch.nn.Module`: one module per scope, parameters named after the spec's scopes.

Each scope module runs its steps in order over a small environment of tensors; the step
list is fixed at construction, so `torch.compile` and `torch.export` trace it into a
straight graph. The generated-source backend writes the same steps out as Python.

A network whose weights would not fit in memory is refused before anything is allocated:
`weight_values` counts its parameters and batch-norm buffers from the IR alone (float32),
and `to_module` (so `nasir.compile`) raises `SpecError` when they exceed `max_bytes`
(default: `default_max_bytes()`, half of physical memory, MEMORY_FRACTION).
"""

from __future__ import annotations

import importlib
import os
from functools import cache, partial
from typing import Any

import torch
from torch import nn

from nasir.backends.program import ScopeProgram, Step, last_uses, scope_program
from nasir.errors import SpecError
from nasir.gcpause import without_gc
from nasir.ir.graph import IR
from nasir.ops import Function, Layer, get_op
from nasir.ops.base import BN

MEMORY_FRACTION = 0.5  # share of physical memory one network's weights may take
FALLBACK_MEMORY_BYTES = 8 * 1024**3  # assumed physical memory where the OS does not say
BYTES_PER_VALUE = 4  # float32 weights and buffers


@cache
def resolve(path: str) -> Any:
    """Import the layer class or function an op's lowering names by dotted path.

    Paths come from registered `OpDef`s (Python code), never from spec text: a spec can
    only choose among registered ops.
    """
    module, _, name = path.rpartition(".")
    if not module:
        raise ValueError(f"lowering target {path!r} is not a dotted path")
    return getattr(importlib.import_module(module), name)


def build_layer(layer: Layer) -> nn.Module:
    return resolve(layer.cls)(*layer.args, **layer.kwargs)


class ScopeModule(nn.Module):
    """A block, cell or scope of the spec, run as the straight list of its steps."""

    def __init__(self, program: ScopeProgram):
        super().__init__()
        self._inputs = list(program.inputs)
        self._outputs = list(program.outputs)
        # (child name, function or None for a child module, inputs, outputs, dying tensors)
        self._steps: list[tuple[str, Any, list[str], list[str], list[str]]] = []
        for step, dying in zip(program.steps, last_uses(program), strict=True):
            self._steps.append((*self._prepare(step, program), dying))

    def _prepare(self, step: Step, program: ScopeProgram) -> tuple:
        if step.kind == "scope":
            self.add_module(step.name, ScopeModule(program.children[step.child]))
            return (step.name, None, step.inputs, step.outputs)
        if isinstance(step.lowering, Layer):
            self.add_module(step.name, build_layer(step.lowering))
            return (step.name, None, step.inputs, step.outputs)
        assert isinstance(step.lowering, Function)
        fn = resolve(step.lowering.fn)
        return (step.name, partial(fn, **step.lowering.kwargs) if step.lowering.kwargs else fn,
                step.inputs, step.outputs)

    def forward(self, *args: torch.Tensor) -> Any:
        env = dict(zip(self._inputs, args, strict=True))
        modules = self._modules
        for name, fn, ins, outs, dying in self._steps:
            values = [env[i] for i in ins]
            for tensor in dying:  # freed as soon as the step is done with it
                del env[tensor]
            result = (modules[name] if fn is None else fn)(*values)
            del values
            if len(outs) == 1:
                env[outs[0]] = result
            else:
                env.update(zip(outs, result, strict=True))
        if len(self._outputs) == 1:
            return env[self._outputs[0]]
        return tuple(env[o] for o in self._outputs)


class NasirModel(ScopeModule):
    """The compiled network; `input_shapes` lists the inputs it expects (without batch).
    With `inplace` (the default) ReLUs and residual sums overwrite tensors no one else reads
    (`nasir.passes.inplace`); the function and its gradients are the same either way."""

    def __init__(self, ir: IR, inplace: bool = True):
        super().__init__(scope_program(ir, inplace))
        self.network = ir.name
        self.input_shapes = {i: ir.node(i).shape for i in ir.inputs}

    def example_inputs(self, batch: int = 2, device: str | torch.device = "cpu") -> tuple:
        return tuple(torch.randn(batch, *s, device=device) for s in self.input_shapes.values())


def default_max_bytes() -> int:
    """MEMORY_FRACTION of physical memory (FALLBACK_MEMORY_BYTES where it is unknown)."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        total = 0
    return int((total if total > 0 else FALLBACK_MEMORY_BYTES) * MEMORY_FRACTION)


def weight_values(ir: IR) -> tuple[int, int]:
    """(parameters, batch-norm running-statistics values) of the network, from the IR alone."""
    params = buffers = 0
    for node in ir.nodes():
        op = get_op(node.op)
        if op is None or node.shape is None:
            continue
        cost = op.cost(node.attrs, [ir.node(i).shape for i in node.inputs], node.shape)
        params += cost.params
        if cost.kind == BN:
            buffers += 2 * node.shape[0]  # running mean and variance, one per channel
    return params, buffers


def check_memory(ir: IR, max_bytes: int | None = None) -> None:
    """Refuse, with SpecError, a network whose weights exceed `max_bytes`."""
    limit = default_max_bytes() if max_bytes is None else max_bytes
    params, buffers = weight_values(ir)
    needed = (params + buffers) * BYTES_PER_VALUE
    if needed > limit:
        raise SpecError(
            f"network {ir.name} has {params:,} parameters and {buffers:,} buffer values: "
            f"{needed:,} bytes as float32, over the limit of {limit:,} bytes",
            expected="fewer or narrower layers, or a larger max_bytes= (the default is "
                     f"{MEMORY_FRACTION:.0%} of physical memory, MEMORY_FRACTION)")


@without_gc
def to_module(ir: IR, max_bytes: int | None = None, inplace: bool = True) -> NasirModel:
    """Lower shape-checked IR to a trainable module, after `check_memory`. `inplace=False`
    keeps every intermediate tensor (for forward hooks that hold on to activations)."""
    check_memory(ir, max_bytes)
    try:
        return NasirModel(ir, inplace)
    except (MemoryError, RuntimeError) as exc:  # torch's allocator raises RuntimeError
        if not isinstance(exc, MemoryError) and "allocate" not in str(exc):
            raise
        raise SpecError(f"out of memory while building network {ir.name}: the weights fit "
                        "the budget but the machine had too little free memory",
                        expected="a smaller network, or more free memory") from None
