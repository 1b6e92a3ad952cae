"""Backends are safe with any name: generated Python is code, printed .arch is a spec.

Labels, scope names, template names and paths come from specs, so they are hostile: Python
keywords and builtins, nn.Module attributes, names the generated file imports, .arch
keywords, digits, and names that collide after mangling (`class` and `class_`). Whatever
they are, the generated module imports and equals the in-memory one (same state-dict keys,
same outputs), and the printed .arch elaborates back to the same IR.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import math
import types

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nasir
from nasir.backends.arch_printer import arch_keywords, to_arch
from nasir.backends.program import attr_name, reserved_names
from nasir.backends.python_source import _literal, to_python
from nasir.errors import SpecError
from nasir.ir.graph import IR

# Labels are given as strings (`as ("class")`), so any identifier or digit string is allowed.
HOSTILE_LABELS = [
    "class", "lambda", "None", "True", "def", "import", "yield", "match", "type", "_",
    "print", "len", "super", "float", "int", "getattr", "object",
    "training", "forward", "_modules", "_parameters", "cuda", "state_dict", "add_module",
    "network", "input_shapes", "_steps", "__init__", "__dict__", "__class__", "__init",
    "torch", "nn", "NF", "Adder2d", "Conv2d", "INPUT_SHAPES", "build", "self", "x", "v0",
    "true", "false", "input", "as", "scope", "default", "let", "return",
    "0", "1", "10", "007",
    "class_", "training_", "training__", "forward_", "v1", "x0", "self_", "relu", "conv",
]
# Template and network names are .arch NAMEs: not .arch keywords, ops or .arch builtins.
HOSTILE_TEMPLATES = [
    "None", "True", "False", "print", "lambda", "nn", "Nn", "torch", "Torch", "NF", "Adder2d",
    "Conv2d", "INPUT_SHAPES", "build", "Build", "self", "forward", "training", "Block",
    "block_", "class", "getattr", "Exception", "Scope0", "float_",
]


def _run_generated(source: str) -> types.ModuleType:
    """Import generated source (nasir's own output, never spec text) as a fresh module."""
    module = types.ModuleType("nasir_generated")
    exec(compile(source, "<generated>", "exec"), module.__dict__)
    return module


def assert_backends_agree(ir: IR) -> None:
    """Generated source imports, has the compiled module's state-dict keys and outputs."""
    source = to_python(ir)
    generated = _run_generated(source).build().eval()
    torch.manual_seed(0)
    compiled = nasir.compile(ir).eval()
    assert list(generated.state_dict()) == list(compiled.state_dict())
    generated.load_state_dict(compiled.state_dict())
    x = compiled.example_inputs(batch=2)
    with torch.no_grad():
        torch.testing.assert_close(generated(*x), compiled(*x), rtol=0, atol=0)


def assert_arch_round_trips(ir: IR) -> None:
    assert nasir.load(to_arch(ir), text=True).signature() == ir.signature()


# ---- the naming rule --------------------------------------------------------------------

def test_attr_name_keeps_labels_nn_module_accepts():
    for name in ["conv", "0", "12", "class", "lambda", "None", "print", "torch", "nn", "__init"]:
        assert attr_name(name) == name


def test_attr_name_moves_reserved_names_and_their_underscore_family():
    assert attr_name("training") == "training_"
    assert attr_name("training_") == "training__"
    assert attr_name("forward") == "forward_"
    assert attr_name("__init__") == "__init___"
    assert attr_name("network") == "network_"  # NasirModel's own attribute


def test_attr_name_is_one_to_one_and_never_reserved():
    family = {r.rstrip("_") + "_" * k for r in reserved_names() for k in range(5)}
    names = sorted(family | set(HOSTILE_LABELS))
    mangled = [attr_name(n) for n in names]
    assert len(set(mangled)) == len(names)
    assert not set(mangled) & reserved_names()
    module = torch.nn.Module()
    for name in mangled:  # nn.Module accepts every one of them as a child
        module.add_module(name, torch.nn.Identity())


def test_digit_and_keyword_labels_stay_verbatim_in_state_dict_keys():
    ir = nasir.load("""
network net() {
    input x: 3x8x8
    scope features { scope 0 { y = x >> conv(4, 3) as 1 >> bn as ("training") } }
    return y >> gap >> flatten >> linear(2) as ("class")
}""", text=True)
    keys = list(nasir.compile(ir).state_dict())
    assert "features.0.1.weight" in keys
    assert "features.0.training_.running_mean" in keys
    assert "class.weight" in keys
    assert_backends_agree(ir)
    assert_arch_round_trips(ir)


# ---- generated Python -------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    float("inf"), float("-inf"), -0.0, 1e-05, 2**64, -(2**200), 10**30, True, None, "a'\"\\\n",
    "\x00\udcff\u2028", (1, (2.5, "x"), [3]), (), (1,), {"a": (1, 2)},
])
def test_literals_evaluate_to_the_same_value(value):
    text = _literal(value)
    back = eval(text, {"__builtins__": {"float": float}})
    assert back == value and type(back) is type(value)
    assert repr(back) == repr(value)  # -0.0 stays negative


