"""Bad input is reported, never crashed on: the corpus of malformed specs in tests/errors/.

Every file there is wrong in exactly one way. `nasir check` must exit with status 2 and
print a compiler-style diagnostic: `file:line:col: error: message`, the offending source
line with a caret under the culprit, an `expected:` line where one helps, notes at related
locations, and never a Python traceback. Most cases run the CLI in-process (fast); a
handful run the real command in a subprocess to prove the same holds end to end.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nasir.cli import main

ERRORS = Path(__file__).parent / "errors"
ROOT = Path(__file__).parents[1]
HEAD = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): error: (?P<message>.+)$")


@dataclass(frozen=True)
class Case:
    """One malformed spec, the arguments to check it with, and the diagnostic it must get."""

    file: str
    at: str | None  # "line:col" of the error, None for argument errors without a location
    message: str  # a fragment of the error message
    expected: str | None = None  # a fragment of the `expected:` line
    args: tuple[str, ...] = ()
    at_file: str | None = None  # where the error is, when not in `file` itself
    notes: tuple[str, ...] = field(default=())  # "line:col" of each `note:` location

    @property
    def id(self) -> str:
        return self.file.removesuffix(".arch")


CASES = [
    Case("syntax_missing_brace.arch", "5:1", "unexpected keyword 'network'", "'}'"),
    Case("syntax_stray_token.arch", "4:27", "unexpected ')'", "'return'"),
    Case("unknown_op.arch", "4:17", "unknown op or block 'covn' (did you mean 'conv'?)",
         "a primitive op (see `nasir ops`)"),
    Case("unknown_op_param.arch", "4:28", "conv has no parameter 'strid' "
         "(did you mean 'stride'?)", "parameters of conv: out, kernel, stride"),
    Case("float_for_int.arch", "4:28", "conv parameter 'stride': input should be a valid "
         "integer (got 1.5, float)", "conv(out, kernel"),
    Case("string_for_int.arch", "5:25", "conv parameter 'kernel': input should be a valid "
         "integer (got '3', str)", "conv(out, kernel"),
    Case("undefined_name.arch", "4:22", "undefined name 'widht' (did you mean 'width'?)",
         "a parameter, a variable assigned earlier"),
    Case("import_cycle_a.arch", "2:1", "import cycle: import_cycle_a.arch -> "
         "import_cycle_b.arch -> import_cycle_a.arch", "imports that form no cycle",
         at_file="import_cycle_b.arch"),
    Case("missing_import.arch", "2:1", "cannot find imported file 'no_such_library.arch'",
         "or a shipped spec of that name"),
    Case("add_channel_mismatch.arch", "6:12", "add needs equal shapes, but its channel counts "
         "differ: input 0 is 16x8x8, input 1 is 8x8x8", notes=("4:14", "5:14")),
    Case("concat_spatial_mismatch.arch", "6:12", "concat needs equal spatial sizes, but input "
         "0 is 8x8x8 and input 1 is 8x4x4", notes=("4:14", "5:14")),
    Case("kernel_too_large.arch", "4:17", "conv window 7x7 is larger than its padded input "
         "4x4", notes=("3:5",)),
    Case("groups_not_dividing.arch", "4:17", "groups=3 does not divide the 4 input channels",
         notes=("3:5",)),
    Case("recursive_blocks.arch", "4:17", "recursive call: a -> b -> a",
         "blocks that do not call themselves"),
    Case("repeat_not_int.arch", "6:27", "a repeat count must be a non-negative int, got 2.5 "
         "(float)", "an integer such as `* 3`"),
    Case("division_by_zero.arch", "4:22", "division by zero", "a non-zero divisor"),
    Case("index_out_of_range.arch", "6:29", "index 3 is out of range for a list of 3",
         "an index from 0 to 2"),
    Case("missing_network_return.arch", "2:9", "network 'net' has no `return`",
         "`return <tensor>`"),
    Case("block_without_return.arch", "2:7", "block 'unit' ended without `return`",
         "`return <tensor>`"),
    Case("call_network.arch", "9:17", "'backbone' is a network and cannot be called",
         "a block or cell", args=("--network", "net")),
    Case("too_many_tensor_inputs.arch", "7:12", "block 'unit' takes 1 tensor input(s), got 2",
         "inputs (x)"),
    Case("unknown_block_param.arch", "6:25", "block 'unit' has no parameter 'strid' "
         "(did you mean 'stride'?)", "one of: c, stride"),
    Case("unknown_type.arch", "2:15", "unknown type 'integer' for parameter 'c' "
         "(did you mean 'int'?)", "any, bool, float, int, list, str"),
    Case("set_unknown_param.arch", "2:9", "network 'net' has no parameter 'widht' "
         "(did you mean 'width'?)", "one of: width", args=("--set", "widht=8")),
    Case("set_wrong_type.arch", "2:9", "parameter 'width' expects int, got 'wide' (str)",
         "a value of type int", args=("--set", "width=wide")),
    Case("linear_on_feature_map.arch", "5:17", "linear expects a flat vector, got a 8x1x1 "
         "feature map (add `>> flatten` before it)", notes=("4:28",)),
    Case("slice_out_of_range.arch", "5:12", "channel slice 8:24 is empty or outside the 16 "
         "channels of its input", notes=("4:14",)),
    Case("input_too_small.arch", "4:14", "conv window 3x3 is larger than its padded input 2x2",
         args=("--input", "3x2x2"), notes=("3:5",)),
    Case("bad_input_shape.arch", None, "bad shape '3xAx32'", "positive integers such as "
         "3x224x224", args=("--input", "3xAx32")),
    Case("duplicate_definition.arch", "3:7", "'unit' is defined twice",
         "unique definition names", notes=("2:7",)),
    Case("condition_not_bool.arch", "4:12", "a condition must be true or false, got int",
         "a comparison such as `stride == 1`"),
    Case("mul_gate_mismatch.arch", "6:12", "mul needs equal shapes or a 16x1x1 gate, got "
         "16x8x8 and 8x1x1", notes=("4:14", "5:35")),
    Case("unpack_mismatch.arch", "5:20", "cannot unpack a list of 2 into 3 names",
         "a list of exactly 3 items"),
    Case("no_input.arch", "2:9", "network 'net' declares no input", "`input x: 3x224x224`"),
]
# Files that only exist to be imported by a case.
HELPERS = {"import_cycle_b.arch"}
SUBPROCESS_CASES = ["syntax_missing_brace", "import_cycle_a", "add_channel_mismatch",
                    "set_unknown_param"]


def _nasir_command() -> list[str]:
    """The installed `nasir` console script next to this interpreter, else `python -m`."""
    script = Path(sys.executable).with_name("nasir")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "nasir.cli"]


def _source_line(file: Path, line: int) -> str:
    return file.read_text(encoding="utf-8").splitlines()[line - 1]


def assert_diagnostic(case: Case, stderr: str, stdout: str = "") -> None:
    """The rendered error names the right place, shows it, and says what was expected."""
    assert "Traceback" not in stderr + stdout
    assert "internal error" not in stderr
    lines = stderr.rstrip("\n").splitlines()
    assert lines, "no diagnostic printed"
    if case.at is None:
        assert lines[0] == f"error: {case.message}"
    else:
        head = HEAD.match(lines[0])
        assert head, f"first line is not file:line:col: error: ...\n{stderr}"
        where = ERRORS / (case.at_file or case.file)
        assert Path(head["file"]).name == where.name
        assert f"{head['line']}:{head['col']}" == case.at
        folder = head["file"].rpartition("/")[0]  # paths print relative to the cwd
        assert case.message in head["message"].replace(f"{folder}/" if folder else "\0", "")
        line, col = map(int, case.at.split(":"))
        _assert_excerpt(lines[1], lines[2], where, line, col)
    expected = [ln for ln in lines if ln.startswith("expected: ")]
    if case.expected is not None:
        assert expected and case.expected in expected[0], stderr
    notes = [re.match(r"note: .+?:(\d+:\d+): ", ln) for ln in lines if ln.startswith("note: ")]
    assert [n[1] for n in notes if n] == list(case.notes), stderr


def _assert_excerpt(gutter_line: str, caret_line: str, file: Path, line: int, col: int) -> None:
    gutter = f"{line:>4} | "
    assert gutter_line == gutter + _source_line(file, line).rstrip()
    assert set(caret_line.strip()) == {"^"}
    assert caret_line.index("^") == len(gutter) + col - 1


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_malformed_spec_exits_2_with_a_located_diagnostic(case: Case, capsys) -> None:
    status = main(["check", str(ERRORS / case.file), *case.args])
    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    assert_diagnostic(case, err, out)


@pytest.mark.parametrize("case", [c for c in CASES if c.id in SUBPROCESS_CASES],
                         ids=lambda c: c.id)
def test_the_real_command_prints_the_same_diagnostic_without_a_traceback(case: Case) -> None:
    result = subprocess.run([*_nasir_command(), "check", case.file, *case.args], cwd=ERRORS,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert_diagnostic(case, result.stderr, result.stdout)


def test_the_corpus_has_two_dozen_distinct_errors_and_every_file_is_checked() -> None:
    files = {p.name for p in ERRORS.glob("*.arch")}
    assert files == {c.file for c in CASES} | HELPERS
    assert len(CASES) >= 24
    assert len({c.message for c in CASES}) == len(CASES)


def test_correcting_the_one_mistake_makes_a_corpus_file_check(tmp_path: Path, capsys) -> None:
    """The corpus isolates one mistake per file: fixing it leaves a valid spec."""
    text = (ERRORS / "add_channel_mismatch.arch").read_text().replace("conv(8, 3)", "conv(16, 3)")
    fixed = tmp_path / "fixed.arch"
    fixed.write_text(text)
    assert main(["check", str(fixed)]) == 0
    assert capsys.readouterr().out.startswith("ok: net:")


# ---- spec text never reaches eval/exec ------------------------------------------------

def builtin_eval_calls(source: str) -> list[int]:
    """Lines of `eval(...)`/`exec(...)` calls (bare or `builtins.`), not `.eval()` methods."""
    calls = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        bare = isinstance(func, ast.Name) and func.id in ("eval", "exec")
        via_builtins = (isinstance(func, ast.Attribute) and func.attr in ("eval", "exec")
                        and isinstance(func.value, ast.Name) and func.value.id == "builtins")
        if bare or via_builtins:
            calls.append(node.lineno)
    return calls


def test_the_eval_detector_finds_builtin_calls_and_ignores_module_eval() -> None:
    sample = "model.eval()\nx = eval(text)\nimport builtins\nbuiltins.exec(code)\nnet.eval\n"
    assert builtin_eval_calls(sample) == [2, 4]


def test_no_source_of_nasir_or_its_backends_calls_eval_or_exec() -> None:
    sources = [*(ROOT / "nasir").rglob("*.py"), *(ROOT / "backends").rglob("*.py")]
    assert len(sources) > 20
    offenders = {str(p.relative_to(ROOT)): lines for p in sources
                 if (lines := builtin_eval_calls(p.read_text(encoding="utf-8")))}
    assert offenders == {}
