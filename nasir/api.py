"""nasir's Python entry points: spec (path, shipped name or text) -> IR -> torch module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nasir.catalog import locate
from nasir.elaborate import build_ir
from nasir.errors import SpecError
from nasir.ir.graph import IR, Shape
from nasir.parse.loader import load_text
from nasir.passes.shapes import infer_shapes


def load(spec: str | Path, network: str | None = None, input: Shape | str | None = None,
         text: bool = False, **params: Any) -> IR:
    """Elaborate a spec into shape-checked IR.

    `spec` is a path, a shipped network name (`"resnet20"`), or spec text when `text=True`;
    keyword arguments override the network's parameters (like `--set`).
    """
    if text:
        program = load_text(str(spec))
        name = network or _only_network(program)
    else:
        program, name = locate(spec, network)
    shape = parse_shape(input) if isinstance(input, str) else input
    return infer_shapes(build_ir(program, name, params, shape))


def _only_network(program) -> str:
    """The one network the text itself defines (imported networks don't count)."""
    own = program.own_networks()
    if len(own) != 1:
        raise SpecError("spec text must define exactly one network, or pass network=",
                        expected="one of: " + (", ".join(own) or "(none)"))
    return own[0]


def compile(spec: str | Path | IR, network: str | None = None,
            input: Shape | str | None = None, **params: Any):
    """Build a trainable `torch.nn.Module` from a spec (or from IR)."""
    from nasir.backends.pytorch import to_module

    ir = spec if isinstance(spec, IR) else load(spec, network, input, **params)
    return to_module(ir)


def parse_shape(text: str) -> Shape:
    """'3x224x224' -> (3, 224, 224)."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise SpecError(f"bad shape '{text}'", expected="positive integers such as 3x224x224")\
            from None
    if not 1 <= len(shape) <= 3 or min(shape) <= 0:
        raise SpecError(f"bad shape '{text}'", expected="positive integers such as 3x224x224")
    return shape
