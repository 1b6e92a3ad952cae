"""Invariants that hold for every valid network, checked on random specs from
`nasir.testing.strategies`: static counts agree with PyTorch, cost roll-ups add up, the
.arch printer and the Python generator are faithful, and shape inference is a pure pass.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nasir
from nasir.backends.arch_printer import to_arch
from nasir.backends.python_source import to_python
from nasir.ir.graph import IR
from nasir.passes.costs import CountingPolicy, Totals, count_costs
from nasir.passes.shapes import infer_shapes
from nasir.testing.checks import measure
from nasir.testing.generated import import_file
from nasir.testing.strategies import conv_attrs, feature_shapes, irs

PROPERTY = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
_module_ids = itertools.count()


def _sum(rows: list[Totals]) -> dict[str, int]:
    total = Totals()
    for row in rows:
        total.add(row)
    return total.as_dict()


@PROPERTY
@given(irs())
def test_static_params_and_macs_equal_what_torch_measures(ir: IR) -> None:
    m = measure(ir, device="meta")
    assert m.static_params == m.torch_params
    assert m.static_macs == m.torch_macs


@PROPERTY
@given(st.data(), feature_shapes(max_channels=8, max_size=12))
def test_conv_shape_rule_matches_torch_for_any_valid_attributes(data, shape) -> None:
    attrs = data.draw(conv_attrs(in_channels=shape[0]))
    args = ", ".join(f"{k}={str(v).lower()}" for k, v in attrs.items())
    ir = nasir.load(f"network net() {{ input x: {'x'.join(map(str, shape))}\n"
                    f"return x >> conv({args}) }}", text=True)
    model = nasir.compile(ir)
    with torch.no_grad():
        out = model(torch.zeros(1, *shape))
    assert tuple(out.shape[1:]) == ir.node(ir.output).shape
    assert sum(p.numel() for p in model.parameters()) == nasir.stats(ir).total.params


@PROPERTY
@given(irs())
def test_every_scope_total_is_the_sum_of_its_children_and_scopes_add_up_to_the_total(
        ir: IR) -> None:
    report = count_costs(ir, CountingPolicy.parse("all"))
    assert _sum(list(report.nodes.values())) == report.total.as_dict()
    scopes = {"/".join(n.scope[:d]) for n in ir.nodes() for d in range(len(n.scope) + 1)}
    assert scopes - {""} == set(report.scopes)
    for scope in scopes:
        depth = len(scope.split("/")) if scope else 0
        direct_nodes = [report.nodes[n.id] for n in ir.nodes() if "/".join(n.scope) == scope]
        children = [report.scopes[s] for s in report.scopes
                    if len(s.split("/")) == depth + 1 and s.startswith(f"{scope}/" if scope
                                                                         else "")]
        expected = report.scopes[scope].as_dict() if scope else report.total.as_dict()
        assert _sum(direct_nodes + children) == expected, scope


@PROPERTY
@given(irs())
def test_printed_arch_text_loads_back_to_the_same_ir(ir: IR) -> None:
    again = nasir.load(to_arch(ir), text=True)
    assert again.signature() == ir.signature()


def _import_generated(source: str, folder: Path):
    path = folder / f"nasir_generated_{next(_module_ids)}.py"
    path.write_text(source, encoding="utf-8")
    return import_file(path)


@PROPERTY
@given(irs(), st.integers(0, 2**16))
def test_generated_python_has_the_compiled_state_dict_and_computes_the_same_output(
        ir: IR, seed: int) -> None:
    torch.manual_seed(seed)
    compiled = nasir.compile(ir).eval()
    for buffer in compiled.buffers():  # non-trivial BN statistics must travel too
        if buffer.is_floating_point():
            buffer.uniform_(0.5, 1.5)
    with tempfile.TemporaryDirectory() as folder:
        generated = _import_generated(to_python(ir), Path(folder)).build().eval()
    assert list(generated.state_dict()) == list(compiled.state_dict())
    generated.load_state_dict(compiled.state_dict())
    x = torch.randn(2, *ir.node(ir.inputs[0]).shape)
    with torch.no_grad():
        torch.testing.assert_close(generated(x), compiled(x), rtol=0, atol=0)


@PROPERTY
@given(irs())
def test_infer_shapes_is_pure_and_idempotent(ir: IR) -> None:
    bare = ir.copy()
    for node in bare.nodes():
        bare.update(node.id, shape=None)
    before = bare.signature()
    inferred = infer_shapes(bare)
    assert bare.signature() == before  # the input IR is untouched
    assert all(n.shape is None for n in bare.nodes())
    assert inferred.signature() == ir.signature()
    assert infer_shapes(inferred).signature() == inferred.signature()


def test_the_purity_check_would_notice_a_mutating_pass() -> None:
    """Guard for the test above: dropping shapes on a copy must not touch the original."""
    ir = nasir.load("network n() { input x: 3x4x4\n return x >> relu }", text=True)
    bare = ir.copy()
    bare.update("relu", shape=None)
    assert ir.node("relu").shape == (3, 4, 4)
    assert bare.signature() != ir.signature()
