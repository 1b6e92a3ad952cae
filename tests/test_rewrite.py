"""IR invariants (`verify`) and rebuild-style rewriting (`Transformer`, `splice_block`).

Each verify rule is shown to fire on an IR broken by hand, at the node that breaks it; each
rewrite is compared with the same network written directly in the .arch language.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

import nasir
from nasir.errors import SpecError
from nasir.ir import IR, IRError, Node, Transformer, verify
from nasir.testing.checks import assert_static_matches_torch

SPEC = """import "std.arch"
network n() {
    input x: 3x8x8
    z = x >> relu as dead
    scope stage1 {
        y = x >> conv(4, 3) as conv >> dropout(0.1) >> relu
    }
    return y >> conv_bn_relu(8) as head
}
"""


@pytest.fixture
def ir() -> IR:
    return nasir.load(SPEC, text=True)


def _put(ir: IR, node: Node) -> None:
    """Overwrite a stored node behind IR's back (as a buggy pass could)."""
    ir._nodes[node.id] = node


def _broken(ir: IR, match: str, node_id: str | None = None) -> IRError:
    with pytest.raises(IRError, match=match) as info:
        verify(ir)
    if node_id is not None:
        assert f"node {node_id}" in info.value.message
        assert info.value.loc == ir.node(node_id).loc
    return info.value


# -- verify ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["resnet20", "ghostnet", "mobilenet_v2", "nasnet_a_mobile",
                                  "condensenet74_c4", "darts_cifar", "splitnet_wrn"])
def test_shipped_networks_verify(name: str) -> None:
    nasir.load(name).verify()


def test_verify_rejects_an_unknown_op(ir: IR) -> None:
    _put(ir, replace(ir.node("stage1/relu"), op="no_such_op"))
    _broken(ir, "unknown op 'no_such_op'", "stage1/relu")


def test_verify_rejects_an_input_that_does_not_exist(ir: IR) -> None:
    _put(ir, replace(ir.node("stage1/relu"), inputs=("nowhere",)))
    _broken(ir, "uses nowhere, which does not exist", "stage1/relu")


def test_verify_rejects_an_input_created_later(ir: IR) -> None:
    _put(ir, replace(ir.node("stage1/conv"), inputs=("stage1/relu",)))
    ir._users["stage1/relu"].append("stage1/conv")
    ir._users["x"].remove("stage1/conv")
    _broken(ir, "comes later in creation order", "stage1/conv")


def test_verify_rejects_graph_edges_that_differ_from_the_inputs(ir: IR) -> None:
    ir._users["x"].append("stage1/relu")
    _broken(ir, "graph edges that differ", "x")


def test_verify_rejects_ids_that_are_not_scope_paths() -> None:
    for bad in ("stage 1/relu", "stage1//relu", "relu/", "a-b"):
        ir = nasir.load("network n() { input x: 3x4x4\n return x >> relu }", text=True)
        ir.add(Node(bad, "relu", ir.node("relu").attrs, ("relu",), shape=(3, 4, 4)))
        ir.output = bad
        _broken(ir, "is not a scope path", bad)


def test_verify_rejects_a_node_stored_under_another_id(ir: IR) -> None:
    ir._nodes["dead"] = replace(ir.node("dead"), id="alive")
    with pytest.raises(IRError, match="graph node dead holds node alive"):
        verify(ir)


def test_verify_rejects_two_nodes_with_one_creation_order(ir: IR) -> None:
    _put(ir, replace(ir.node("stage1/relu"), order=ir.node("stage1/dropout").order))
    with pytest.raises(IRError, match="shares its creation order"):
        verify(ir)


def test_verify_rejects_a_scope_that_is_not_contiguous(ir: IR) -> None:
    attrs = ir.node("dead").attrs
    ir.add(Node("stage1/late", "relu", attrs, ("head/relu",), shape=(8, 8, 8)))
    ir.output = "stage1/late"
    error = _broken(ir, "reopens scope stage1", "stage1/late")
    assert "contiguous" in error.message


def test_verify_rejects_a_node_that_is_also_a_scope(ir: IR) -> None:
    attrs = ir.node("dead").attrs
    ir.add(Node("head", "relu", attrs, ("head/relu",), shape=(8, 8, 8)))
    ir.output = "head"
    _broken(ir, "is both a node and a scope", "head")


def test_verify_rejects_an_unset_or_missing_output(ir: IR) -> None:
    ir.output = None
    _broken(ir, "output None is not a node")
    ir.output = "gone"
    _broken(ir, "output 'gone' is not a node")


def test_verify_rejects_inputs_that_differ_from_the_input_nodes(ir: IR) -> None:
    ir.inputs = []
    _broken(ir, r"ir.inputs \[\] differ from its input nodes \['x'\]")


