"""The laws every pass must obey, as one call for your own (hypothesis) tests.

`check_pass(ir, step)` runs `nasir.transform(ir, [step])` and asserts, naming the law it
finds broken in an `AssertionError` (`PassLawError`):

- *verifies*: the output passes `IR.verify()`;
- *shapes*: every node has a shape, equal to its op's shape rule on its inputs' shapes;
- *pure*: the pass function, called directly on a copy of `ir`, leaves that copy unchanged
  (`nasir.transform` copies its input, so it would hide a mutating pass), and returns the
  same network as `nasir.transform` (it is deterministic);
- *made_by*: every node that is new or has a new op or attributes records the pass that made
  it (`Node.made_by`; for a pass given by its registered name, that name);
- *counts* (with `compile=True`): the static params/MACs equal what PyTorch measures on the
  compiled module (`nasir.testing.checks.assert_static_matches_torch`), and a batch-2 forward
  pass of the compiled module in eval mode gives the output node's shape;
- *idempotent* (with `idempotent=True`): the pass applied again changes nothing;
- *keeps counts* (with `keeps_counts=True`): static params and MACs equal the input's.

`check_inverse(ir, step, inverse)` adds the inverse law (`inverse` undoes `step` on `ir`),
and `check_fixture(before, expected, step)` the fixture law (the output is exactly the
network of an expected `.arch` spec). Keep the networks small: `check_pass` compiles them
(`nasir.testing.strategies.pass_irs()` draws suitable ones). docs/passes.md has an example.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nasir.ir.graph import IR
from nasir.ir.rewrite import ACTIVE_PASS
from nasir.ops import ShapeError, get_op
from nasir.passes.costs import count_costs
from nasir.passes.pipeline import PassStep, get_pass, parse_pass, transform
from nasir.testing.checks import assert_static_matches_torch


class PassLawError(AssertionError):
    """A pass broke one of the laws of `check_pass` (the message names the law and the pass)."""


def _split_step(step: PassStep) -> tuple[Any, dict[str, Any]]:
    """(name or function, options) of a step, as `nasir.transform` reads it."""
    if isinstance(step, tuple) and len(step) == 2 and isinstance(step[1], dict):
        return step[0], step[1]
    return step, {}


def step_name(step: PassStep) -> str:
    """The name `nasir.transform` gives a step: the registered name or the function's."""
    step = _split_step(step)[0]
    if isinstance(step, str):
        return parse_pass(step)[0]
    return getattr(step, "__name__", type(step).__name__)


def check_pass(ir: IR, step: PassStep, *, idempotent: bool = False, compile: bool = True,
               keeps_counts: bool = False) -> IR:
    """Run `nasir.transform(ir, [step])`, assert the laws of this module, return the output."""
    name = step_name(step)
    ir.verify()
    before = snapshot(ir)
    out = transform(ir, [step])
    _law(snapshot(ir) == before, name, "pure", "nasir.transform changed its input IR")
    _check_verifies(out, name)
    check_shapes(out, name)
    _check_pure(ir, step, out, name)
    check_made_by(ir, out, name, exact=isinstance(_split_step(step)[0], str))
    if compile:
        check_compiled(out, name)
    if idempotent:
        again = transform(out, [step])
        _law(again.signature() == out.signature(), name, "idempotent",
             "applied a second time it changed the network: " + _diff(out, again))
    if keeps_counts:
        old, new = count_costs(ir).total, count_costs(out).total
        _law((old.params, old.macs) == (new.params, new.macs), name, "keeps counts",
             f"params {old.params:,} -> {new.params:,}, MACs {old.macs:,} -> {new.macs:,}")
    return out


def check_inverse(ir: IR, step: PassStep, inverse: PassStep, *, compile: bool = True) -> IR:
    """`check_pass` on `step` then on `inverse`, and `inverse` brings back `ir` exactly (same
    signature: ids, ops, attributes, inputs, shapes). Returns the output of `step`."""
    out = check_pass(ir, step, compile=compile)
    back = check_pass(out, inverse, compile=compile)
    _law(back.signature() == ir.signature(), step_name(step), "inverse",
         f"{step_name(inverse)} does not undo it: " + _diff(ir, back))
    return out


def load_spec(spec: str | Path) -> IR:
    """IR of a fixture: a path to an `.arch` file, or spec text (its only network)."""
    import nasir

    if isinstance(spec, Path):
        return nasir.load(spec.read_text(encoding="utf-8"), text=True)
    return nasir.load(spec, text=True)


