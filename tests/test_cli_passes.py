"""`--pass` on the command line (stats, compile, render, print, check), `nasir transform` and
`nasir passes`: each command runs the registered passes in order right after loading, and a
bad or failing pass is a located error (exit 2), never an internal error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import assert_refused, run_real_cli

import nasir
from nasir.cli import main
from nasir.errors import SpecError
from nasir.ir import IR, Node, Transformer
from nasir.passes.pipeline import pass_names, register_pass, unregister_pass
from nasir.testing.generated import import_file

SPEC = """network tiny() {
  input x: 3x8x8
  return x >> conv(4, 3) >> relu >> conv(4, 3) >> relu
}
"""
RELU_LINES = [i for i, line in enumerate(SPEC.splitlines(), 1) if "relu" in line]


class ReluToRelu6(Transformer):
    def visit_relu(self, node: Node) -> Node:
        return self.emit("relu6", {}, self.inputs(node), node.name)


class Broken(Transformer):
    def visit_relu(self, node: Node) -> Node:
        raise ZeroDivisionError("a bug in the pass")


@pytest.fixture
def passes():
    """Two passes registered for one test: `t_relu6` (relu -> relu6) and `t_broken`."""

    @register_pass("t_relu6")
    def relu6(ir: IR) -> IR:
        """Every relu becomes a relu6.

        (This paragraph is not listed.)"""
        return ReluToRelu6(ir).transform()

    @register_pass("t_broken")
    def broken(ir: IR) -> IR:
        return Broken(ir).transform()

    yield
    unregister_pass("t_relu6")
    unregister_pass("t_broken")


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.arch"
    path.write_text(SPEC)
    return path


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def ops_of(ir: IR) -> list[str]:
    return [node.op for node in ir.nodes()]


def test_print_with_a_pass_prints_the_transformed_network(passes, spec: Path, capsys) -> None:
    status, out, err = run_main(capsys, "print", str(spec), "--pass", "t_relu6")
    assert (status, err) == (0, "")
    reloaded = nasir.load(out, text=True)
    expected = nasir.transform(nasir.load(str(spec)), ["t_relu6"])
    assert ops_of(reloaded) == ops_of(expected)
    assert ops_of(reloaded).count("relu6") == 2 and "relu" not in ops_of(reloaded)
    status, plain, _ = run_main(capsys, "print", str(spec))
    assert status == 0 and "relu6" not in plain  # without --pass: the spec as is


def test_stats_per_layer_shows_which_pass_made_a_node(passes, spec: Path, capsys) -> None:
    status, out, _ = run_main(capsys, "stats", str(spec), "--per-layer")
    assert status == 0 and "made by" not in out  # no pass made anything: no column
    status, out, err = run_main(capsys, "stats", str(spec), "--per-layer", "--pass", "t_relu6")
    assert (status, err) == (0, "")
    header = next(line for line in out.splitlines() if line.startswith("name"))
    assert header.split()[:4] == ["name", "op/block", "made", "by"]
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    relu6_rows = [r for r in rows.values() if len(r) > 2 and r[1] == "relu6"]
    assert len(relu6_rows) == 2 and all(r[2] == "t_relu6" for r in relu6_rows)
    conv_rows = [r for r in rows.values() if len(r) > 2 and r[1] == "conv"]
    assert conv_rows and all(r[2][0].isdigit() for r in conv_rows)  # spec nodes: empty cell


def test_stats_json_layers_always_carry_made_by(passes, spec: Path, capsys) -> None:
    status, out, _ = run_main(capsys, "stats", str(spec), "--per-layer", "--json")
    assert status == 0
    assert {layer["made_by"] for layer in json.loads(out)["layers"]} == {None}
    status, out, _ = run_main(capsys, "stats", str(spec), "--per-layer", "--json",
                              "--pass", "t_relu6")
    assert status == 0
    made = {layer["op"]: layer["made_by"] for layer in json.loads(out)["layers"]}
    assert made["relu6"] == "t_relu6" and made["conv"] is None and "relu" not in made


def test_compile_with_a_pass_writes_code_that_runs(passes, spec: Path, tmp_path: Path,
                                                   capsys) -> None:
    target = tmp_path / "tiny_model.py"
    status, _, err = run_main(capsys, "compile", str(spec), "--pass", "t_relu6",
                              "-o", str(target))
    assert (status, err) == (0, "")
    assert "ReLU6" in target.read_text()
    built = import_file(target).build().eval()
    reference = nasir.compile(nasir.transform(nasir.load(str(spec)), ["t_relu6"])).eval()
    built.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, 8, 8) * 10  # large enough that relu6 clips
    with torch.no_grad():
        assert torch.equal(built(x), reference(x))


def test_render_with_a_pass_draws_the_new_ops(passes, spec: Path, tmp_path: Path,
                                              capsys) -> None:
    target = tmp_path / "tiny.dot"
    status, _, err = run_main(capsys, "render", str(spec), "--pass", "t_relu6",
                              "-o", str(target))
    assert (status, err) == (0, "")
    assert "relu6" in target.read_text()


def test_transform_writes_an_arch_file_that_checks(passes, spec: Path, tmp_path: Path,
                                                   capsys) -> None:
    target = tmp_path / "out.arch"
    status, out, err = run_main(capsys, "transform", str(spec), "--pass", "t_relu6",
                                "-o", str(target))
    assert (status, err) == (0, "")
    assert str(target) in out and "t_relu6" in out
    status, out, _ = run_main(capsys, "check", str(target))
    assert status == 0 and out.startswith("ok: tiny:")
    assert ops_of(nasir.load(str(target))).count("relu6") == 2
    # an existing file is kept without --force, replaced with it
    target.write_text("# mine\n")
    status, _, err = run_main(capsys, "transform", str(spec), "-o", str(target))
    assert status == 2 and "--force" in err and target.read_text() == "# mine\n"
    status, _, _ = run_main(capsys, "transform", str(spec), "-o", str(target), "--force")
    assert status == 0  # no --pass: the flat elaborated network as is
    assert ops_of(nasir.load(str(target))) == ops_of(nasir.load(str(spec)))


def test_passes_apply_in_order(passes, spec: Path, capsys) -> None:
    status, _, err = run_main(capsys, "check", str(spec), "--pass", "t_relu6",
                              "--pass", "t_broken")
    assert status == 0, err  # t_broken only breaks on relu, which t_relu6 removed first
    status, _, err = run_main(capsys, "check", str(spec), "--pass", "t_broken",
                              "--pass", "t_relu6")
    assert status == 2 and "t_broken" in err


def test_unknown_pass_lists_the_registered_ones(passes, spec: Path, capsys) -> None:
    status, out, err = run_main(capsys, "stats", str(spec), "--pass", "t_relu7")
    assert status == 2 and out == ""
    assert "unknown pass 't_relu7'" in err and "did you mean 't_relu6'" in err
    assert f"expected: one of: {', '.join(pass_names())}" in err
    assert "internal error" not in err


@pytest.mark.parametrize("text", ["t_relu6:S", "t_relu6:S=1,S=2", "1bad", ""])
def test_malformed_pass_text_says_what_was_expected(passes, spec: Path, capsys,
                                                    text: str) -> None:
    status, _, err = run_main(capsys, "print", str(spec), "--pass", text)
    assert status == 2 and "expected:" in err and "internal error" not in err


def test_failing_pass_names_the_pass_and_the_node(passes, spec: Path, capsys) -> None:
    status, out, err = run_main(capsys, "stats", str(spec), "--pass", "t_broken")
    assert status == 2 and out == ""
    assert "t_broken" in err and "ZeroDivisionError" in err
    assert f"{spec}:{RELU_LINES[0]}:" in err  # the relu's location in the spec
    assert "internal error" not in err and "Traceback" not in err


def test_options_reach_the_pass(spec: Path, capsys) -> None:
    seen: list[dict] = []

    @register_pass("t_options")
    def record(ir: IR, **options) -> IR:
        seen.append(options)
        return ir

    try:
        status, _, err = run_main(capsys, "check", str(spec), "--pass", "t_options:S=4,mode=x")
        assert (status, err) == (0, "")
        assert seen == [{"S": 4, "mode": "x"}]
    finally:
        unregister_pass("t_options")


def test_an_option_the_pass_does_not_take_is_named_with_the_ones_it_does(
        spec: Path, capsys) -> None:
    status, out, err = run_main(capsys, "stats", str(spec), "--pass", "ghost:rato=3")
    assert status == 2 and out == ""
    assert "pass 'ghost' has no option 'rato'" in err and "did you mean 'ratio'" in err
    assert "options of ghost: ratio, dw, keep_first, keep_last" in err
    assert "TypeError" not in err


def test_passes_lists_the_registered_passes(passes, capsys) -> None:
    status, out, _ = run_main(capsys, "passes")
    assert status == 0
    names = [line.split()[0] for line in out.splitlines() if line and not line[0].isspace()]
    assert names == pass_names()
    assert any(line.split() == ["t_relu6", "Every", "relu", "becomes", "a", "relu6."]
               for line in out.splitlines())
    assert "not listed" not in out


def test_passes_says_none_when_none_are_registered(monkeypatch, capsys) -> None:
    import nasir.passes.pipeline as pipeline

    monkeypatch.setattr(pipeline, "_PASSES", {})
    status, out, _ = run_main(capsys, "passes")
    assert (status, out) == (0, "(none yet)\n")


def test_a_failing_pass_in_the_real_command_exits_2(spec: Path) -> None:
    """The real entry point: an unknown pass is a clean exit 2 (no test passes there)."""
    result = run_real_cli("stats", str(spec), "--pass", "no_such_pass")
    assert_refused(result)
    assert "unknown pass 'no_such_pass'" in result.stderr


def test_transform_api_still_raises_spec_error(passes, spec: Path) -> None:
    with pytest.raises(SpecError, match="t_broken"):
        nasir.transform(nasir.load(str(spec)), ["t_broken"])
