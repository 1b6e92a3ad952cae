"""Load generated Python (what `nasir compile -o` writes, or `to_python` returns) as a
module, for tests and benchmarks that run it beside the in-memory module."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from types import ModuleType

from nasir.ir.graph import IR

_ids = itertools.count()


def import_file(path: str | Path) -> ModuleType:
    """Execute the Python file at `path` as a fresh module (not added to sys.modules)."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"{path.stem}_{next(_ids)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_generated(ir: IR, folder: str | Path, inplace: bool = True):
    """Write `to_python(ir)` into `folder`, import it and return its freshly built network."""
    from nasir.backends.python_source import to_python

    path = Path(folder) / f"nasir_generated_{next(_ids)}.py"
    path.write_text(to_python(ir, inplace=inplace), encoding="utf-8")
    return import_file(path).build()
