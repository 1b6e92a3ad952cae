"""The `nasir` command line: check, stats, compile, print, list and ops.

A few tests run the installed `nasir` command in a subprocess (the real entry point, exit
codes and streams); the rest call `nasir.cli.main` in-process, which is the same code
without the ~2 s interpreter start-up.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import nasir
from nasir.cli import main
from nasir.testing.generated import import_file

ERRORS = Path(__file__).parent / "errors"
RESNET20_PARAMS = 272_474  # specs/resnet_cifar.arch header: option-B shortcuts
# AdderNet (CVPR 2020) ResNet-20/32 topology, papers.md §3 [calc]: conv + adder + fc MACs.
RESNET20_MACS = 40_813_184
RESNET32_MACS = 69_124_736
FC_MACS = 64 * 10  # the classifier's linear layer, which does not grow with the input


def nasir_command() -> list[str]:
    """The installed `nasir` console script next to this interpreter, else `python -m`."""
    script = Path(sys.executable).with_name("nasir")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "nasir.cli"]


def run_nasir(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*nasir_command(), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def stats_json(capsys, *args: str) -> dict:
    status, out, err = run_main(capsys, "stats", *args, "--json")
    assert (status, err) == (0, "")
    return json.loads(out)


# ---- the real command --------------------------------------------------------------------

def test_nasir_check_reports_ok_with_shapes_and_exits_0(tmp_path: Path) -> None:
    result = run_nasir("check", "resnet20", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok: resnet20: 74 ops, input x 3x32x32, output 10\n"
    assert result.stderr == ""


def test_nasir_stats_json_has_the_totals_the_input_and_the_policy(tmp_path: Path) -> None:
    result = run_nasir("stats", "resnet20", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {"params", "macs", "muls", "adds", "input", "policy"} <= set(data)
    assert (data["params"], data["macs"]) == (RESNET20_PARAMS, RESNET20_MACS)
    assert data["input"] == "3x32x32"
    assert data["policy"]["name"] == "paper"


def test_nasir_compile_writes_an_importable_module_with_compiles_state_dict(
        tmp_path: Path) -> None:
    target = tmp_path / "resnet20_model.py"
    result = run_nasir("compile", "resnet20", "-o", str(target), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"wrote {target}" in result.stdout
    module = import_file(target)
    built = module.build()
    assert list(built.state_dict()) == list(nasir.compile("resnet20").state_dict())
    assert module.INPUT_SHAPES == {"x": (3, 32, 32)}


@pytest.mark.parametrize("args", [["check", str(ERRORS / "add_channel_mismatch.arch")],
                                  ["stats", "no_such_network"],
                                  ["check", "resnet20", "--set", "depth"],
                                  ["stats"]],
                         ids=["spec-error", "unknown-network", "bad-set", "usage"])
def test_nasir_errors_exit_2_without_a_traceback(args: list[str], tmp_path: Path) -> None:
    result = run_nasir(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "error" in result.stderr
    assert "Traceback" not in result.stderr


# ---- in-process ------------------------------------------------------------------------

def test_stats_table_prints_the_counting_policy_and_the_total(capsys) -> None:
    status, out, _ = run_main(capsys, "stats", "resnet20")
    assert status == 0
    assert "policy 'paper': MACs = multiply-accumulates of conv/linear layers" in out
    total = next(line for line in out.splitlines() if line.startswith("total"))
    assert f"{RESNET20_PARAMS:,}" in total and f"{RESNET20_MACS:,}" in total


def test_stats_count_all_changes_the_policy_and_adds_elementwise_ops(capsys) -> None:
    paper, every = stats_json(capsys, "resnet20"), stats_json(capsys, "resnet20", "--count", "all")
    assert every["policy"]["name"] == "all"
    assert every["macs"] == paper["macs"]
    assert every["adds"] > paper["adds"]


def test_set_depth_32_builds_resnet32_from_resnet_cifar(capsys) -> None:
    """He et al. 2016 §4.2: depth 6n+2; n=5 gives ResNet-32 (AdderNet papers.md §3 MACs)."""
    base = stats_json(capsys, "resnet_cifar")
    deeper = stats_json(capsys, "resnet_cifar", "--set", "depth=32")
    assert base["params"] == RESNET20_PARAMS
    assert deeper["params"] > base["params"]
    assert deeper["macs"] == RESNET32_MACS
    assert deeper["parameters"]["depth"] == 32
    assert deeper["params"] == nasir.stats(nasir.load("resnet32")).total.params


def test_a_larger_input_scales_conv_macs_by_the_pixel_count(capsys) -> None:
    small = stats_json(capsys, "resnet20")
    large = stats_json(capsys, "resnet20", "--input", "3x64x64")
    assert large["input"] == "3x64x64"
    assert large["params"] == small["params"]
    assert large["macs"] == 4 * (small["macs"] - FC_MACS) + FC_MACS


def test_per_layer_lists_every_node(capsys) -> None:
    status, out, _ = run_main(capsys, "stats", "resnet20", "--per-layer")
    assert status == 0
    assert "layer3/2/conv2" in out
    rows = stats_json(capsys, "resnet20", "--per-layer")["layers"]
    assert len(rows) == len(nasir.load("resnet20"))
    assert sum(r["params"] for r in rows) == RESNET20_PARAMS


def test_compile_refuses_to_overwrite_without_force_and_leaves_the_file_intact(
        tmp_path: Path, capsys) -> None:
    target = tmp_path / "model.py"
    target.write_text("# mine\n")
    status, _, err = run_main(capsys, "compile", "resnet20", "-o", str(target))
    assert status == 2
    assert f"{target} exists" in err and "--force" in err
    assert target.read_text() == "# mine\n"
    status, _, _ = run_main(capsys, "compile", "resnet20", "-o", str(target), "--force")
    assert status == 0
    assert "def build()" in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["model.py"]  # no temporary file left


def test_printed_arch_loads_back_to_the_same_network_and_prints_identically(
        tmp_path: Path, capsys) -> None:
    status, text, _ = run_main(capsys, "print", "resnet20")
    assert status == 0
    printed = tmp_path / "printed.arch"
    printed.write_text(text)
    assert nasir.load(printed).signature() == nasir.load("resnet20").signature()
    _, again, _ = run_main(capsys, "print", str(printed))
    body = text[text.index("network "):]
    assert again[again.index("network "):] == body


def test_list_names_every_shipped_network_with_its_file(capsys) -> None:
    status, out, _ = run_main(capsys, "list")
    assert status == 0
    assert "resnet20" in out and "specs/resnet_cifar.arch" in out
    status, out, _ = run_main(capsys, "list", "--json")
    listing = json.loads(out)
    assert listing["resnet32"] == "resnet_cifar.arch"


def test_ops_lists_the_primitive_ops_with_their_signatures(capsys) -> None:
    status, out, _ = run_main(capsys, "ops")
    assert status == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert {"conv", "bn", "relu", "add", "concat", "linear"} <= set(names)
    assert names == sorted(names)
    assert any(line.startswith("conv ") and "conv(out, kernel" in line
               for line in out.splitlines())


@pytest.mark.parametrize("args, message", [
    (["check", "resnet20", "--input", "3x0x32"], "bad shape '3x0x32'"),
    (["stats", "resnet20", "--count", "bogus"], "unknown counting option 'bogus'"),
    (["check", "resnt20"], "did you mean 'resnet20'?"),
    (["check", "missing.arch"], "no such spec file: missing.arch"),
    (["check", "resnet20", "--set", "depth=1/0"], "division by zero"),
    (["check", "resnet20", "--input", "3x32"], "conv expects a feature map CxHxW, got a 3x32 "
     "tensor"),
], ids=["zero-input", "bad-policy", "typo-network", "missing-file", "set-expression",
        "flat-input"])
def test_argument_errors_exit_2_with_a_message(args: list[str], message: str, capsys) -> None:
    status, out, err = run_main(capsys, *args)
    assert status == 2
    assert out == ""
    assert message in err
