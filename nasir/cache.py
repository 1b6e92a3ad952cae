"""nasir's private cache folder, for derived data that is slow to rebuild (parser tables).

The folder is `$NASIR_CACHE_DIR`, else `$XDG_CACHE_HOME/nasir`, else `~/.cache/nasir`;
`NASIR_CACHE_DIR=off` turns caching off. Entries may be pickles, so the cache is used only
where no one else can write: the folder must be a real directory (not a symlink) owned by
the user and writable by no one else, and each file is opened without following links and
must be a regular file owned by the user. Anything else, or any I/O error, means "no
cache": the caller rebuilds, and nasir works the same, only slower. Entries are written
atomically (`nasir.files.write_atomic`), so concurrent runs never read a partial file.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_OFF = {"off", "0", "no", "false", ""}


def cache_dir(create: bool = True) -> Path | None:
    """The cache folder, created (mode 0700) if missing, or None where it is not safe."""
    configured = os.environ.get("NASIR_CACHE_DIR")
    if configured is not None:
        if turned_off(configured):
            return None
        folder = Path(configured)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                  ".cache")
        folder = Path(base) / "nasir"
    if create:
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError:
            return None
    return folder if private_folder(folder) else None


def turned_off(value: str) -> bool:
    """Whether a NASIR_CACHE_DIR value means "no cache" (off, 0, no, false or empty)."""
    return value.strip().lower() in _OFF


def private_folder(path: Path) -> bool:
    """A real directory (not a link) owned by this user that no one else can write to."""
    return _private(path, directory=True)


def read_entry(name: str) -> bytes | None:
    """The bytes of cache entry `name`, or None if missing or not safe to trust."""
    folder = cache_dir(create=False)
    if folder is None:
        return None
    try:
        fd = os.open(folder / name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or not _owned(info):
            return None
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    except OSError:
        return None
    finally:
        os.close(fd)


def write_entry(name: str, data: bytes) -> bool:
    """Store `data` as entry `name`; False (and nothing written) where that is not possible."""
    from nasir.errors import SpecError
    from nasir.files import write_atomic

    folder = cache_dir()
    if folder is None:
        return False
    try:
        write_atomic(folder / name, data, force=True)
    except SpecError:
        return False
    return True


def cached(name: str, build: Callable[[], T], load: Callable[[bytes], T | None],
           dump: Callable[[T], bytes]) -> tuple[T, bool]:
    """(the value of entry `name`, whether it was just stored).

    `load` turns a stored entry back into the value (None, or any exception, means the entry
    cannot be used); otherwise the value is `build()`, and `dump(value)` is stored. A value
    `dump` cannot serialise (a RecursionError, say) is returned without being stored.
    """
    data = read_entry(name)
    if data is not None:
        try:
            value = load(data)
        except Exception:  # damaged, stale, or too deep to read back: rebuild and replace it
            value = None
        if value is not None:
            return value, False
    value = build()
    try:
        data = dump(value)
    except RecursionError:
        return value, False
    return value, write_entry(name, data)


def _private(path: Path, directory: bool) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    kind_ok = stat.S_ISDIR(info.st_mode) if directory else stat.S_ISREG(info.st_mode)
    return kind_ok and _owned(info) and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _owned(info: os.stat_result) -> bool:
    getuid = getattr(os, "getuid", None)
    return getuid is None or info.st_uid == getuid()
