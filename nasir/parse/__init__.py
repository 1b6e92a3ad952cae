"""Text to syntax: the Lark grammar in `grammar/`, the AST, and import resolution."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nasir.parse.loader import Program, load_program

if TYPE_CHECKING:
    from nasir.parse.parser import parse_text, parse_value


def __getattr__(name: str) -> Any:
    if name in ("parse_text", "parse_value"):  # Lark is imported only when text is parsed
        from nasir.parse import parser

        return getattr(parser, name)
    raise AttributeError(f"module 'nasir.parse' has no attribute {name!r}")


__all__ = ["Program", "load_program", "parse_text", "parse_value"]
