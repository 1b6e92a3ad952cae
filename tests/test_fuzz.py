"""Fuzzing the promise: bad input ends in a clear located error, exit 2, in bounded time.

README and docs/language.md promise that any spec, however broken or hostile, gets "a clear
located error, exit 2, in bounded time and memory; nothing executed; nothing read or
written that was not asked", and that no code path reports "internal error" for user
input. Two kinds of input keep that promise checked on every change:

- grammar-aware mutations of the shipped specs (`nasir.testing.fuzz.mutated_specs`), run
  through `nasir check` and, when they still check, `stats --json` and `print` (whose
  output must check again and count the same);
- the resource cases, one explicit example each: huge loops (empty bodies too), lists,
  strings, integers and floats, deep nesting of every construct, long import chains,
  recursion, oversized files and long `--set` expressions. Each must fail with a located
  error naming its limit.

Everything runs in-process (`nasir.cli.main`) under a watchdog: an input that hangs fails
its test with a message after WATCHDOG_S seconds instead of stalling CI (a bound on
correctness, not a timing assertion). The examples are derandomized, so CI is
reproducible; NASIR_FUZZ_EXAMPLES=2000 runs a longer campaign locally.
"""

from __future__ import annotations

import difflib
import faulthandler
import io
import os
import re
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from conftest import assert_finite_json
from hypothesis import HealthCheck, event, given, settings

from nasir import limits
from nasir.cli import main
from nasir.testing.fuzz import mutated_specs, shipped_sources

WATCHDOG_S = 30
MEMORY_CAP = 2 << 30  # bytes a resource case may add to the test process's address space
FUZZ = settings(max_examples=int(os.environ.get("NASIR_FUZZ_EXAMPLES", "150")), deadline=None,
                derandomize=True, database=None, suppress_health_check=list(HealthCheck))
LOCATED = re.compile(r"^\S.*?:\d+:\d+: error: \S")  # file:line:col: error: message
UNLOCATED = re.compile(r"^error: \S")  # only for errors in command-line arguments
ROUNDTRIP_MAX_BYTES = 256 * 1024  # re-check printed text up to this size (parser ~100 KB/s)
RUN_MAX_PARAMS, RUN_MAX_ACTIVATIONS = 1_000_000, 2_000_000  # run small mutants in torch
FIRST_NETWORK = re.compile(r"^network[ \t]+([A-Za-z_]\w*)", re.MULTILINE)


class Hang(BaseException):
    """Raised by the watchdog; a BaseException so that no `except Exception` swallows it."""


@contextmanager
def watchdog(what: str, seconds: int = WATCHDOG_S) -> Iterator[None]:
    """Fail after `seconds` with a message; as a last resort (a hang inside C code that
    ignores the signal), dump every thread's stack and exit the test process."""
    def fire(signum, frame) -> None:
        raise Hang(f"{what} still running after {seconds} s")

    if not hasattr(signal, "SIGALRM"):  # not on Windows: no watchdog there
        yield
        return
    previous = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    faulthandler.dump_traceback_later(3 * seconds, exit=True)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        faulthandler.cancel_dump_traceback_later()


