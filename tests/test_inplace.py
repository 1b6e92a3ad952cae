"""The in-place planner: what it plans, and that planned modules compute the same function
and the same gradients as out-of-place ones (in-memory and generated source)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings

import nasir
from nasir.backends.python_source import to_python
from nasir.ir.graph import IR
from nasir.passes.inplace import plan_inplace
from nasir.testing.generated import build_generated
from nasir.testing.strategies import pass_irs

RESIDUAL = """
network n() {
    input x: 4x6x6
    a = x >> conv(4, 3) as c1 >> bn as b1 >> relu as r1
    b = a >> conv(4, 3) as c2 >> bn as b2
    s = b + a
    t = s >> relu as r2
    u = t >> relu as r3
    f = u >> flatten as flat
    return f >> relu as r4
}
"""


def _twins(ir: IR, seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The module with and without the in-place plan, with the same weights."""
    torch.manual_seed(seed)
    inplace = nasir.compile(ir)
    plain = nasir.compile(ir, inplace=False)
    plain.load_state_dict(inplace.state_dict())
    return inplace, plain


def _run(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[list, list]:
    """Outputs and the gradients of inputs and parameters for a fixed random cotangent."""
    xs = [x.clone().requires_grad_(True) for x in inputs]
    out = model(*xs)
    outs = list(out) if isinstance(out, tuple | list) else [out]
    gen = torch.Generator().manual_seed(1)
    loss = sum((o * torch.randn(o.shape, generator=gen)).sum() for o in outs)
    loss.backward()
    grads = [x.grad for x in xs] + [p.grad for p in model.parameters()]
    return [o.detach() for o in outs], grads


def assert_same_function(ir: IR, batch: int = 3) -> None:
    """Train-mode forward and backward, then eval forward, are equal with and without the
    plan (the inputs themselves are never overwritten)."""
    inplace, plain = _twins(ir)
    inputs = tuple(torch.randn(batch, *ir.node(i).shape) for i in ir.inputs)
    kept = [x.clone() for x in inputs]
    for training in (True, False):
        inplace.train(training)
        plain.train(training)
        torch.manual_seed(2)
        got = _run(inplace, inputs)
        torch.manual_seed(2)
        want = _run(plain, inputs)
        for a, b in zip(got[0] + got[1], want[0] + want[1], strict=True):
            assert (a is None) == (b is None)
            if a is not None:
                torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert all(torch.equal(x, k) for x, k in zip(inputs, kept, strict=True))


def test_plan_overwrites_only_fresh_tensors_read_once() -> None:
    ir = nasir.load(RESIDUAL, text=True)
    plan = plan_inplace(ir)
    # r1 overwrites b1 (a fresh BN output read only by r1); the sum accumulates into b2
    # (input 0) because `a` (r1's result) is also read by c2; r2 overwrites the fresh sum.
    assert plan == {"r1": 0, "add": 0, "r2": 0}
    # r3 reads r2's result, which relu's backward needs; r4 reads a flatten view of it.
    assert "r3" not in plan and "r4" not in plan


def test_sum_accumulates_into_whichever_input_is_free() -> None:
    ir = nasir.load("""network n() { input x: 4x6x6
        a = x >> conv(4, 1) as c1
        b = x >> conv(4, 1) as c2 >> bn as b2
        s = a + b
        t = s >> conv(4, 1) as c3
        return t + a
    }""", text=True)
    sums = [n for n in ir.nodes() if n.op == "add"]
    plan = plan_inplace(ir)
    assert plan[sums[0].id] == 1  # `a` is read twice; the BN output is free
    assert sums[1].id in plan  # c3's output is free


def test_network_inputs_and_outputs_are_never_overwritten() -> None:
    ir = nasir.load("network n() { input x: 4x6x6\n y = x >> relu as r\n return y }", text=True)
    assert plan_inplace(ir) == {}
    ir = nasir.load("""network n() { input x: 4x6x6
        y = x >> conv(4, 1) as c
        return y
    }""", text=True)
    assert plan_inplace(ir) == {}


def test_three_way_sum_accumulates_only_into_its_first_input() -> None:
    ir = nasir.load("""network n() { input x: 4x6x6
        a = x >> conv(4, 1) as c1
        b = x >> conv(4, 1) as c2
        c = x >> conv(4, 1) as c3
        return add(c, a, b) + x
    }""", text=True)
    (three,) = [n for n in ir.nodes() if n.op == "add" and len(n.inputs) == 3]
    assert plan_inplace(ir)[three.id] == 0


@pytest.mark.parametrize("name, shape", [
    ("resnet20", None), ("ghostnet", "3x64x64"), ("mobilenet_v2", "3x64x64"),
    ("darts_cifar", "3x16x16"), ("condensenet50", None), ("addernet20", "3x8x8"),
    ("splitnet_wrn", None), ("nasnet_a_mobile", "3x96x96"),
])
def test_shipped_networks_compute_the_same_with_the_plan(name: str, shape: str | None) -> None:
    ir = nasir.load(name, input=shape)
    assert plan_inplace(ir), f"{name}: nothing planned in place"
    assert_same_function(ir, batch=2)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pass_irs(max_stages=4, max_width=8))
def test_planned_modules_compute_the_same_function_and_gradients(ir: IR) -> None:
    assert_same_function(ir)


def test_generated_source_follows_the_plan(tmp_path) -> None:
    ir = nasir.load("resnet20")
    source = to_python(ir)
    assert "NF.add_(" in source and "ReLU(inplace=True)" in source
    generated = build_generated(ir, tmp_path)
    _, plain = _twins(ir)
    generated.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32)
    got, want = _run(generated, (x,)), _run(plain, (x,))
    for a, b in zip(got[0] + got[1], want[0] + want[1], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert "inplace" not in to_python(ir, inplace=False)


def test_cli_compile_can_leave_the_plan_out(tmp_path) -> None:
    from nasir.cli import main

    assert main(["compile", "resnet20", "-o", str(tmp_path / "a.py")]) == 0
    assert main(["compile", "resnet20", "--no-inplace", "-o", str(tmp_path / "b.py")]) == 0
    assert "inplace=True" in (tmp_path / "a.py").read_text()
    assert "inplace" not in (tmp_path / "b.py").read_text()


CHAIN = """
network n() {
    input x: 4x6x6
    return x >> conv(4, 3) as c1 >> bn as b1 >> relu as r1 >> conv(4, 3) as c2 >> bn as b2
}
"""


@pytest.mark.parametrize("backend", ["module", "source"])
def test_dead_intermediate_tensors_are_freed_during_forward(backend: str, tmp_path) -> None:
    """c1's output is dead once b1 has read it: by the time c2 runs it must be gone (the
    forward does not hold every intermediate until it returns)."""
    import weakref

    ir = nasir.load(CHAIN, text=True)
    model = (nasir.compile(ir, inplace=False) if backend == "module"
             else build_generated(ir, tmp_path, inplace=False)).eval()
    seen: dict[str, object] = {}
    model.c1.register_forward_hook(lambda m, i, o: seen.update(c1=weakref.ref(o)))
    model.c2.register_forward_pre_hook(lambda m, i: seen.update(alive=seen["c1"]() is not None))
    with torch.no_grad():
        model(torch.randn(2, 4, 6, 6))
    assert seen["alive"] is False
