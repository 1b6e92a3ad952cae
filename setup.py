"""The package list, found on disk: everything else about the build is in pyproject.toml.

nasir's source tree maps three top-level folders into the `nasir` package (`backends/` ->
`nasir.backends`, `grammar/` -> `nasir.grammar`, `specs/` -> `nasir.specs`). setuptools'
declarative `packages.find` cannot rename folders that way, and a hand-written list silently
drops a new subpackage from wheels (issue #6: `nasir.elaborate` was missing). So every folder
under nasir/ or backends/ that holds a .py file is a package here, with or without an
__init__.py; tests/test_install.py builds a wheel and checks that none is left out.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
# import name -> folder, relative to this file
PACKAGE_DIRS = {"nasir": "nasir", "nasir.backends": "backends",
                "nasir.grammar": "grammar", "nasir.specs": "specs"}


def discover_packages(root: Path = ROOT) -> list[str]:
    """Every package to ship: the four roots, and each folder below one that holds a .py file."""
    found = set(PACKAGE_DIRS)
    for name, folder in PACKAGE_DIRS.items():
        base = root / folder
        for source in base.rglob("*.py"):
            rel = source.parent.relative_to(base)
            if "__pycache__" in rel.parts or any(not p.isidentifier() for p in rel.parts):
                continue
            found.add(".".join((name, *rel.parts)) if rel.parts else name)
    return sorted(found)


if __name__ == "__main__":
    setup(packages=discover_packages(), package_dir=PACKAGE_DIRS)
