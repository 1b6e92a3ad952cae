"""The .arch language: composition, wiring, repetition, tables, imports and parameters."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import nasir
from nasir.errors import SpecError


def load(text: str, **params):
    return nasir.load(text, text=True, **params)


def test_pipe_builds_a_chain_with_inferred_channels():
    ir = load("""
    network net() {
        input x: 3x8x8
        return x >> conv(4, 3) >> bn >> relu
    }""")
    assert [n.op for n in ir.nodes()] == ["input", "conv", "bn", "relu"]
    assert ir.node(ir.output).shape == (4, 8, 8)


def test_named_values_and_a_value_used_twice_make_a_dag():
    ir = load("""
    network net() {
        input x: 3x8x8
        a = x >> conv(4, 1) as left
        b = x >> conv(4, 3) as right
        return concat(a, b, a)
    }""")
    out = ir.node(ir.output)
    assert out.inputs == ("left", "right", "left")
    assert out.shape == (12, 8, 8)


def test_residual_add_and_mul_gate_by_operators():
    ir = load("""
    network net() {
        input x: 4x8x8
        y = x >> conv(4, 3)
        g = y >> gap >> sigmoid
        return y * g + x
    }""")
    assert [n.op for n in ir.nodes()][-2:] == ["mul", "add"]


def test_channel_slice_by_subscript():
    ir = load("""
    network net() {
        input x: 8x4x4
        return x[2:6]
    }""")
    node = ir.node(ir.output)
    assert (node.op, node.attrs.start, node.attrs.stop, node.shape) == ("slice", 2, 6, (4, 4, 4))


def test_repeat_a_block_n_times_names_each_instance():
    ir = load("""
    block unit(x, c: int) { return x >> conv(c, 3) >> relu }
    network net(n: int = 3) {
        input x: 3x8x8
        return x >> unit(5) * n
    }""")
    scopes = sorted({n.scope[0] for n in ir.nodes() if n.scope})
    assert scopes == ["unit", "unit_1", "unit_2"]


def test_a_table_of_rows_drives_a_loop():
    ir = load("""
    let cfgs = [[3, 8, 1], [5, 16, 2]]
    network net() {
        input x: 3x16x16
        y = x
        for k, c, s in cfgs { y = y >> conv(c, k, stride=s) }
        return y
    }""")
    convs = [n for n in ir.nodes() if n.op == "conv"]
    assert [(c.attrs.kernel, c.attrs.out, c.attrs.stride) for c in convs] == [(3, 8, 1),
                                                                              (5, 16, 2)]
    assert ir.node(ir.output).shape == (16, 8, 8)


def test_functions_make_divisible_ceil_and_arithmetic():
    ir = load("""
    network net(w: float = 1.3) {
        input x: 3x8x8
        return x >> conv(make_divisible(16 * w, 4), 1) >> conv(ceil(7 / 2) + max(1, 2) * 2, 1)
    }""")
    convs = [n for n in ir.nodes() if n.op == "conv"]
    assert [c.attrs.out for c in convs] == [20, 8]


def test_set_overrides_a_network_parameter():
    text = """
    network net(width: int = 4) { input x: 3x8x8
        return x >> conv(width, 1) }"""
    assert load(text).node("conv").shape[0] == 4
    assert load(text, width=9).node("conv").shape[0] == 9


def test_imports_resolve_relative_to_the_importing_file(tmp_path: Path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "blocks.arch").write_text(
        'import "more.arch"\nblock twice(x, c: int) { return x >> one(c) >> one(c) }\n')
    (tmp_path / "lib" / "more.arch").write_text(
        "block one(x, c: int) { return x >> conv(c, 3) }\n")
    (tmp_path / "net.arch").write_text(
        'import "lib/blocks.arch"\nnetwork net() { input x: 3x8x8\n return x >> twice(6) }\n')
    ir = nasir.load(tmp_path / "net.arch")
    assert [n.id for n in ir.nodes() if n.op == "conv"] == ["twice/one/conv", "twice/one_1/conv"]


def test_import_cycle_is_reported_at_the_import(tmp_path: Path):
    (tmp_path / "a.arch").write_text('import "b.arch"\n')
    (tmp_path / "b.arch").write_text('import "a.arch"\n')
    with pytest.raises(SpecError) as err:
        nasir.load(tmp_path / "a.arch")
    assert "import cycle" in err.value.message
    assert err.value.loc.line == 1


def test_scope_statements_and_labels_shape_node_ids():
    ir = load("""
    network net() {
        input x: 3x8x8
        scope stem { y = x >> conv(8, 3) as conv0 >> bn }
        scope ("stage" + str(2)) { y = y >> relu as act }
        return y
    }""")
    assert [n.id for n in ir.nodes()] == ["x", "stem/conv0", "stem/bn", "stage2/act"]


def test_conditional_expression_only_builds_the_chosen_branch():
    ir = load("""
    block maybe(x, c: int) {
        return if x.c == c then x else x >> conv(c, 1)
    }
    network net() { input x: 3x8x8
        return x >> maybe(3) >> maybe(6) }""")
    assert [n.op for n in ir.nodes()] == ["input", "conv"]


def test_block_defaults_may_use_earlier_parameters():
    ir = load("""
    block b(x, c: int, mid: int = c * 4) { return x >> conv(mid, 1) >> conv(c, 1) }
    network net() { input x: 3x8x8
        return x >> b(2) }""")
    assert [n.attrs.out for n in ir.nodes() if n.op == "conv"] == [8, 2]


def test_input_shape_may_be_computed_from_parameters():
    text = """network net(size: int = 32) {
        input x: [3, size, size]
        return x >> conv(4, 3, stride=2) }"""
    assert load(text).node("conv").shape == (4, 16, 16)
    assert load(text, size=64).node("conv").shape == (4, 32, 32)
    with pytest.raises(SpecError, match="input shape must be 1 to 3 positive ints"):
        load(text, size=0)


def test_a_runaway_loop_is_stopped_with_a_located_error(monkeypatch):
    from nasir import limits

    monkeypatch.setattr(limits, "MAX_STEPS", 1000)
    with pytest.raises(SpecError, match=r"ran more than 1,000 steps \(MAX_STEPS") as err:
        load("""network net() {
            input x: 3x8x8
            for i in range(100) { for j in range(100) { a = i * j } }
            return x }""")
    assert err.value.loc.line == 3


def test_a_block_shadows_a_primitive_op_of_the_same_name():
    """User definitions win over ops and builtins, so adding an op never breaks a spec."""
    ir = load("""block relu(x) { return x >> sigmoid }
        block max(x, k: int) { return x >> maxpool(k) }
        network net() { input x: 3x8x8
            return x >> relu >> max(2) }""")
    assert [n.op for n in ir.nodes()] == ["input", "sigmoid", "maxpool"]


def test_constructs_are_reserved_names():
    with pytest.raises(SpecError, match="'chunk' is the name of a construct") as err:
        load("""block chunk(x) { return x }
        network net() { input x: 3x8x8
            return x >> chunk }""")
    assert err.value.loc.line == 1


MEMBER = """
block member(x, width: int, classes: int = 10) {
    return x >> conv(width, 3) >> relu >> gap >> flatten >> linear(classes) as fc
}"""


def test_a_call_without_its_tensor_is_a_stage_applied_later():
    ir = load(MEMBER + """
    network net() {
        input x: 3x8x8
        m = member(6, classes=4)
        a = x >> m as first
        return x >> m
    }""")
    assert {n.scope[0] for n in ir.nodes() if n.scope} == {"first", "member"}
    assert ir.node(ir.output).shape == (4,)


def test_split_runs_s_members_on_one_input_and_ensembles_their_logits():
    ir = load(MEMBER + """
    network net(s: int = 3) {
        input x: 3x8x8
        return x >> split(member(5), s, mode="softmax_mean")
    }""")
    out = ir.node(ir.output)
    assert out.op == "ensemble" and out.attrs.mode == "softmax_mean"
    assert [i.split("/")[0] for i in out.inputs] == ["net0", "net1", "net2"]
    assert all(ir.node(i).inputs[0] == "x" for i in ("net0/conv", "net1/conv", "net2/conv"))


def test_split_over_views_gives_each_member_its_own_input():
    ir = load(MEMBER + """
    network net() {
        input a: 3x8x8
        input b: 3x8x8
        return split([a, b], member(5))
    }""")
    assert ir.node("net0/conv").inputs == ("a",) and ir.node("net1/conv").inputs == ("b",)


def test_split_misuse_is_a_located_error():
    with pytest.raises(SpecError, match="split needs its input"):
        load(MEMBER + """network net() { input x: 3x8x8
            return x >> split(4) }""")
    with pytest.raises(SpecError, match="'split' is the name of a construct"):
        load("block split(x) { return x }\nnetwork n() { input x: 3x8x8\n return x }")


# ---- default statements ----------------------------------------------------------------

DEFAULTS = """
block unit(x) {
    default bn(eps=0.5)
    return x >> bn >> bn(eps=0.25)
}
network net() {
    input x: 3x8x8
    a = x >> bn as before
    default bn(eps=1e-3, momentum=0.01)
    a = a >> bn as first >> unit
    default bn(momentum=0.2)
    return a >> bn as last >> dwconv(3)
}"""


def test_default_sets_op_attributes_for_later_calls_and_their_callees():
    ir = load(DEFAULTS)
    attrs = {n.id: (n.attrs.eps, n.attrs.momentum) for n in ir.nodes() if n.op == "bn"}
    assert attrs == {
        "before": (1e-5, 0.1),  # before the statement: the op's own defaults
        "first": (1e-3, 0.01),
        "unit/bn": (0.5, 0.01),  # an inner default overrides per attribute
        "unit/bn_1": (0.25, 0.01),  # an explicit argument wins
        "last": (1e-3, 0.2),  # the block's default ended with its call
    }


def test_default_applies_to_the_op_name_as_called():
    ir = load("""network net() { input x: 3x8x8
        default conv(bias=true)
        return x >> conv(3, 3) >> dwconv(3) }""")
    assert [n.attrs.bias for n in ir.nodes() if n.op == "conv"] == [True, False]


@pytest.mark.parametrize("stmt, message, col", [
    ("default bnn(eps=1)", "'bnn' is not a primitive op (did you mean 'bn'?)", 9),
    ("default bn(1e-3)", "`default bn` takes only named values", 20),
    ("default bn(epss=1)", "bn has no parameter 'epss' (did you mean 'eps'?)", 20),
])
def test_default_is_checked_where_it_is_written(stmt, message, col):
    with pytest.raises(SpecError, match=re.escape(message)) as err:
        load("network net() { input x: 3x8x8\n        " + stmt + "\n        return x }")
    assert (err.value.loc.line, err.value.loc.col) == (2, col)


def test_a_bad_default_value_is_reported_at_the_default():
    with pytest.raises(SpecError, match="bn parameter 'eps'") as err:
        load("""network net() { input x: 3x8x8
        default bn(eps="a")
        return x >> bn }""")
    assert err.value.loc.line == 2


# ---- chunk and numeric labels -------------------------------------------------------------

def test_chunk_splits_channels_into_equal_groups():
    ir = load("""network net() { input x: 6x8x8
        a, b = chunk(x, 2)
        c = x >> chunk(3) as g
        return concat(b, a, *c) }""")
    slices = {n.id: (n.attrs.start, n.attrs.stop) for n in ir.nodes() if n.op == "slice"}
    assert slices == {"chunk0": (0, 3), "chunk1": (3, 6), "g0": (0, 2), "g1": (2, 4),
                      "g2": (4, 6)}
    assert ir.node(ir.output).shape == (12, 8, 8)


def test_chunk_that_does_not_divide_the_channels_is_an_error():
    with pytest.raises(SpecError, match=r"chunk\(4\) does not divide the 6 channels") as err:
        load("""network net() { input x: 6x8x8
        a = chunk(x, 4)
        return x }""")
    assert err.value.loc.line == 2


def test_numeric_labels_name_nodes_and_scopes_like_torch_sequential():
    ir = load("""network net() { input x: 3x8x8
        scope features {
            y = x >> conv(8, 3) as 0 >> relu * 2 as 1
            for i in range(2) { scope (i + 2) { y = y >> relu } }
        }
        return y }""")
    assert [n.id for n in ir.nodes()][1:] == ["features/0", "features/1", "features/1_1",
                                              "features/2/relu", "features/3/relu"]