def test_nan_literal_is_nan():
    assert math.isnan(eval(_literal(float("nan")), {"__builtins__": {"float": float}}))


def test_huge_ints_avoid_python_digit_limit():
    value = 7**6000  # over 4300 decimal digits: repr() would raise
    assert eval(_literal(value), {"__builtins__": {}}) == value


HOSTILE_PATHS = [
    'spec"""\nimport os\nos.system("echo pwned")\n"""',
    "a\\\\b\\",
    "x\"\"\"; raise SystemExit  #",
    "nul\x00byte\r\nand\u2028line\udcffsep é.arch",
]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_a_hostile_spec_path_cannot_inject_code(path):
    ir = nasir.load("resnet20")
    benign = ast.parse(to_python(ir))
    ir.source = ir.name = path
    ir.params = {"depth": path}
    source = to_python(ir, spec_hint=path)
    tree = ast.parse(source)
    assert [type(n) for n in tree.body] == [type(n) for n in benign.body]
    assert path in ast.get_docstring(tree, clean=False)
    assert_arch_comment_safe(ir)


def assert_arch_comment_safe(ir: IR) -> None:
    text = to_arch(ir)
    assert nasir.load(text, text=True).signature() == ir.signature()


def test_class_names_never_shadow_imports_builtins_or_each_other():
    blocks = "\n".join(f'block {name}(x) {{ return x >> conv(2, 1) as "c" }}'
                       for name in HOSTILE_TEMPLATES)
    calls = "; ".join(f"y = y >> {name}" for name in HOSTILE_TEMPLATES)
    ir = nasir.load(f"{blocks}\nnetwork adder2d() {{ input x: 2x4x4; y = x; {calls}; "
                    "y = y >> adder(2, 1) as nn; return y }", text=True)
    source = to_python(ir)
    tree = ast.parse(source)
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    assert len(classes) == len(set(classes)) == len(HOSTILE_TEMPLATES) + 1
    imported = {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom | ast.Import)
                for a in n.names}
    assert not set(classes) & (imported | set(dir(builtins)) | set(keyword.kwlist)
                               | {"INPUT_SHAPES", "build"})
    assert_backends_agree(ir)
    assert_arch_round_trips(ir)


# ---- property: random hostile networks ----------------------------------------------------

_OPS = ["conv(2, 1)", "conv(3, 1)", "bn", "relu"]


