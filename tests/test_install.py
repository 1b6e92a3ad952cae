"""The built distribution holds every package, grammar and spec: a normal `pip install .`
must work, not only the editable install the tests otherwise run against (issue #6: a
hand-written package list left `nasir.elaborate` out of the wheel).

One wheel is built, without a virtualenv, from a copy of the source tree into which a new
subpackage of nasir/, one of backends/ (without an __init__.py) and a spec subfolder are
planted: all must ship without anyone editing a list. .ci/run installs a wheel into a clean
virtualenv and runs the command line from outside the repository.
"""

from __future__ import annotations

import runpy
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# source folder -> where it installs; the file kinds each one ships
LAYOUT = {"nasir": "nasir", "backends": "nasir/backends", "grammar": "nasir/grammar",
          "specs": "nasir/specs"}
SHIPPED_SUFFIXES = {".py", ".lark", ".arch", ".cpp"}
PLANTED = {"nasir/train/__init__.py": "", "nasir/train/loop.py": "STEPS = 1\n",
           "backends/onnx/export.py": "FORMAT = 'onnx'\n",
           "specs/extra/tiny.arch": "# a spec in a subfolder\n"}


def expected_files(tree: Path) -> set[str]:
    """What the wheel must hold under nasir/, found by walking the source folders."""
    found = set()
    for folder, installed in LAYOUT.items():
        for path in (tree / folder).rglob("*"):
            rel = path.relative_to(tree / folder)
            if path.is_file() and path.suffix in SHIPPED_SUFFIXES and \
                    "__pycache__" not in rel.parts and \
                    not (folder == "nasir" and rel.parts[0] in LAYOUT):
                found.add(f"{installed}/{rel.as_posix()}")
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, zipfile.ZipFile]:
    """A wheel built from a clean copy of the tree (in-tree builds reuse a stale build/)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for folder in LAYOUT:
        shutil.copytree(ROOT / folder, source / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for rel, text in PLANTED.items():
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_text(text)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
                             "--no-build-isolation", "-q", "-w", str(tmp / "dist")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (built,) = (tmp / "dist").glob("nasir-*.whl")
    with zipfile.ZipFile(built) as archive:
        yield source, archive


def test_the_wheel_holds_every_module_grammar_and_spec_and_nothing_else(wheel) -> None:
    source, archive = wheel
    shipped = {n for n in archive.namelist() if not n.split("/")[0].endswith(".dist-info")}
    expected = expected_files(source)
    assert "nasir/elaborate/__init__.py" in expected  # the package the old list left out
    assert sorted(expected - shipped) == []  # missing from the wheel
    assert sorted(shipped - expected) == []  # in the wheel without a source file


def test_new_subpackages_and_spec_folders_ship_without_editing_a_list(wheel) -> None:
    _, archive = wheel
    names = set(archive.namelist())
    assert {"nasir/train/__init__.py", "nasir/train/loop.py", "nasir/backends/onnx/export.py",
            "nasir/specs/extra/tiny.arch"} <= names


def test_the_wheel_declares_the_command_and_numpy(wheel) -> None:
    _, archive = wheel
    (meta_name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
    metadata = Parser().parsestr(archive.read(meta_name).decode())
    requires = [r.split(">")[0].split("=")[0].split("<")[0].strip()
                for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r]
    assert {"torch", "numpy", "lark", "networkx", "pydantic", "graphviz"} <= set(requires)
    entry_points = next(n for n in archive.namelist() if n.endswith("entry_points.txt"))
    assert "nasir = nasir.cli:main" in archive.read(entry_points).decode()


def test_setup_py_finds_every_folder_with_python_files() -> None:
    """The discovery rule itself, on the real tree: a package per folder holding a .py."""
    setup_py = runpy.run_path(str(ROOT / "setup.py"), run_name="not_main")  # setup() not run
    packages = set(setup_py["discover_packages"](ROOT))
    on_disk = {(Path(LAYOUT[folder]) / path.parent.relative_to(ROOT / folder)).as_posix()
               .replace("/", ".")
               for folder in ("nasir", "backends") for path in (ROOT / folder).rglob("*.py")
               if "__pycache__" not in path.parts}
    assert on_disk <= packages
    assert {"nasir.elaborate", "nasir.backends", "nasir.grammar", "nasir.specs"} <= packages
