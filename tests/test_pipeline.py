"""The pass interface and pipeline (`register_pass`, `parse_pass`, `nasir.transform`), the laws
sample passes obey on random networks, and the runnable example of docs/passes.md."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

import nasir
from nasir.errors import SpecError
from nasir.ir import IR, IRError, Node, Transformer
from nasir.passes.pipeline import get_pass, parse_pass, register_pass, unregister_pass
from nasir.testing.checks import assert_static_matches_torch
from nasir.testing.strategies import irs

PROPERTY = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DOCS = Path(__file__).resolve().parent.parent / "docs" / "passes.md"


class ReluToRelu6(Transformer):
    def visit_relu(self, node: Node) -> Node:
        return self.emit("relu6", {}, self.inputs(node), node.name)


class ConvToConvBn(Transformer):
    """Each plain conv (no bias, no dilation, 'same' padding) becomes std.arch's conv_bn."""

    def visit_conv(self, node: Node) -> Node:
        a = node.attrs
        if a.bias or a.dilation != 1 or a.pad != a.kernel // 2:
            return self.copy(node)
        args = {"out": a.out, "k": a.kernel, "stride": a.stride, "groups": a.groups}
        return self.splice_block("conv_bn", self.inputs(node), args)


def relu_to_relu6(ir: IR) -> IR:
    return ReluToRelu6(ir).transform()


def conv_to_conv_bn(ir: IR) -> IR:
    return ConvToConvBn(ir).transform()


@pytest.fixture
def registered():
    """`test_record` registered for one test: a pass that records its options."""
    seen: list[dict] = []

    @register_pass("test_record")
    def record(ir: IR, **options) -> IR:
        seen.append(options)
        return ReluToRelu6(ir).transform()

    yield seen
    unregister_pass("test_record")


def _small() -> IR:
    return nasir.load("network n() { input x: 3x8x8\n return x >> conv(4, 3) >> relu }",
                      text=True)


# -- the interface -------------------------------------------------------------------------
def test_parse_pass_reads_names_and_typed_options() -> None:
    assert parse_pass("split") == ("split", {})
    assert parse_pass("split:S=4, mode=fast,p=0.5,on=true") == \
        ("split", {"S": 4, "mode": "fast", "p": 0.5, "on": True})
    for bad in ("", "1abc", "split:S", "split:S=1,S=2", "split:=3", "a b"):
        with pytest.raises(SpecError):
            parse_pass(bad)


def test_unknown_pass_names_suggest_a_close_one(registered) -> None:
    with pytest.raises(SpecError, match=r"unknown pass 'test_recrod'.*did you mean 'test_record'"):
        get_pass("test_recrod")


def test_registering_a_name_twice_is_refused(registered) -> None:
    with pytest.raises(ValueError, match="registered twice"):
        register_pass("test_record")(relu_to_relu6)


def test_transform_runs_named_passes_with_options_and_records_the_pass(registered) -> None:
    ir = _small()
    out = nasir.transform(ir, ["test_record:ratio=2,name=x", ("test_record", {"k": 1})])
    assert registered == [{"ratio": 2, "name": "x"}, {"k": 1}]
    assert out.node("relu").op == "relu6"
    assert out.node("relu").made_by == "test_record"  # the running pass, by default
    assert ir.node("relu").op == "relu"


def test_transform_never_mutates_its_input_even_when_a_pass_does() -> None:
    def vandal(ir: IR) -> IR:
        ir.update("relu", shape=None)
        return ir

    ir = _small()
    before = ir.signature()
    out = nasir.transform(ir, [vandal])
    assert ir.signature() == before
    assert out.node("relu").shape is None


def test_a_bug_in_a_pass_becomes_a_spec_error_naming_it() -> None:
    def broken(ir: IR) -> IR:
        return {}["missing"]

    with pytest.raises(SpecError, match=r"pass 'broken' failed \(after relu_to_relu6\): "
                                        "KeyError"):
        nasir.transform(_small(), [relu_to_relu6, broken])