@st.composite
def hostile_specs(draw) -> str:
    """Spec text of a small network whose every label and template name is hostile."""
    templates = draw(st.lists(st.sampled_from(HOSTILE_TEMPLATES), min_size=1, max_size=3,
                              unique=True))
    network = draw(st.sampled_from([t for t in HOSTILE_TEMPLATES if t not in templates]))

    def labels(n: int) -> list[str]:  # unique within one scope
        return draw(st.lists(st.sampled_from(HOSTILE_LABELS), min_size=n, max_size=n,
                             unique=True))

    def stage(label: str) -> str:
        head = draw(st.sampled_from([*_OPS, *(f"{t}({draw(st.sampled_from([2, 3]))})"
                                               for t in templates)]))
        return f"y = y >> {head} as ({_arch_string(label)})"

    lines = []
    for name in templates:
        a, b, c = labels(3)
        # blocks differ in width, so their classes take constructor parameters named
        # after hostile labels (`class_out_channels`, `v0_out_channels`)
        lines.append(f"block {name}(x, c: int) {{ y = x >> conv(c, 1) as ({_arch_string(a)}) "
                     f">> bn as ({_arch_string(b)}); z = y >> conv(c, 1) as (\"z\"); "
                     f"return relu(y + z) as ({_arch_string(c)}) }}")
    body = ["input x: 2x4x4", "y = x"]
    count = draw(st.integers(1, 4))
    top = labels(count + 1)
    for label in top[:-1]:
        if draw(st.booleans()):
            inner = labels(draw(st.integers(1, 2)))
            body.append(f"scope ({_arch_string(label)}) {{ "
                        + "; ".join(stage(lab) for lab in inner) + " }")
        else:
            body.append(stage(label))
    body.append(f"return y >> conv(3, 1) as ({_arch_string(top[-1])})")
    lines.append(f"network {network}() {{ " + "; ".join(body) + " }")
    return "\n".join(lines)


def _arch_string(text: str) -> str:
    return '"' + text + '"'


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_specs())
def test_hostile_names_survive_both_backends_and_the_printer(text):
    ir = nasir.load(text, text=True)
    assert_backends_agree(ir)
    assert_arch_round_trips(ir)
    # keys are the labels joined by ".", mangled only by attr_name
    layers = {".".join(attr_name(p) for p in n.id.split("/")) for n in ir.nodes()}
    for key in nasir.compile(ir).state_dict():
        assert key.rsplit(".", 1)[0] in layers


def test_arch_keywords_come_from_the_grammar():
    assert {"true", "input", "scope", "as", "network"} <= arch_keywords()


def test_printer_refuses_values_arch_cannot_write():
    ir = nasir.load("network n() { input x: 3x8x8; return x >> bn as b }", text=True)
    node = ir.node("b")
    ir.update("b", attrs=node.attrs.model_copy(update={"eps": float("inf")}))
    with pytest.raises(ValueError, match="inf"):
        to_arch(ir)


# ---- memory refusal ---------------------------------------------------------------------

HUGE = "network huge() { input x: 3x8x8; return x >> conv(2000000000, 7) }"


def test_a_network_too_big_for_memory_is_refused_before_allocating(monkeypatch):
    def no_conv(*args, **kwargs):
        raise AssertionError("a weight was allocated")

    monkeypatch.setattr(torch.nn.Conv2d, "__init__", no_conv)
    with pytest.raises(SpecError) as err:
        nasir.compile(nasir.load(HUGE, text=True))  # the default budget: half of physical memory
    message = str(err.value)
    assert "294,000,000,000 parameters" in message  # 2e9 * 3 * 7 * 7
    assert "1,176,000,000,000 bytes" in message and "limit" in message


def test_max_bytes_sets_the_budget():
    ir = nasir.load("resnet20")
    params = sum(p.numel() for p in nasir.compile(ir).parameters())
    buffers = sum(b.numel() for b in nasir.compile(ir).buffers() if b.is_floating_point())
    need = 4 * (params + buffers)
    nasir.compile(ir, max_bytes=need)
    with pytest.raises(SpecError, match=f"over the limit of {need - 1:,} bytes"):
        nasir.compile(ir, max_bytes=need - 1)