def test_verify_rejects_attributes_of_another_op(ir: IR) -> None:
    _put(ir, replace(ir.node("stage1/relu"), attrs=ir.node("stage1/dropout").attrs))
    _broken(ir, "not NoAttrs", "stage1/relu")


def test_verify_rejects_attributes_that_skipped_validation(ir: IR) -> None:
    conv = ir.node("stage1/conv")
    _put(ir, replace(conv, attrs=conv.attrs.model_copy(update={"out": -4})))
    _broken(ir, "attributes that do not validate", "stage1/conv")


def test_verify_rejects_a_wrong_number_of_inputs(ir: IR) -> None:
    _put(ir, replace(ir.node("stage1/relu"), inputs=("stage1/dropout", "x")))
    ir._users["x"].append("stage1/relu")
    _broken(ir, r"has 2 input\(s\); relu takes 1", "stage1/relu")


def test_verify_rejects_a_shape_that_the_shape_rule_does_not_give(ir: IR) -> None:
    ir.update("stage1/relu", shape=(5, 8, 8))
    _broken(ir, "has shape 5x8x8 but relu of its inputs gives 4x8x8", "stage1/relu")


def test_verify_names_the_pass_that_made_the_broken_node(ir: IR) -> None:
    ir.update("stage1/relu", shape=(5, 8, 8), made_by="my_pass")
    _broken(ir, "made by pass 'my_pass'", "stage1/relu")


def test_update_checks_new_inputs_as_add_does(ir: IR) -> None:
    with pytest.raises(ValueError, match="unknown inputs"):
        ir.update("stage1/relu", inputs=("nowhere",))
    with pytest.raises(ValueError, match="not earlier"):
        ir.update("stage1/conv", inputs=("stage1/relu",))
    with pytest.raises(ValueError, match="cannot change"):
        ir.update("stage1/conv", order=99)
    ir.update("stage1/relu", inputs=("stage1/conv",))  # an earlier node is fine
    assert ir.users("stage1/conv") == ["stage1/dropout", "stage1/relu"]
    verify(ir)


# -- Transformer ---------------------------------------------------------------------------
class ReluToRelu6(Transformer):
    def visit_relu(self, node: Node) -> Node:
        return self.emit("relu6", {}, self.inputs(node), node.name)


def test_identity_transform_gives_the_same_network_and_leaves_the_input_alone(ir: IR) -> None:
    before = ir.signature()
    out = Transformer(ir).transform()
    assert out is not ir
    assert out.signature() == before == ir.signature()
    assert out.scope_kinds == ir.scope_kinds


def test_emitted_nodes_record_the_pass_and_inherit_the_spec_location(ir: IR) -> None:
    out = ReluToRelu6(ir, name="relu6").transform()
    assert [n.op for n in out if n.op.startswith("relu")] == ["relu6"] * 3
    assert out.node("stage1/relu").made_by == "relu6"
    assert out.node("stage1/relu").loc == ir.node("stage1/relu").loc
    assert out.node("stage1/conv").made_by is None
    assert ir.node("stage1/relu").op == "relu"


def test_users_of_a_replaced_node_are_remapped() -> None:
    class DropDropout(Transformer):
        def visit_dropout(self, node: Node) -> Node:  # forward the input to every user
            return self.out.node(self.inputs(node)[0])

    ir = nasir.load(SPEC, text=True)
    out = DropDropout(ir).transform()
    assert "stage1/dropout" not in out
    assert out.node("stage1/relu").inputs == ("stage1/conv",)
    assert out.users("stage1/conv") == ["stage1/relu"]


def test_a_node_nothing_uses_can_be_deleted_a_used_one_cannot(ir: IR) -> None:
    class Delete(Transformer):
        def __init__(self, ir: IR, victim: str):
            super().__init__(ir, name="delete")
            self.victim = victim

        def visit(self, node: Node) -> Node | None:
            return None if node.id == self.victim else self.copy(node)

    out = Delete(ir, "dead").transform()
    assert "dead" not in out and len(out) == len(ir) - 1
    with pytest.raises(SpecError, match="pass 'delete' deleted stage1/conv, but it is still"):
        Delete(ir, "stage1/conv").transform()
    with pytest.raises(SpecError, match=r"deleted head/relu, but it is still used .the net"):
        Delete(ir, "head/relu").transform()


def test_shapes_after_a_replacement_are_inferred_again(ir: IR) -> None:
    class Wider(Transformer):
        def visit_conv(self, node: Node) -> Node:
            if node.id != "stage1/conv":
                return self.copy(node)
            return self.emit("conv", {"out": 6, "kernel": 3}, self.inputs(node), "conv")

    out = Wider(ir).transform()
    assert out.node("stage1/relu").shape == (6, 8, 8)
    assert out.node("head/conv").shape == (8, 8, 8)
    assert_static_matches_torch(out)


