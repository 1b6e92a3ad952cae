"""IR -> `torch.nn.Module`: one module per scope, parameters named after the spec's scopes.

Each scope module runs its steps in order over a small environment of tensors; the step
list is fixed at construction, so `torch.compile` and `torch.export` trace it into a
straight graph. The generated-source backend writes the same steps out as Python.
"""

from __future__ import annotations

import importlib
from functools import partial
from typing import Any

import torch
from torch import nn

from nasir.backends.program import ScopeProgram, Step, scope_program
from nasir.ir.graph import IR
from nasir.ops import Function, Layer


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
        self._steps: list[tuple[str, str, Any, list[str], list[str]]] = []
        for step in program.steps:
            self._steps.append(self._prepare(step, program))

    def _prepare(self, step: Step, program: ScopeProgram) -> tuple:
        if step.kind == "scope":
            self.add_module(step.name, ScopeModule(program.children[step.child]))
            return ("module", step.name, None, step.inputs, step.outputs)
        if isinstance(step.lowering, Layer):
            self.add_module(step.name, build_layer(step.lowering))
            return ("module", step.name, None, step.inputs, step.outputs)
        assert isinstance(step.lowering, Function)
        return ("function", step.name, (resolve(step.lowering.fn), step.lowering.kwargs),
                step.inputs, step.outputs)

    def forward(self, *args: torch.Tensor) -> Any:
        env = dict(zip(self._inputs, args, strict=True))
        for kind, name, fn, ins, outs in self._steps:
            values = [env[i] for i in ins]
            call = getattr(self, name) if kind == "module" else partial(fn[0], **fn[1])
            result = call(*values)
            if len(outs) == 1:
                env[outs[0]] = result
            else:
                env.update(zip(outs, result, strict=True))
        if len(self._outputs) == 1:
            return env[self._outputs[0]]
        return tuple(env[o] for o in self._outputs)


class NasirModel(ScopeModule):
    """The compiled network; `input_shapes` lists the inputs it expects (without batch)."""

    def __init__(self, ir: IR):
        super().__init__(scope_program(ir))
        self.network = ir.name
        self.input_shapes = {i: ir.node(i).shape for i in ir.inputs}

    def example_inputs(self, batch: int = 2, device: str | torch.device = "cpu") -> tuple:
        return tuple(torch.randn(batch, *s, device=device) for s in self.input_shapes.values())


def to_module(ir: IR) -> NasirModel:
    """Lower shape-checked IR to a trainable module."""
    return NasirModel(ir)
