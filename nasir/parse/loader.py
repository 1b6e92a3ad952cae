"""Resolve `import` statements into one `Program`: every definition and constant by name.

Imports resolve relative to the importing file first, then to nasir's shipped `specs/`
folder, so `import "std.arch"` works from anywhere. Cycles and clashing names are errors
that point at the import or definition responsible.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from nasir.errors import Note, SourceLoc, SpecError
from nasir.parse import ast
from nasir.parse.parser import parse_text


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


def load_program(path: str | Path) -> Program:
    """Parse `path` and everything it imports."""
    root = Path(path)
    if not root.is_file():
        raise SpecError(f"no such spec file: {path}", expected="a path to an .arch file "
                        "or the name of a shipped spec (see `nasir list`)")
    program = Program(str(root))
    _load(root.resolve(), program, stack=[], seen=set(), via=None)
    return program


def load_text(text: str, file: str = "<string>") -> Program:
    """Parse spec text (imports resolve against the current directory)."""
    program = Program(file, files=[file])
    module = parse_text(text, file)
    _add_module(module, Path.cwd() / "__text__.arch", program, [], set())
    return program


def _read(path: Path, via: SourceLoc | None) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read {path}: {exc}", via) from None


def _load(path: Path, program: Program, stack: list[Path], seen: set[Path],
          via: SourceLoc | None) -> None:
    display = _display(path)
    module = parse_text(_read(path, via), display)
    program.files.append(display)
    _add_module(module, path, program, [*stack, path], seen)
    seen.add(path)


def _add_module(module: ast.Module, path: Path, program: Program, stack: list[Path],
                seen: set[Path]) -> None:
    for imp in module.imports:
        target = _resolve(imp, path)
        if target in stack:
            chain = " -> ".join(_display(p) for p in [*stack[stack.index(target):], target])
            raise SpecError(f"import cycle: {chain}", imp.loc,
                            expected="imports that form no cycle")
        if target not in seen:
            _load(target, program, stack, seen, imp.loc)
    for definition in module.definitions:
        _claim(program, definition.name, definition.loc)
        program.definitions[definition.name] = definition
    for alias in module.aliases:
        _claim(program, alias.name, alias.loc)
        program.aliases[alias.name] = alias
    for const in module.consts:
        _claim(program, const.name, const.loc)
        program.consts.append(const)


def _resolve(imp: ast.Import, importer: Path) -> Path:
    candidates = [importer.parent / imp.path, shipped_specs_dir() / imp.path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise SpecError(f"cannot find imported file '{imp.path}'", imp.loc,
                    expected=f"a file at {candidates[0]} or a shipped spec of that name")


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
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
