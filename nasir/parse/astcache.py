"""Parsed specs cached by their text: a file that did not change is not parsed again.

`parse_cached(text, file)` returns what `parse_text(text, file)` returns. An entry is keyed
by the text, the file name (it is in every location) and a fingerprint of everything that
shapes the result: the grammar, the parser and AST modules' source, Python's and Lark's
versions. Any change to one of them is a different key, so a stale entry is never read.
Only successful parses are stored; a cache hit skips importing Lark and building its tables
(most of a small command's parse time). Entries live in nasir's private cache
(`nasir.cache`); the oldest are removed beyond MAX_ENTRIES.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
import sys
from functools import cache
from pathlib import Path

from nasir.cache import cache_dir, cached
from nasir.parse import ast

PREFIX = "ast-"
MAX_ENTRIES = 512


def parse_cached(text: str, file: str = "<string>") -> ast.Module:
    """`nasir.parse.parser.parse_text(text, file)`, from the cache when it holds it."""
    module, stored = cached(_entry_name(text, file), lambda: _parse(text, file), _load,
                            lambda m: pickle.dumps(m, protocol=pickle.HIGHEST_PROTOCOL))
    if stored:
        _prune()
    return module


def _parse(text: str, file: str) -> ast.Module:
    from nasir.parse.parser import parse_text  # Lark is imported only on a miss

    return parse_text(text, file)


def _load(data: bytes) -> ast.Module | None:
    module = pickle.loads(data)
    return module if isinstance(module, ast.Module) else None


def _entry_name(text: str, file: str) -> str:
    digest = hashlib.sha256(_fingerprint())
    for part in (file, text):
        encoded = part.encode("utf-8", "surrogatepass")
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    return f"{PREFIX}{digest.hexdigest()[:40]}.pickle"


@cache
def _fingerprint() -> bytes:
    """What, besides the text, decides the parse: the grammar, parser.py and ast.py as they
    are on disk, and the versions of Python and Lark."""
    here = Path(__file__).parent
    grammar = Path(importlib.util.find_spec("nasir.grammar").submodule_search_locations[0])
    lark = importlib.util.find_spec("lark")
    lark_init = Path(lark.origin).read_bytes() if lark and lark.origin else b""
    parts = [(grammar / "arch.lark").read_bytes(), (here / "parser.py").read_bytes(),
             (here / "ast.py").read_bytes(), lark_init, sys.version.encode()]
    return hashlib.sha256(b"\0".join(parts)).digest()


def _prune() -> None:
    """Keep at most MAX_ENTRIES parsed files, dropping the least recently written."""
    folder = cache_dir(create=False)
    if folder is None:
        return
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(PREFIX)
                   and e.is_file(follow_symlinks=False)]
        if len(entries) <= MAX_ENTRIES:
            return
        entries.sort(key=lambda e: e.stat(follow_symlinks=False).st_mtime)
        for entry in entries[: len(entries) - MAX_ENTRIES]:
            os.unlink(entry.path)
    except OSError:
        pass
