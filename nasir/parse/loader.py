"""Resolve `import` statements into one `Program`: every definition and constant by name.

Imports resolve relative to the importing file first, then to nasir's shipped `specs/`
folder (so `import "std.arch"` works from anywhere), then to each directory the user widened
the search with (`import_paths=`, `--import-path DIR`, or `NASIR_IMPORT_PATH`). A spec is
untrusted: whatever an import names must, after symlinks are resolved, be a regular `.arch`
file inside the root spec's directory tree, the shipped specs or a widened directory, and no
larger than MAX_SPEC_BYTES; a file that is not a `.arch` spec is never read, so no message can
quote it. Cycles and clashing names are errors that point at the import or definition
responsible.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from nasir.errors import Note, SourceLoc, SpecError, shown
from nasir.limits import MAX_IMPORT_DEPTH, MAX_IMPORTED_FILES, MAX_SPEC_BYTES
from nasir.parse import ast
from nasir.parse.astcache import parse_cached

IMPORT_PATH_ENV = "NASIR_IMPORT_PATH"
_WIDEN = f"widen with --import-path DIR / {IMPORT_PATH_ENV}"


@dataclass
class Program:
    """All definitions reachable from one root file, in a flat namespace."""

    root: str
    definitions: dict[str, ast.Definition] = field(default_factory=dict)
    aliases: dict[str, ast.Alias] = field(default_factory=dict)
    consts: list[ast.Const] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def networks(self) -> list[str]:
        """Every network name, imported ones included: definitions, then aliases."""
        nets = [d.name for d in self.definitions.values() if d.kind == "network"]
        return nets + list(self.aliases)

    def own_networks(self) -> list[str]:
        """The networks the root file (always `files[0]`) defines, not those it imports."""
        return [name for name in self.networks()
                if (self.definitions.get(name) or self.aliases[name]).loc.file == self.files[0]]


def shipped_specs_dir() -> Path:
    return Path(str(resources.files("nasir.specs")))


@dataclass
class _Search:
    """Where imports may come from (all resolved), and what has been loaded so far."""

    root_dir: Path
    widened: list[Path]
    seen: set[Path] = field(default_factory=set)

    def allowed(self) -> list[Path]:
        return [self.root_dir, shipped_specs_dir().resolve(), *self.widened]


def import_dirs(import_paths: Sequence[str | Path] = ()) -> list[Path]:
    """The widened import directories: `import_paths`, then those in NASIR_IMPORT_PATH."""
    env = os.environ.get(IMPORT_PATH_ENV, "")
    dirs = [*import_paths, *(part for part in env.split(os.pathsep) if part)]
    return [_resolved(Path(d).expanduser(), "import directory") for d in dirs]


def _resolved(path: Path, what: str, via: SourceLoc | None = None) -> Path:
    """`path` with symlinks resolved; a symlink loop or a bad name is a SpecError."""
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):
        raise SpecError(f"cannot resolve {what} {shown(str(path))}", via,
                        expected="a path without symlink loops") from None


def load_program(path: str | Path, import_paths: Sequence[str | Path] = ()) -> Program:
    """Parse `path` and everything it imports (see the module docstring for the rules)."""
    given = Path(path)
    if not os.path.lexists(given):
        raise SpecError(f"no such spec file: {shown(str(path))}", expected="a path to an .arch "
                        "file or the name of a shipped spec (see `nasir list`)")
    root = _resolved(given, "spec file")
    if given.suffix != ".arch" or root.suffix != ".arch":
        raise SpecError(f"{shown(str(path))} is not a .arch spec", expected="a path to an .arch "
                        "file or the name of a shipped spec (see `nasir list`)")
    search = _Search(root.parent, import_dirs(import_paths))
    program = Program(str(given))
    _load(root, program, search, stack=[], via=None)
    return program


def load_text(text: str, file: str = "<string>",
              import_paths: Sequence[str | Path] = ()) -> Program:
    """Parse spec text; its imports resolve against, and stay inside, the current directory."""
    program = Program(file, files=[file])
    module = parse_cached(text, file)
    cwd = Path.cwd().resolve()
    search = _Search(cwd, import_dirs(import_paths))
    _add_module(module, cwd / "__text__.arch", program, search, [])
    return program


def read_spec(path: Path, via: SourceLoc | None = None) -> str:
    """The text of the `.arch` file at `path` (already resolved), read safely.

    Only a regular file is read (opened without blocking, so a FIFO cannot hang us), at most
    MAX_SPEC_BYTES of it; bytes that are not UTF-8, and NUL bytes, are reported by line and
    column without quoting the file.
    """
    display = _display(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise SpecError(f"cannot read {display}: {exc.strerror or exc}", via) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise SpecError(f"{display} is not a regular file", via,
                        expected="an .arch file (not a directory, device or pipe)")
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > MAX_SPEC_BYTES:
            raise _too_big(display, info.st_size, via)
        try:
            data = handle.read(MAX_SPEC_BYTES + 1)
        except OSError as exc:
            raise SpecError(f"cannot read {display}: {exc.strerror or exc}", via) from None
    if len(data) > MAX_SPEC_BYTES:
        raise _too_big(display, len(data), via)
    return _decode(data, display)


def _too_big(display: str, size: int, via: SourceLoc | None) -> SpecError:
    return SpecError(f"{display} has {size:,} bytes or more, more than the limit of "
                     f"{MAX_SPEC_BYTES:,} bytes (MAX_SPEC_BYTES)", via,
                     expected="a smaller spec: split it into files joined by `import`")


def _decode(data: bytes, display: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _position(data, exc.start)
        raise SpecError(f"invalid UTF-8 at line {line}, column {col}",
                        SourceLoc(display, line, col),
                        expected="a text file encoded as UTF-8") from None
    nul = text.find("\0")
    if nul >= 0:
        line, col = _position(data, len(text[:nul].encode("utf-8")))
        raise SpecError(f"NUL character at line {line}, column {col}: not a text file",
                        SourceLoc(display, line, col), expected="a text file encoded as UTF-8")
    return text


def _position(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of byte `offset`, lines split on "\\n"."""
    start = data.rfind(b"\n", 0, offset) + 1
    line = data.count(b"\n", 0, offset) + 1
    col = len(data[start:offset].decode("utf-8", errors="replace")) + 1
    if line == 1 and data.startswith(b"\xef\xbb\xbf"):
        col -= 1  # the byte order mark is not a column
    return line, col


