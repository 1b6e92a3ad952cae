"""Text to syntax: the Lark grammar in `grammar/`, the AST, and import resolution."""

from nasir.parse.loader import Program, load_program
from nasir.parse.parser import parse_text, parse_value

__all__ = ["Program", "load_program", "parse_text", "parse_value"]
