"""Find specs: a path on disk, or the name of a network shipped in nasir's `specs/`."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from nasir.errors import SpecError, did_you_mean, shown
from nasir.parse.loader import Program, load_program, shipped_specs_dir

_NETWORK = re.compile(r"^[ \t]*network[ \t]+([A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE)


@cache
def shipped_networks() -> dict[str, Path]:
    """Every network (and network alias) defined in a shipped spec file, by name.

    A line scan, not a parse: the grammar puts `network NAME` at the start of a definition,
    and scanning keeps `nasir stats resnet20` from parsing every shipped file first.
    """
    found: dict[str, Path] = {}
    for path in sorted(shipped_specs_dir().glob("*.arch")):
        for name in _NETWORK.findall(path.read_text(encoding="utf-8")):
            found.setdefault(name, path)
    return found


def locate(spec: str | Path, network: str | None = None,
           import_paths: Sequence[str | Path] = ()) -> tuple[Program, str]:
    """The program to elaborate and the network in it that the user means.

    `spec` is a path (it ends in `.arch`, contains a `/`, or names a file that exists) or the
    name of a shipped network; `import_paths` widens where imports may come from (see
    `load_program`).
    """
    path = Path(spec)
    if path.suffix == ".arch" or "/" in str(spec) or (os.path.lexists(path)
                                                      and not path.is_dir()):
        program = load_program(path, import_paths)
        return program, network or _default_network(program, path)
    shipped = shipped_networks()
    if str(spec) not in shipped:
        raise SpecError(f"no spec file or shipped network named '{shown(str(spec))}'"
                        f"{did_you_mean(str(spec), list(shipped))}",
                        expected="an .arch path, or one of: " + ", ".join(sorted(shipped)))
    return load_program(shipped[str(spec)], import_paths), network or str(spec)


def _default_network(program: Program, path: Path) -> str:
    """The only network of the root file, or the one named like the file."""
    own = program.own_networks()
    if len(own) == 1:
        return own[0]
    if path.stem in own:
        return path.stem
    if not own:
        raise SpecError(f"{path} defines no network", expected="a `network name(...) { ... }`")
    raise SpecError(f"{path} defines several networks; choose one with --network",
                    expected="one of: " + ", ".join(own))
