"""Test helpers shared by several test files (import them: `from conftest import ...`).

Helpers for checking a spec against a reference PyTorch module are public instead:
nasir.testing.equivalence.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path


def pytest_configure() -> None:
    """Keep nasir's cache (parser tables) out of the user's home while testing: one private
    folder per test process, inherited by the CLI subprocesses."""
    os.environ.setdefault("NASIR_CACHE_DIR", tempfile.mkdtemp(prefix="nasir-test-cache-"))


def run_real_cli(*args: str, timeout: float = 120,
                 entry_point: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the real `nasir` command in a subprocess (text output captured, never raises on a
    non-zero exit). `entry_point=True` runs the installed console script when there is one,
    else it is `python -m nasir.cli`."""
    command = [sys.executable, "-m", "nasir.cli"]
    if entry_point:
        script = Path(sys.executable).with_name("nasir")
        command = [str(script)] if script.is_file() else command
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout)


def assert_refused(result: subprocess.CompletedProcess[str]) -> None:
    """The command exited 2 (a user error) without printing a Python traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def _reject_constant(name: str) -> None:
    raise AssertionError(f"not JSON: {name}")


def assert_finite_json(text: str) -> dict:
    """Parse strictly (no Infinity/NaN) and check every number is an int or finite float."""
    data = json.loads(text, parse_constant=_reject_constant)
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, float):
            assert math.isfinite(value), text[:2000]
        else:
            assert value is None or isinstance(value, (bool, int, str))
    return data


PASS_FIXTURES = Path(__file__).parent / "fixtures" / "passes"


def load_pass_fixture(name: str):
    """A fixture spec of tests/fixtures/passes (input or expected output of a pass) as IR."""
    from nasir.testing.passes import load_spec

    return load_spec(PASS_FIXTURES / name)


def op_counts(ir) -> Counter:
    """How many nodes of each op an IR holds."""
    return Counter(n.op for n in ir.nodes())