def _load(path: Path, program: Program, search: _Search, stack: list[Path],
          via: SourceLoc | None) -> None:
    if len(program.files) >= MAX_IMPORTED_FILES:
        raise SpecError(f"more than {MAX_IMPORTED_FILES} files imported (MAX_IMPORTED_FILES)",
                        via, expected="fewer imported files")
    display = _display(path)
    module = parse_cached(read_spec(path, via), display)
    program.files.append(display)
    _add_module(module, path, program, search, [*stack, path])
    search.seen.add(path)


def _add_module(module: ast.Module, path: Path, program: Program, search: _Search,
                stack: list[Path]) -> None:
    for imp in module.imports:
        target = _resolve(imp, path, search)
        if target in stack:
            chain = " -> ".join(_display(p) for p in [*stack[stack.index(target):], target])
            raise SpecError(f"import cycle: {chain}", imp.loc,
                            expected="imports that form no cycle")
        if target not in search.seen:
            if len(stack) >= MAX_IMPORT_DEPTH:
                raise SpecError(f"import chain longer than {MAX_IMPORT_DEPTH} files "
                                "(MAX_IMPORT_DEPTH)", imp.loc, expected="a shorter chain of "
                                "imports: import the files from one place")
            _load(target, program, search, stack, imp.loc)
    for definition in module.definitions:
        _claim(program, definition.name, definition.loc)
        program.definitions[definition.name] = definition
    for alias in module.aliases:
        _claim(program, alias.name, alias.loc)
        program.aliases[alias.name] = alias
    for const in module.consts:
        _claim(program, const.name, const.loc)
        program.consts.append(const)


def _resolve(imp: ast.Import, importer: Path, search: _Search) -> Path:
    """The resolved file an import names, checked against the confinement rules."""
    name = shown(imp.path)
    if not imp.path or "\0" in imp.path:
        raise SpecError(f"bad import path '{name}'", imp.loc, expected="a relative .arch path")
    bases = [importer.parent, shipped_specs_dir(), *search.widened]
    for base in bases:
        candidate = base / imp.path
        if not os.path.lexists(candidate):
            continue
        target = _resolved(candidate, "import", imp.loc)
        if not any(target.is_relative_to(d) for d in search.allowed()):
            raise SpecError(f"import '{name}' resolves to {shown(str(target))}, outside the "
                            f"spec's directory {shown(str(search.root_dir))}", imp.loc,
                            expected=f"a file under {shown(str(search.root_dir))}, a shipped "
                            f"spec, or {_WIDEN}")
        if target.suffix != ".arch":
            raise SpecError(f"import '{name}' resolves to {shown(str(target))}, which is not "
                            "a .arch spec", imp.loc, expected="an .arch file")
        return target
    raise SpecError(f"cannot find imported file '{name}'", imp.loc,
                    expected=f"a file at {shown(str(bases[0] / imp.path))} or a shipped spec of "
                    f"that name ({_WIDEN})")


def _claim(program: Program, name: str, loc: SourceLoc) -> None:
    previous = _find(program, name)
    if previous is not None:
        raise SpecError(f"'{name}' is defined twice", loc, expected="unique definition names",
                        notes=[Note("first defined here", previous)])


def _find(program: Program, name: str) -> SourceLoc | None:
    if name in program.definitions:
        return program.definitions[name].loc
    if name in program.aliases:
        return program.aliases[name].loc
    for const in program.consts:
        if const.name == name:
            return const.loc
    return None


def _display(path: Path) -> str:
    try:
        return shown(str(path.relative_to(Path.cwd())), limit=1000)
    except ValueError:
        return shown(str(path), limit=1000)
