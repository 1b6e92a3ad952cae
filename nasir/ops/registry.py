"""The op registry: name -> `OpDef`, filled by `@register` when op modules are imported."""

from __future__ import annotations

from nasir.ops.base import OpDef

_OPS: dict[str, OpDef] = {}


def register(cls: type[OpDef]) -> type[OpDef]:
    """Class decorator: make an op available to specs under `cls.name`."""
    if cls.name in _OPS:
        raise ValueError(f"op {cls.name} registered twice")
    _OPS[cls.name] = cls()
    return cls


def get_op(name: str) -> OpDef | None:
    return _OPS.get(name)


def op_names() -> list[str]:
    return sorted(_OPS)


def unregister(name: str) -> None:
    """Remove an op (for tests and notebooks that register their own)."""
    _OPS.pop(name, None)
