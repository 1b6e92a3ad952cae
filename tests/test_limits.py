"""Every bound of nasir.limits is reached through a real spec, quickly, with a located error
that names the limit; the Python API raises only SpecError whatever its arguments."""

from __future__ import annotations

import math
from pathlib import Path
from unittest.mock import patch

import pytest
from conftest import assert_refused, run_real_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nasir
from nasir import limits
from nasir.cli import main
from nasir.errors import SpecError

ERRORS = Path(__file__).parent / "errors" / "limits"  # kept apart from the one-mistake corpus


def net(body: str, before: str = "") -> str:
    """A network whose body runs `body` before returning its input."""
    return f"{before}\nnetwork net() {{\n    input x: 3x8x8\n{body}\n    return x\n}}\n"


def fails(text: str, limit: str, **params) -> SpecError:
    """Load `text`, expect a located SpecError naming `limit`."""
    with pytest.raises(SpecError) as err:
        nasir.load(text, text=True, **params)
    assert limit in err.value.message, err.value.format()
    assert err.value.loc is not None and err.value.loc.file == "<string>"
    return err.value


# ---- MAX_STEPS -------------------------------------------------------------------------

def test_nested_empty_loops_stop_at_max_steps():
    err = fails(net("for i in range(100000) { for j in range(100000) { } }"), "(MAX_STEPS")
    assert f"{limits.MAX_STEPS:,} steps" in err.message
    assert err.loc.line == 4


def test_repeats_count_as_steps(monkeypatch):
    monkeypatch.setattr(limits, "MAX_STEPS", 1000)
    fails(net("    y = x >> relu * 0\n    for i in range(400) { y = x >> relu * 2 }"),
          "(MAX_STEPS")


def test_comparing_big_lists_in_a_loop_is_charged_per_item():
    fails(net("a = range(1000000)\nb = range(1000000)\nfor i in range(100) { c = a == b }"),
          "(MAX_STEPS")


# ---- MAX_STR_CHARS, MAX_LIST_ITEMS, nesting of list values --------------------------------

def test_string_doubling_stops_at_max_str_chars():
    err = fails(net('    s = "ab"\n    for i in range(100) { s = s + s }'), "(MAX_STR_CHARS)")
    assert err.loc.line == 5


@pytest.mark.parametrize("body", [
    "a = [1]\nfor i in range(100) { a = a + a }",  # concatenation
    "a = [1]\nfor i in range(100) { a = [a, a] }",  # nesting shares items: counted in full
    "a = range(2000000)",
    "a = enumerate(range(600000))",
    "a = range(600000)\nb = max(*a, *a)",  # splats
])
def test_lists_stop_at_max_list_items(body):
    err = fails(net(body), "(MAX_LIST_ITEMS)")
    assert f"{limits.MAX_LIST_ITEMS:,}" in err.message


def test_lists_of_lists_nest_at_most_max_nesting():
    fails(net("a = [1]\nfor i in range(1000) { a = [a] }"), "(MAX_NESTING)")


# ---- MAX_INT and finite floats ----------------------------------------------------------

@pytest.mark.parametrize("expr", [
    "2 ** 64", "10 ** 4000", "3037000500 * 3037000500", "9223372036854775807 + 1",
    "-9223372036854775807 - 2", "int(1e300)", "round(1e300)", "ceil(1e300)", "floor(-1e300)",
    "make_divisible(1e300, 8)", "sum([9223372036854775807, 1])", "abs(-9223372036854775807 - 1)",
])
def test_integers_stay_within_max_int(expr):
    fails(net(f"    a = {expr}"), "(MAX_INT)")


@pytest.mark.parametrize("expr", ["sum([1e308, 1e308])", "1e308 * 10.0", "2.0 ** 5000",
                                  "float(9223372036854775807) ** 40"])
def test_floats_stay_finite(expr):
    with pytest.raises(SpecError, match=r"finite|too large|arithmetic error") as err:
        nasir.load(net(f"    a = {expr}"), text=True)
    assert err.value.loc.line == 4


def test_long_values_in_messages_are_cut():
    text = net("    y = x >> b(range(100000))", "block b(x, n: int) { return x }")
    with pytest.raises(SpecError, match=r"expects int, got \[0, 1, 2, .*\.\.\.") as err:
        nasir.load(text, text=True)
    assert len(err.value.message) < 200


# ---- MAX_NODES, MAX_CALL_DEPTH -----------------------------------------------------------

def test_nodes_stop_at_max_nodes(monkeypatch):
    monkeypatch.setattr(limits, "MAX_NODES", 2000)
    err = fails(net("    y = x >> relu * 600000"), "(MAX_NODES)")
    assert "2,000 nodes" in err.message


