"""The C++ AdderNet kernels, built on first use, with the pure-PyTorch path as fallback.

``_adder_kernel.cpp`` (shipped as package data) is compiled with
``torch.utils.cpp_extension.load`` the first time an adder layer runs on a CPU float32 or
float64 tensor -- never at ``import nasir`` and never at ``pip install`` (a build-time torch
dependency would make pip download a second torch). The build is cached in torch's
extensions folder (``$TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``), or in
``$NASIR_CACHE_DIR/torch_extensions`` when that is set; torch's file lock makes concurrent
first builds safe. It needs a C++ compiler and ninja. If the build fails, nasir silently uses
the PyTorch path: :func:`adder_backend` says which one runs and :func:`extension_error` why.

``NASIR_ADDER=torch`` forces the PyTorch path; ``NASIR_ADDER=cpp`` makes a failed build an
error instead of a fallback. Tensors the kernel does not handle (CUDA, half precision) always
take the PyTorch path, which is device-agnostic.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor

__all__ = [
    "BACKENDS",
    "ENV_BACKEND",
    "adder_backend",
    "extension_error",
    "load_extension",
]

ENV_BACKEND = "NASIR_ADDER"
"""Environment variable choosing the CPU backend: ``auto`` (default), ``cpp`` or ``torch``."""

BACKENDS = ("cpp", "torch")
SOURCE = Path(__file__).with_name("_adder_kernel.cpp")
KERNEL_DTYPES = (torch.float32, torch.float64)

_log = logging.getLogger(__name__)
_lock = threading.Lock()
_state: dict[str, object] = {}


def _extension_name() -> str:
    """A module name per torch version, so a torch upgrade never loads a stale binary."""
    return "nasir_adder_torch" + re.sub(r"[^0-9A-Za-z]+", "_", torch.__version__)


def _build_directory(name: str) -> str | None:
    """``$NASIR_CACHE_DIR/torch_extensions/<name>`` when configured, else torch's default.

    The folder will hold a shared library that this process loads, so it must be private
    (`nasir.cache.private_folder`), as must the cache folder above it.
    """
    from nasir.cache import cache_dir, private_folder, turned_off

    configured = os.environ.get("NASIR_CACHE_DIR")
    if configured is None or turned_off(configured):
        return None
    root = cache_dir()
    if root is None:
        raise PermissionError(f"{configured} must be a directory owned by this user and "
                              "writable by no one else")
    folder = root / "torch_extensions" / name
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path in (folder, folder.parent):
        if not private_folder(path):
            raise PermissionError(
                f"{path} must be a directory owned by this user and writable by no one else"
            )
    return str(folder)


def _build() -> ModuleType:
    """Compile (or reuse the cached build of) the kernel; raises on any failure."""
    from torch.utils import cpp_extension

    if not SOURCE.is_file():
        raise FileNotFoundError(f"{SOURCE} is missing from the installed package")
    if not cpp_extension.is_ninja_available():
        raise RuntimeError("ninja is not installed (pip install ninja)")
    openmp = sys.platform.startswith("linux") and torch.backends.openmp.is_available()
    flags = ["-O3", "-Wno-psabi"] + (["-fopenmp"] if openmp else [])
    name = _extension_name()
    _log.info("building nasir's C++ adder kernel %s (first use only)", name)
    return cpp_extension.load(
        name=name,
        sources=[str(SOURCE)],
        extra_cflags=flags,
        extra_ldflags=["-fopenmp"] if openmp else [],
        build_directory=_build_directory(name),
        verbose=False,
    )


def load_extension() -> ModuleType | None:
    """The compiled kernel module, building it on the first call; None if it cannot be built.

    The outcome is remembered for the life of the process, so a failed build is tried once.
    """
    with _lock:
        if "module" not in _state and "error" not in _state:
            try:
                _state["module"] = _build()
            except Exception as exc:  # any build failure means "use the PyTorch path"
                message = f"{type(exc).__name__}: {exc}".strip()
                _state["error"] = message[-4000:]
                _log.info("nasir adder C++ kernel unavailable, using PyTorch: %s", message)
        module = _state.get("module")
        return module if isinstance(module, ModuleType) else None


def extension_error() -> str | None:
    """Why the C++ kernel could not be built (the tail of the build log), or None."""
    error = _state.get("error")
    return error if isinstance(error, str) else None


def _requested() -> str:
    value = os.environ.get(ENV_BACKEND, "auto").strip().lower() or "auto"
    if value not in ("auto", *BACKENDS):
        raise ValueError(f"{ENV_BACKEND}={value!r}: expected one of auto, cpp, torch")
    return value


def adder_backend(x: Tensor | None = None) -> str:
    """The backend an adder layer uses for ``x`` (default: a CPU float32 tensor).

    "cpp" when ``x`` is a CPU float32/float64 tensor and the kernel builds (building it now
    if needed), else "torch". Raises RuntimeError if ``NASIR_ADDER=cpp`` and the build failed.
    """
    requested = _requested()
    if requested == "torch":
        return "torch"
    if x is not None and (x.device.type != "cpu" or x.dtype not in KERNEL_DTYPES):
        return "torch"
    if load_extension() is None:
        if requested == "cpp":
            raise RuntimeError(
                f"{ENV_BACKEND}=cpp but nasir's C++ adder kernel could not be built: "
                f"{extension_error()}"
            )
        return "torch"
    return "cpp"