def check_fixture(before: str | Path | IR, expected: str | Path | IR, step: PassStep,
                  **laws: Any) -> IR:
    """The fixture law: `step` turns `before` into exactly the network `expected` (each an
    IR, a path to an `.arch` file or spec text), besides every law of `check_pass(**laws)`."""
    ir = before if isinstance(before, IR) else load_spec(before)
    want = expected if isinstance(expected, IR) else load_spec(expected)
    out = check_pass(ir, step, **laws)
    _law(out.signature() == want.signature(), step_name(step), "fixture",
         "the output is not the expected network: " + _diff(want, out))
    return out


def snapshot(ir: IR) -> tuple:
    """Everything a pass could change in place: structure, locations, provenance, scopes."""
    return (ir.signature(), [(n.loc, n.made_by, n.order) for n in ir.nodes()],
            list(ir.inputs), dict(ir.scope_kinds), ir.name, repr(ir.params))


def check_shapes(ir: IR, name: str = "?") -> None:
    """Every node has a shape, equal to its op's shape rule on its inputs' shapes."""
    for node in ir.nodes():
        _law(node.shape is not None, name, "shapes", f"node {node.id} has no shape")
        ins = [ir.node(i).shape for i in node.inputs]
        try:
            inferred = tuple(get_op(node.op).infer(node.attrs, ins))
        except ShapeError as exc:
            raise PassLawError(f"pass '{name}' broke the law 'shapes': node {node.id} "
                               f"({node.op}) no longer fits its inputs: {exc.message}") from exc
        _law(inferred == tuple(node.shape), name, "shapes",
             f"node {node.id} ({node.op}) has shape {node.shape} but its op gives {inferred}")


def check_made_by(before: IR, after: IR, name: str, exact: bool = True) -> None:
    """Each node of `after` that is new, or has another op or attributes than the node of
    `before` with its id, has `made_by` set (to `name` when `exact`)."""
    for node in after.nodes():
        old = before.node(node.id) if node.id in before else None
        if old is not None and (old.op, old.attrs) == (node.op, node.attrs):
            continue
        what = "new node" if old is None else "changed node"
        _law(node.made_by is not None, name, "made_by", f"{what} {node.id} has no made_by")
        _law(not exact or node.made_by == name, name, "made_by",
             f"{what} {node.id} says it was made by '{node.made_by}'")


def check_compiled(ir: IR, name: str = "?") -> None:
    """Static counts equal the compiled module's; a batch-2 forward gives the output shape."""
    from nasir.backends.pytorch import to_module

    try:
        assert_static_matches_torch(ir)
    except AssertionError as exc:
        raise PassLawError(f"pass '{name}' broke the law 'counts': {exc}") from exc
    model = to_module(ir).eval()
    with torch.no_grad():
        result = model(*model.example_inputs(batch=2))
    want = (2, *ir.node(ir.output).shape)
    _law(tuple(result.shape) == want, name, "counts",
         f"the compiled module returns {tuple(result.shape)}, the IR says {want}")


def _check_verifies(out: IR, name: str) -> None:
    try:
        out.verify()
    except Exception as exc:  # IRError: report it as the broken law
        raise PassLawError(f"pass '{name}' broke the law 'verifies': {exc}") from exc


def _check_pure(ir: IR, step: PassStep, out: IR, name: str) -> None:
    """Call the pass itself on a copy (as transform does) and compare."""
    step, options = _split_step(step)
    if isinstance(step, str):
        _, parsed = parse_pass(step)
        fn, options = get_pass(name), {**parsed, **options}
    else:
        fn = step
    probe = ir.copy()
    before = snapshot(probe)
    token = ACTIVE_PASS.set(name)
    try:
        direct = fn(probe, **options)
    finally:
        ACTIVE_PASS.reset(token)
    _law(snapshot(probe) == before, name, "pure", "the pass changed the IR it was given")
    _law(direct.signature() == out.signature(), name, "pure",
         "called twice on the same network it gave different results: " + _diff(out, direct))


def _law(holds: bool, name: str, law: str, detail: str) -> None:
    if not holds:
        raise PassLawError(f"pass '{name}' broke the law '{law}': {detail}")


def _diff(want: IR, got: IR) -> str:
    """The first entry where two signatures differ, for an assertion message."""
    a, b = want.signature(), got.signature()
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"entry {i}: expected {x}, got {y}"
    return f"expected {len(a)} entries, got {len(b)}"