@contextmanager
def memory_cap(extra: int = MEMORY_CAP) -> Iterator[None]:
    """Cap this process's address space at its current size + `extra` (Linux), so a case
    that would exhaust memory fails with MemoryError (an internal error) instead."""
    try:
        import resource

        size = int(re.search(r"VmSize:\s+(\d+) kB", Path("/proc/self/status").read_text())
                   .group(1)) * 1024
    except (ImportError, OSError, AttributeError):
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = size + extra if hard == resource.RLIM_INFINITY else min(size + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def nasir(*args: str) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with watchdog("nasir " + " ".join(a[:80] for a in args)), redirect_stdout(out), \
                redirect_stderr(err):
            try:
                status = main(list(args))
            except SystemExit as exit_:  # argparse
                status = exit_.code if isinstance(exit_.code, int) else 2
    except Hang as hang:
        pytest.fail(str(hang))
    return status, out.getvalue(), err.getvalue()


def assert_clean(status: int, out: str, err: str, context: str = "", located: bool = True,
                 files: tuple[Path, ...] = ()) -> None:
    """Exit 0, or exit 2 with a compiler-style message; never a traceback or internal error.

    The message starts `file:line:col: error:`; a whole-file error (too large, unreadable)
    may instead start `error:` and name one of `files`; `located=False` allows a bare
    `error:` head, for mistakes in command-line arguments.
    """
    where = f"\n{context}\n--- stderr ---\n{err[:2000]}"
    assert "Traceback" not in err and "internal error" not in err, where
    assert status in (0, 2), f"exit status {status}" + where
    if status == 2:
        first = err.partition("\n")[0]
        whole_file = UNLOCATED.match(first) and any(str(f) in first for f in files)
        assert LOCATED.match(first) or whole_file or (not located and UNLOCATED.match(first)), \
            "no located `file:line:col: error:` head" + where
        assert out == "", "an error must not print a result" + where


def _diff(name: str, data: bytes) -> str:
    """What the mutations changed, as a short unified diff (the failure's repro)."""
    new = data.decode("utf-8", errors="backslashreplace").splitlines()
    old = shipped_sources()[name].splitlines()
    lines = list(difflib.unified_diff(old, new, "shipped/" + name, "mutant", n=1, lineterm=""))
    shown = [line[:300] for line in lines[:40]]
    return "\n".join(shown) + ("\n..." if len(lines) > 40 else "")


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# ---- grammar-aware mutations of the shipped specs --------------------------------------

@FUZZ
@given(spec=mutated_specs())
def test_a_mutated_shipped_spec_checks_or_fails_with_a_located_error(spec) -> None:
    name, data = spec
    network = FIRST_NETWORK.search(shipped_sources()[name])
    stem = network.group(1) if network else Path(name).stem
    context = _diff(name, data)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = root / f"{stem}.arch"  # named after a network, so `check FILE` can pick it
        path.write_bytes(data)
        cwd = os.getcwd()
        os.chdir(root)
        try:
            status, out, err = nasir("check", str(path))
            event(f"check exit status {status}")
            assert_clean(status, out, err, context, located=not _argument_error(err),
                         files=(path,))
            if status == 0:
                _check_the_rest(root, path, context)
        finally:
            os.chdir(cwd)
        assert _files(root) <= {path.name, "printed.arch"}, "nasir wrote files it was not asked to"


def _argument_error(err: str) -> bool:
    """A mutant that no longer names one network: `check FILE` needs --network (an argument)."""
    return "--network" in err.splitlines()[0] if err else False


def _check_the_rest(root: Path, path: Path, context: str) -> None:
    """A mutant that checks must also count, print, and re-check from its printed text;
    small ones must also build a torch module whose output has the checked shape."""
    status, out, err = nasir("stats", str(path), "--json")
    assert status == 0 and err == "", context + "\n" + err
    counted = assert_finite_json(out)
    status, printed, err = nasir("print", str(path))
    assert status == 0 and err == "", context + "\n" + err
    if len(printed.encode("utf-8")) <= ROUNDTRIP_MAX_BYTES:
        again = root / "printed.arch"
        again.write_text(printed, encoding="utf-8")
        status, out, err = nasir("stats", str(again), "--json")
        assert status == 0, f"{context}\nprinted text does not check:\n{err}\n{printed[:3000]}"
        recounted = assert_finite_json(out)
        for column in ("params", "macs", "muls", "adds", "activations"):
            assert recounted[column] == counted[column], f"{context}\nprinted text counts differ"
    if counted["params"] <= RUN_MAX_PARAMS and counted["activations"] <= RUN_MAX_ACTIVATIONS:
        event("ran in torch")
        _run_in_torch(path, context)


def _run_in_torch(path: Path, context: str) -> None:
    import torch

    import nasir as api
    from nasir.errors import SpecError

    ir = api.load(str(path))
    try:
        with watchdog(f"compiling and running {path.name}"), torch.no_grad():
            model = api.compile(ir).eval()
            result = model(*(torch.zeros(1, *ir.node(i).shape) for i in ir.inputs))
    except SpecError:
        return  # a backend may refuse cleanly
    except Hang as hang:
        pytest.fail(f"{hang}\n{context}")
    except Exception as exc:  # any other exception is the bug we look for
        pytest.fail(f"a checked spec fails in torch: {type(exc).__name__}: {exc}\n{context}")
    assert tuple(result.shape) == (1, *ir.node(ir.output).shape), context


# ---- resource cases --------------------------------------------------------------------

def net(*body: str, head: str = "") -> str:
    """A one-network spec whose body runs `body` between an input and a return."""
    lines = "\n".join("    " + line for line in body)
    return f"{head}\nnetwork main() {{\n    input x: 3x8x8\n{lines}\n    return x\n}}\n"


DEEP = 20_000  # far beyond MAX_NESTING and Python's recursion limit
CHAIN = 300  # files in an import chain, blocks in a call chain

RESOURCE_CASES: dict[str, dict[str, str]] = {
    # loops and steps
    "huge range, empty body": {"main.arch": net("for i in range(1000000000) { }")},
    "nested loops, empty bodies": {"main.arch": net(
        "for i in range(1000000) { for j in range(1000000) { } }")},
    "nested loops product": {"main.arch": net(
        "for i in range(100000) { for j in range(100000) { n = i * j } }")},
    "range near 2**63": {"main.arch": net("for i in range(9223372036854775807) { }")},
    # list and string sizes
    "list doubling": {"main.arch": net("l = [1]", "for i in range(64) { l = l + l }")},
    "list nesting doubling": {"main.arch": net("l = [1]", "for i in range(200) { l = [l, l] }")},
    "list repetition": {"main.arch": net("l = [0] * 1000000000")},
    "string doubling": {"main.arch": net('s = "ab"', "for i in range(64) { s = s + s }")},
    "string repetition": {"main.arch": net('s = "ab" * 1000000000')},
    # integers and floats
    "integer power": {"main.arch": net("n = 2 ** 100000")},
    "integer power tower": {"main.arch": net("n = 2 ** 2 ** 2 ** 2 ** 2 ** 2")},
    "integer squaring loop": {"main.arch": net("n = 3", "for i in range(100) { n = n * n }")},
    "integer of 5000 digits": {"main.arch": net("n = " + "9" * 5000)},
    "integer of 100000 digits": {"main.arch": net("n = " + "1" * 100_000)},
    "integer 2**63 as a width": {"main.arch": net(f"y = x >> conv({2**63}, 3)")},
    "float literal overflow": {"main.arch": net("y = x >> conv(int(1e999), 3)")},
    "float arithmetic overflow": {"main.arch": net("f = 1e308 * 10.0", "y = x >> conv(int(f), 3)")},
    "float nan": {"main.arch": net("f = 1e999 - 1e999", "y = x >> dropout(f)")},
    # graph size
    "node count": {"main.arch": net("for i in range(1000000) { x = x >> relu }")},
    "huge repeat": {"main.arch": net("y = x >> relu * 1000000000")},
    # syntactic nesting
    "deep parentheses": {"main.arch": net("n = " + "(" * DEEP + "1" + ")" * DEEP)},
    "deep lists": {"main.arch": net("n = " + "[" * DEEP + "]" * DEEP)},
    "deep unary minus": {"main.arch": net("n = " + "-" * DEEP + "1")},
    "deep not": {"main.arch": net("b = " + "not " * DEEP + "true")},
    "long power chain": {"main.arch": net("n = " + " ** ".join(["1"] * DEEP))},
    "long index chain": {"main.arch": net("n = [1]" + "[0]" * DEEP)},
    "deep conditional expression": {"main.arch": net(
        "n = " + "if true then " * DEEP + "1" + " else 1" * DEEP)},
    "deep ifs": {"main.arch": net("if true { " * DEEP + "}" * DEEP)},
    "deep scopes": {"main.arch": net("scope s { " * DEEP + "}" * DEEP)},
    "deep fors": {"main.arch": net("for i in [1] { " * DEEP + "}" * DEEP)},
    # calls and imports
    "block recursion": {"main.arch": net(
        "y = x >> f", head="block f(x) {\n    return x >> f\n}")},
    "mutual recursion": {"main.arch": net("y = x >> a", head=(
        "block a(x) {\n    return x >> b\n}\nblock b(x) {\n    return x >> a\n}"))},
    "long block call chain": {"main.arch": net("y = x >> b0", head="\n".join(
        f"block b{i}(x) {{\n    return x >> b{i + 1}\n}}" for i in range(CHAIN))
        + f"\nblock b{CHAIN}(x) {{\n    return x\n}}")},
    "long import chain": {"main.arch": net(head='import "m0.arch"'), **{
        f"m{i}.arch": f'import "m{i + 1}.arch"\n' for i in range(CHAIN)},
        f"m{CHAIN}.arch": "let k = 1\n"},
    "many imports": {"main.arch": net(head="\n".join(
        f'import "f{i}.arch"' for i in range(1000))),
        **{f"f{i}.arch": f"let k{i} = 1\n" for i in range(1000)}},
    "import cycle": {"main.arch": net(head='import "a.arch"'), "a.arch": 'import "b.arch"\n',
                     "b.arch": 'import "a.arch"\n'},
    "import of /dev/zero": {"main.arch": net(head='import "/dev/zero"')},
    "import of a directory": {"main.arch": net(head='import "sub"'), "sub/x.arch": ""},
    "spec larger than the limit": {"main.arch": net() + ("# padding\n" * 600_000)},
}

# Cases in command-line arguments: (arguments after `check main.arch`, whether located).
SET_CASES: dict[str, list[str]] = {
    "deep --set parentheses": ["--set", "w=" + "(" * DEEP + "1" + ")" * DEEP],
    "deep --set list": ["--set", "w=" + "[" * DEEP + "]" * DEEP],
    "huge --set integer": ["--set", "w=" + "7" * 5000],
    "--set integer power": ["--set", "w=2 ** 2 ** 2 ** 2 ** 2 ** 2"],
    "--set float overflow": ["--set", "w=1e999"],
    "--set long string": ["--set", 'w="' + "a" * 2_000_000 + '"'],
}
WITH_PARAM = "network main(w: any = 1) {\n    input x: 3x8x8\n    return x\n}\n"
LIMIT_NAME = re.compile(r"\bMAX_[A-Z_]+\b")
NOT_A_LIMIT = {"float literal overflow", "float arithmetic overflow", "float nan",
               "block recursion", "mutual recursion", "import cycle", "import of a directory",
               "import of /dev/zero", "integer 2**63 as a width", "--set float overflow",
               "range near 2**63", "list repetition", "string repetition"}


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root / "main.arch"


@pytest.mark.parametrize("case", list(RESOURCE_CASES))
def test_a_resource_case_fails_with_a_located_error(case: str, tmp_path: Path) -> None:
    main_spec = _write(tmp_path, RESOURCE_CASES[case])
    before = _files(tmp_path)
    with memory_cap():
        status, out, err = nasir("check", str(main_spec))
    assert status == 2, f"{case}: expected exit 2, got {status}\n{out[:500]}{err[:2000]}"
    assert_clean(status, out, err, case, files=tuple(tmp_path.rglob("*.arch")))
    if case not in NOT_A_LIMIT:
        assert LIMIT_NAME.search(err), f"{case}: the error must name its limit\n{err[:2000]}"
    assert _files(tmp_path) == before


@pytest.mark.parametrize("case", list(SET_CASES))
def test_a_hostile_set_expression_fails_with_a_clear_error(case: str, tmp_path: Path) -> None:
    main_spec = _write(tmp_path, {"main.arch": WITH_PARAM})
    with memory_cap():
        status, out, err = nasir("check", str(main_spec), *SET_CASES[case])
    assert status == 2, f"{case}: expected exit 2, got {status}\n{out[:500]}{err[:2000]}"
    assert_clean(status, out, err, case, located=False)  # `--set w:1:5:` or a bare `error:`
    if case not in NOT_A_LIMIT:
        assert LIMIT_NAME.search(err), f"{case}: the error must name its limit\n{err[:2000]}"


@pytest.mark.parametrize("args", [["--input", "3x99999999999999999999x2"],
                                  ["--input", "0x8x8"], ["--input", "3x" + "9" * 5000],
                                  ["--network", "x" * 10_000], ["--network", "main/../../etc"]])
def test_hostile_arguments_fail_with_an_error_head(args: list[str], tmp_path: Path) -> None:
    main_spec = _write(tmp_path, {"main.arch": WITH_PARAM})
    status, out, err = nasir("check", str(main_spec), *args)
    assert status == 2
    assert_clean(status, out, err, " ".join(a[:40] for a in args), located=False)


@pytest.mark.parametrize("text", [
    net("y = x >> conv(1000000000, 3)"),  # static counting never allocates
    "network main() {\n    input x: 3x100000x100000\n    return x >> conv(8, 3)\n}\n",
    net("for i in range(1000) { for j in range(1000) { } }"),  # 1e6 steps: within limits
    net("n = " + " + ".join(["1"] * DEEP)),  # long flat chains need no deep recursion
    net("y = x" + " >> relu" * DEEP),
    # the largest spec accepted, in dense statements: it must still parse in bounded time
    "let k = 1\n" * (limits.MAX_SPEC_BYTES // 10 - 10) + net(),
], ids=["wide conv", "huge input", "a million steps", "long sum", "long pipe",
        "MAX_SPEC_BYTES of statements"])
def test_big_but_legal_specs_count_in_bounded_time(text: str, tmp_path: Path) -> None:
    main_spec = _write(tmp_path, {"main.arch": text})
    with memory_cap():
        status, out, err = nasir("stats", str(main_spec), "--json")
    assert_clean(status, out, err, text[:200])
    if status == 0:
        assert_finite_json(out)