def test_a_spec_error_from_a_pass_is_noted_with_the_pass_name() -> None:
    def strict(ir: IR) -> IR:
        raise SpecError("this network has no block to split")

    with pytest.raises(SpecError, match="no block to split") as info:
        nasir.transform(_small(), [relu_to_relu6, strict])
    assert "note: raised by pass 'strict' (after relu_to_relu6)" in info.value.format()


def test_a_transformer_error_names_the_pass_the_node_and_its_location() -> None:
    class Crash(Transformer):
        def visit_relu(self, node: Node) -> Node:
            raise ZeroDivisionError("oops")

    ir = _small()
    with pytest.raises(SpecError, match="pass 'crash' failed at node relu: ZeroDivisionError") \
            as info:
        nasir.transform(ir, [lambda i: Crash(i, "crash").transform()])
    assert info.value.loc == ir.node("relu").loc
    assert str(info.value.loc).startswith("<string>:2:")


def test_an_invalid_result_is_caught_after_the_pass_that_made_it() -> None:
    def unhook(ir: IR) -> IR:
        out = ir.copy()
        out.output = "nowhere"
        return out

    with pytest.raises(IRError, match="output 'nowhere' is not a node") as info:
        nasir.transform(_small(), [relu_to_relu6, unhook])
    assert "after pass 'unhook' (after relu_to_relu6)" in info.value.format()


def test_a_pass_must_return_an_ir() -> None:
    with pytest.raises(SpecError, match="pass 'nothing' returned NoneType"):
        nasir.transform(_small(), [nothing])


def nothing(ir: IR) -> None:
    """A pass that forgets to return its result."""


# -- laws on random networks ---------------------------------------------------------------
@PROPERTY
@given(irs())
def test_identity_transform_verifies_and_keeps_the_signature(ir: IR) -> None:
    before = ir.signature()
    out = nasir.transform(ir, [lambda i: Transformer(i).transform()])
    assert out.signature() == before == ir.signature()


@PROPERTY
@given(irs())
def test_relu_to_relu6_is_valid_counted_pure_and_idempotent(ir: IR) -> None:
    before = ir.signature()
    out = nasir.transform(ir, [relu_to_relu6])
    assert ir.signature() == before
    assert "relu" not in {n.op for n in out}
    assert [n.id for n in out] == [n.id for n in ir]
    assert_static_matches_torch(out)
    assert nasir.transform(out, [relu_to_relu6]).signature() == out.signature()


@PROPERTY
@given(irs())
def test_splicing_conv_bn_keeps_shapes_and_counts_match_the_compiled_module(ir: IR) -> None:
    before = ir.signature()
    out = nasir.transform(ir, [conv_to_conv_bn])
    assert ir.signature() == before
    assert out.node(out.output).shape == ir.node(ir.output).shape
    plain = [n for n in ir if n.op == "conv" and not n.attrs.bias and n.attrs.dilation == 1
             and n.attrs.pad == n.attrs.kernel // 2]
    assert len(out) == len(ir) + len(plain)  # each becomes conv + bn
    assert_static_matches_torch(out)


# -- docs/passes.md --------------------------------------------------------------------------
def test_the_examples_in_docs_passes_md_run(tmp_path: Path) -> None:
    """Every ```python block of docs/passes.md, in order, as one module (so it cannot rot)."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 3
    script = tmp_path / "passes_example.py"  # a real file: hypothesis reads its source
    script.write_text("\n\n".join(blocks), encoding="utf-8")
    try:
        namespace = runpy.run_path(str(script))
    finally:
        for name in ("relu6", "ghost_1x1", "avgpool"):
            unregister_pass(name)
    assert "relu6" in {n.op for n in namespace["out"]}
    assert any(n.made_by == "ghost_1x1" for n in namespace["ghosted"])
    assert callable(namespace["test_avgpool_obeys_the_laws"])