def test_a_5000_block_chain_stops_at_max_call_depth():
    chain = "".join(f"block a{i}(x) {{ return x >> a{i + 1} }}\n" for i in range(5000))
    err = fails(net("    y = x >> a0", chain + "block a5000(x) { return x }"),
                "(MAX_CALL_DEPTH)")
    assert f"deeper than {limits.MAX_CALL_DEPTH}" in err.message
    assert err.message.endswith(f"a{limits.MAX_CALL_DEPTH}")
    assert [name for name, _ in err.trace] == [f"a{limits.MAX_CALL_DEPTH - 1 - i}"
                                               for i in range(5)]


def test_a_chain_within_max_call_depth_works():
    depth = limits.MAX_CALL_DEPTH
    chain = "".join(f"block a{i}(x) {{ return x >> a{i + 1} }}\n" for i in range(depth - 1))
    text = net("    y = x >> a0 >> relu", chain + f"block a{depth - 1}(x) {{ return x }}")
    assert [n.op for n in nasir.load(text.replace("return x\n}", "return y\n}"),
                                     text=True).nodes()] == ["input", "relu"]


def test_long_operator_chains_are_evaluated_without_recursion():
    text = net("    n = " + " + ".join(["1"] * 10000) + "\n    y = x >> conv(n, 1)")
    ir = nasir.load(text.replace("return x\n}", "return y\n}"), text=True)
    assert ir.node("conv").shape[0] == 10000


def test_a_recursion_error_becomes_a_spec_error():
    def deep(*args, **kwargs):
        raise RecursionError

    with patch("nasir.api.build_ir", deep), pytest.raises(SpecError, match="nests too deep"):
        nasir.load("resnet20")


# ---- through the CLI ----------------------------------------------------------------------

LIMIT_FILES = {
    "lim_steps.arch": "MAX_STEPS", "lim_list_items.arch": "MAX_LIST_ITEMS",
    "lim_str_chars.arch": "MAX_STR_CHARS", "lim_int.arch": "MAX_INT",
    "lim_call_depth.arch": "MAX_CALL_DEPTH",
}


@pytest.mark.parametrize("name", sorted(LIMIT_FILES))
def test_each_limit_through_the_cli(name, capsys):
    assert main(["check", str(ERRORS / name)]) == 2
    err = capsys.readouterr().err
    assert f"{name}:" in err.splitlines()[0] and f"({LIMIT_FILES[name]}" in err
    assert "Traceback" not in err and "internal error" not in err


def test_a_limit_through_the_real_command():
    result = run_real_cli("check", str(ERRORS / "lim_int.arch"))
    assert_refused(result)
    assert "(MAX_INT)" in result.stderr


def test_set_values_are_bounded_too(capsys):
    assert main(["check", "resnet20", "--set", "depth=2**70"]) == 2
    err = capsys.readouterr().err
    assert "(MAX_INT)" in err and "Traceback" not in err


# ---- the Python API raises only SpecError --------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"spec": 123}, {"spec": None}, {"spec": ["resnet20"]}, {"spec": "a\0b"},
    {"spec": "resnet20", "network": 5}, {"spec": "resnet20", "input": (0, 32, 32)},
    {"spec": "resnet20", "input": (3, -1, 32)}, {"spec": "resnet20", "input": (3, 32, 32, 1)},
    {"spec": "resnet20", "input": (True, 32, 32)}, {"spec": "resnet20", "input": (3.0, 32)},
    {"spec": "resnet20", "input": "3xax3"}, {"spec": "resnet20", "input": "9" * 5000},
    {"spec": "resnet20", "input": 3}, {"spec": "resnet20", "input": ()},
    {"spec": "resnet20", "depth": object()}, {"spec": "resnet20", "depth": math.nan},
    {"spec": "resnet20", "depth": True}, {"spec": "resnet20", "depth": 10**30},
    {"spec": "resnet20", "depth": [[1]]}, {"spec": "resnet20", "depth": {"a": 1}},
    {"spec": "resnet20", "import_paths": "specs"}, {"spec": "resnet20", "import_paths": [3]},
])
def test_bad_api_arguments_raise_spec_error(kwargs):
    with pytest.raises(SpecError):
        nasir.load(**kwargs)


def test_a_deeply_nested_keyword_list_is_refused():
    value: list = []
    for _ in range(limits.MAX_NESTING + 5):
        value = [value]
    with pytest.raises(SpecError, match="MAX_NESTING"):
        nasir.load("resnet20", depth=value)


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                    st.text(max_size=20), st.binary(max_size=5), st.complex_numbers(),
                    st.decimals(), st.fractions())
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.tuples(inner, inner) | st.dictionaries(st.text(max_size=3), inner,
                                                                   max_size=2), max_leaves=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_any_keyword_value_works_or_raises_spec_error(value):
    with patch.object(limits, "MAX_NODES", 3000):
        try:
            ir = nasir.load("resnet20", depth=value)
        except SpecError:
            return
    assert ir.params["depth"] == value
