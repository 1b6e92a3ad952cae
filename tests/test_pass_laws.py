"""The laws of nasir.testing.passes for every built-in pass, over random networks and over
the fixture pairs of tests/fixtures/passes; and the harness itself catching broken passes.

A row of LAWS is a pass step, the strategy it is tested on and whether it is idempotent;
rows of passes not registered (yet) are skipped. NASIR_PASS_EXAMPLES=200 runs a longer
campaign locally (default 15 examples a row, to keep this file well under a minute).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import nasir
from nasir.ir import IR, Node, Transformer
from nasir.passes.pipeline import get_pass, pass_names
from nasir.passes.split import scale_widths
from nasir.testing.passes import PassLawError, check_fixture, check_inverse, check_pass
from nasir.testing.strategies import DEFAULT_STAGES, irs, networks, pass_irs

EXAMPLES = int(os.environ.get("NASIR_PASS_EXAMPLES", "15"))
LAWS_SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                         suppress_health_check=[HealthCheck.too_slow])
FIXTURES = Path(__file__).parent / "fixtures" / "passes"

WIDE = irs().map(lambda ir: scale_widths(ir, 8, 1))

# step -> (strategy, idempotent?)
LAWS: dict[str, tuple[st.SearchStrategy[IR], bool]] = {
    "ghost": (pass_irs(), True),
    "ghost:ratio=3,dw=5,keep_first=false,keep_last=false": (pass_irs(), True),
    "adder": (pass_irs(), True),
    "adder:keep_first=false,keep_last=false": (pass_irs(), True),
    "condense": (pass_irs(), True),
    # split needs free widths with a common factor to divide (scale_widths makes them 8x);
    # fuse needs an ensemble of identical members, as split makes it
    "split": (WIDE, False),
    "fuse": (WIDE.map(lambda ir: nasir.transform(ir, ["split"])), False),
}

# (input, expected, step) where the expected file is not named `<input>.<pass>.arch`
NAMED_FIXTURES = [("condense_small.arch", "condense_small.condensed.arch", "condense")]


def _registered(step: str) -> None:
    name = step.partition(":")[0]
    if name not in pass_names():
        pytest.skip(f"pass '{name}' is not registered yet")


def fixture_pairs() -> list[tuple[str, str, str]]:
    """Every `NAME.PASS.arch` beside a `NAME.arch` (PASS a pass name), plus NAMED_FIXTURES."""
    pairs = list(NAMED_FIXTURES)
    named = {expected for _, expected, _ in NAMED_FIXTURES}
    for path in sorted(FIXTURES.glob("*.*.arch")):
        base, step = path.name.split(".")[:2]
        if path.name not in named and (FIXTURES / f"{base}.arch").is_file():
            pairs.append((f"{base}.arch", path.name, step))
    return pairs


# -- every built-in pass -----------------------------------------------------------------
@pytest.mark.parametrize("step", list(LAWS))
@LAWS_SETTINGS
@given(data=st.data())
def test_pass_obeys_the_laws_on_random_networks(step: str, data: st.DataObject) -> None:
    _registered(step)
    strategy, idempotent = LAWS[step]
    check_pass(data.draw(strategy, label="ir"), step, idempotent=idempotent)


def test_every_built_in_pass_has_a_row_of_laws() -> None:
    built_in = {n for n in pass_names() if get_pass(n).__module__.startswith("nasir.passes.")}
    assert built_in <= {step.partition(":")[0] for step in LAWS}


@pytest.mark.parametrize("before, expected, step", fixture_pairs())
def test_fixture_pair(before: str, expected: str, step: str) -> None:
    _registered(step)
    check_fixture(FIXTURES / before, FIXTURES / expected, step,
                  idempotent=LAWS.get(step, (None, False))[1])


def test_the_fixture_pairs_are_found() -> None:
    steps = {step for _, _, step in fixture_pairs()}
    assert {"ghost", "adder", "condense", "split", "fuse"} <= steps


@LAWS_SETTINGS
@given(WIDE)
def test_fuse_after_split_keeps_the_counts_of_split(ir: IR) -> None:
    _registered("split")
    _registered("fuse")
    check_pass(nasir.transform(ir, ["split"]), "fuse", keeps_counts=True)


# -- an inverse pair: the user example of docs/passes.md and its inverse -------------------
class Swap(Transformer):
    """Every `source` activation becomes `target` under the same id."""

    def __init__(self, ir: IR, source: str, target: str):
        super().__init__(ir)
        self.source_op, self.target = source, target

    def visit(self, node: Node) -> Node | None:
        if node.op != self.source_op:
            return super().visit(node)
        return self.emit(self.target, {}, self.inputs(node), node.name)


def relu_to_relu6(ir: IR) -> IR:
    return Swap(ir, "relu", "relu6").transform()


def relu6_to_relu(ir: IR) -> IR:
    return Swap(ir, "relu6", "relu").transform()


@LAWS_SETTINGS
@given(irs(stages=tuple(s for s in DEFAULT_STAGES if s != "dwconv")))
def test_relu6_and_relu_are_inverse_passes(ir: IR) -> None:
    assume("relu6" not in {n.op for n in ir})
    out = check_inverse(ir, relu_to_relu6, relu6_to_relu, compile=False)
    assert "relu" not in {n.op for n in out}


# -- the harness catches broken passes -----------------------------------------------------
def _net() -> IR:
    return nasir.load("""import "std.arch"
    network n() {
        input x: 3x8x8
        y = x >> conv(4, 3) as stem >> bn >> relu >> conv(6, 3) as body >> relu as act
        return y >> classifier(3)
    }""", text=True)


def test_a_pass_that_mutates_its_input_breaks_purity() -> None:
    def vandal(ir: IR) -> IR:
        ir.update("act", made_by="vandal")
        return ir

    with pytest.raises(PassLawError, match="pass 'vandal' broke the law 'pure'"):
        check_pass(_net(), vandal)


def test_a_new_node_without_made_by_is_caught() -> None:
    def sneaky(ir: IR) -> IR:
        out = ir.copy()
        old = out.node("act")
        out.update("act", op="relu6", attrs=get_op_attrs("relu6"), made_by=None)
        assert out.node("act").op == "relu6" != old.op
        return out

    with pytest.raises(PassLawError, match="law 'made_by': changed node act has no made_by"):
        check_pass(_net(), sneaky, compile=False)


def get_op_attrs(op: str):
    from nasir.ops import get_op

    return get_op(op).Attrs()


def test_a_pass_recording_another_name_is_caught() -> None:
    def liar(ir: IR) -> IR:
        return Swap(ir, "relu", "relu6").transform()

    liar_out = check_pass(_net(), liar, compile=False)  # a function: made_by only needs to be set
    assert liar_out.node("act").made_by == "liar"

    class Named(Swap):
        name = "someone_else"

    from nasir.passes.pipeline import register_pass, unregister_pass

    register_pass("test_named")(lambda ir: Named(ir, "relu", "relu6").transform())
    try:
        with pytest.raises(PassLawError, match="made by 'someone_else'"):
            check_pass(_net(), "test_named", compile=False)
    finally:
        unregister_pass("test_named")


def test_a_pass_that_is_not_idempotent_is_caught() -> None:
    class AddRelu(Transformer):
        def visit(self, node: Node) -> Node | None:
            new = super().visit(node)
            if node.id != self.source.output:
                return new
            return self.emit("relu", {}, [new.id], f"extra{len(self.source)}")

    def add_relu(ir: IR) -> IR:
        return AddRelu(ir).transform()

    check_pass(_net(), add_relu, compile=False)
    with pytest.raises(PassLawError, match="law 'idempotent'"):
        check_pass(_net(), add_relu, idempotent=True, compile=False)


def test_a_node_without_a_shape_is_caught() -> None:
    def forgetful(ir: IR) -> IR:
        out = ir.copy()
        out.update(out.output, shape=None)
        return out

    with pytest.raises(PassLawError, match=r"law 'shapes'.*has no shape"):
        check_pass(_net(), forgetful, compile=False)


def test_keeps_counts_and_inverse_and_fixture_laws_can_fail() -> None:
    with pytest.raises(PassLawError, match="law 'keeps counts'"):
        check_pass(_net(), "ghost:keep_first=false", keeps_counts=True, compile=False)
    with pytest.raises(PassLawError, match="law 'inverse'"):
        check_inverse(_net(), relu_to_relu6, lambda ir: ir.copy(), compile=False)
    with pytest.raises(PassLawError, match=r"law 'fixture'.*expected"):
        check_fixture(FIXTURES / "small.arch", FIXTURES / "small.arch", "adder")


def test_the_compiled_law_runs_the_module() -> None:
    out = check_pass(_net(), "adder:keep_first=false")
    assert {n.op for n in out} >= {"adder"}


def test_an_op_miscounted_after_a_pass_breaks_the_counts_law(monkeypatch) -> None:
    """A pass emitting an op whose static count disagrees with its compiled layer is caught."""
    from nasir.ops import get_op

    adder = type(get_op("adder"))
    honest = adder.cost
    monkeypatch.setattr(adder, "cost", lambda self, a, ins, out:
                        dataclasses.replace(honest(self, a, ins, out), params=1))
    with pytest.raises(PassLawError, match="law 'counts': params: static"):
        check_pass(_net(), "adder:keep_first=false")


@settings(max_examples=5, deadline=None)
@given(networks(stages=("slice",)))
def test_networks_draw_only_the_stage_kinds_asked_for(text: str) -> None:
    assert "y = y[" in text and "member_net" not in text and "conv(" not in \
        text.split("as stem")[1].split("return")[0]


def test_an_unknown_stage_kind_is_a_clear_error() -> None:
    @settings(max_examples=1)
    @given(networks(stages=("nope",)))
    def draw(text: str) -> None:
        pass

    with pytest.raises(ValueError, match="unknown or no stage kinds"):
        draw()