def test_invalid_attributes_and_bugs_in_a_pass_name_the_pass_and_the_node(ir: IR) -> None:
    class BadAttrs(Transformer):
        def visit_relu(self, node: Node) -> Node:
            return self.emit("dropout", {"p": "half"}, self.inputs(node), node.name)

    class Crash(Transformer):
        def visit_dropout(self, node: Node) -> Node:
            raise KeyError("boom")

    with pytest.raises(SpecError, match=r"pass 'bad' gives dropout invalid attributes: "
                                        r"parameter 'p'.*at node dead") as info:
        BadAttrs(ir, name="bad").transform()
    assert info.value.loc == ir.node("dead").loc
    with pytest.raises(SpecError, match="pass 'crash' failed at node stage1/dropout: KeyError"):
        Crash(ir, name="crash").transform()


def test_emitting_into_a_closed_scope_breaks_verify_and_names_the_pass(ir: IR) -> None:
    class Reopen(Transformer):
        def visit_relu(self, node: Node) -> Node:
            if node.id != "head/relu":
                return self.copy(node)
            return self.emit("relu", {}, self.inputs(node), "late", scope="stage1")

    with pytest.raises(IRError, match=r"stage1/late .made by pass 'reopen'. reopens scope"):
        Reopen(ir, name="reopen").transform()


# -- splicing .arch blocks -----------------------------------------------------------------
class Splice(Transformer):
    """Replace stage1/conv by a block from a spec, with the conv's width and kernel."""

    def __init__(self, ir: IR, block: str, spec: str = "std.arch", **args):
        super().__init__(ir, name="splice")
        self.block, self.spec, self.args = block, spec, args

    def visit_conv(self, node: Node) -> Node:
        if node.id != "stage1/conv":
            return self.copy(node)
        args = {"out": node.attrs.out, "k": node.attrs.kernel, **self.args}
        return self.splice_block(self.block, self.inputs(node), args, spec=self.spec)


def _spec_with(call: str, spec: str = "std.arch") -> str:
    """SPEC with stage1's conv written as `call`: the reference a splice must reproduce."""
    text = SPEC.replace("conv(4, 3) as conv", f"{call} as conv")
    return text if spec == "std.arch" else text.replace('import "std.arch"',
                                                       f'import "std.arch"\nimport "{spec}"')


def test_splicing_conv_bn_relu_equals_writing_it_in_the_spec(ir: IR) -> None:
    out = Splice(ir, "conv_bn_relu").transform()
    expected = nasir.load(_spec_with("conv_bn_relu(4, 3)"), text=True)
    assert out.signature() == expected.signature()
    assert out.scope_kinds == expected.scope_kinds
    assert {n.made_by for n in out if n.id.startswith("stage1/conv/")} == {"splice"}
    assert {n.loc for n in out if n.id.startswith("stage1/conv/")} == {ir.node("stage1/conv").loc}
    assert_static_matches_torch(out)


def test_splicing_ghostnets_ghost_module_equals_writing_it_in_the_spec(ir: IR) -> None:
    out = Splice(ir, "ghost_module", spec="ghostnet.arch", relu=False).transform()
    expected = nasir.load(_spec_with("ghost_module(4, k=3, relu=false)", "ghostnet.arch"),
                          text=True)
    assert out.signature() == expected.signature()
    assert out.scope_kinds["stage1/conv"] == ("block", "ghost_module")
    assert_static_matches_torch(out)


def test_splicing_a_block_with_bad_arguments_is_a_spec_error_naming_the_pass(ir: IR) -> None:
    with pytest.raises(SpecError, match=r"pass 'splice'.*no parameter 'widht'"):
        Splice(ir, "conv_bn_relu", widht=3).transform()
    with pytest.raises(SpecError, match=r"pass 'splice'.*cannot pass"):
        Splice(ir, "conv_bn_relu", groups={"not": "a value"}).transform()
    with pytest.raises(SpecError, match="cannot splice from"):
        Splice(ir, "conv_bn_relu", spec='std.arch"\nimport "x').transform()


def test_verify_rejects_a_users_index_naming_a_node_that_is_not_there(ir: IR) -> None:
    ir._users["ghost"] = []
    with pytest.raises(IRError, match="users index holds nodes that are not in the IR"):
        verify(ir)


def test_graph_view_has_an_edge_per_input_and_is_a_snapshot(ir: IR) -> None:
    graph = ir.graph
    assert list(graph.nodes) == [n.id for n in ir.nodes()]
    assert sorted(graph.edges) == sorted((src, n.id) for n in ir.nodes() for src in n.inputs)
    assert all(graph.nodes[n.id]["node"] is n for n in ir.nodes())
    graph.remove_node("dead")
    assert "dead" in ir
    ir.verify()
