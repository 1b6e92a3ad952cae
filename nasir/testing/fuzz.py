"""Hypothesis strategies that damage .arch specs, to check a front end fails cleanly.

A spec is untrusted input, so every way of damaging a valid one must still end in a clear
located error (or, if the damage happens to be harmless, a valid network). These
strategies start from real specs (nasir's shipped `specs/` by default) and apply a few
grammar-aware mutations, so that most mutants get past the lexer and reach the parser,
the loader, the elaborator and the shape rules instead of dying at the first character:

- `tokenize(text)`: split .arch text into tokens (names, numbers, strings, comments,
  punctuation, newlines, blanks) that join back to exactly `text`.
- `mutations()`: one mutation, a function from a token list to a token list: delete,
  duplicate or swap tokens; replace a number by a hostile one (0, -1, 2**63, 10**30, a
  5,000-digit integer, 1e999, ...); replace a name by an .arch keyword, a Python keyword
  or builtin, a digit string or an op name; replace a string by a hostile path; insert an
  opening bracket; insert a form feed, U+2028, \\r\\n, a BOM or a NUL; repeat a line, or
  splice in a line of another shipped spec; truncate.
- `mutated_specs(sources)`: `(name, data)` pairs: the bytes of one source after 1-3
  mutations, sometimes with invalid UTF-8 bytes spliced in (write them to a file and run
  `nasir check` on it).

    from hypothesis import given
    from nasir.testing.fuzz import mutated_specs

    @given(mutated_specs())
    def test_my_loader_fails_cleanly(spec):
        name, data = spec
        ...  # write `data` to tmp/name, load it, expect success or SpecError
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path

from hypothesis import strategies as st

Tokens = list[str]
Mutation = Callable[[Tokens], Tokens]

_TOKEN = re.compile(r'''
    "(?:[^"\\\n]|\\.)*"                                  # string
  | \#[^\n]*                                             # comment
  | \d+(?:x\d+)+                                         # shape 3x224x224
  | (?:\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)? | \d+[eE][-+]?\d+ # float
  | \d+                                                  # int
  | [A-Za-z_]\w*                                         # name or keyword
  | >> | \*\* | // | == | != | <= | >=                   # two-character operators
  | \r?\n | [ \t\f]+                                     # newlines, blanks
  | .                                                    # any other character
''', re.VERBOSE | re.DOTALL)

ARCH_KEYWORDS = ("block", "cell", "network", "import", "let", "return", "for", "in", "if",
                 "then", "elif", "else", "scope", "input", "as", "and", "or", "not", "true",
                 "false")
HOSTILE_NUMBERS = ("0", "-1", "00", "2", "1000000000000000000000000000000",
                   str(2**63), str(2**63 - 1), str(2**64), "9" * 5000, "1e999", "-1e999",
                   "0.0", "1e-320", "0.5", "1e308", "99999999999", "10**30", "2**62",
                   "2 ** 2 ** 2 ** 2 ** 2")
HOSTILE_NAMES = (*ARCH_KEYWORDS, *sorted(keyword.kwlist)[:8], "None", "__import__", "eval",
                 "exec", "open", "__class__", "__builtins__", "self", "0", "123", "conv",
                 "bn", "relu", "concat", "split", "add", "input", "range", "len", "str",
                 "classifier", "x", "y")
HOSTILE_STRINGS = ('""', '"/dev/zero"', '"/dev/null"', '"/etc/passwd"', '"../../etc/passwd"',
                   '"."', '"specs"', '"std.arch"', '"nasnet.arch"', '"\\x00"', '"a/b"',
                   '"' + "a" * 10000 + '"', '"\\"', '"{{}}"', '"\u00e9\u2028"')
INSERTIONS = ("(", "[", "{", ")", "]", "}", ">>", "*", ",", ":", "=", "\f", "\u2028",
              "\u0085", "\r\n", "\r", "\ufeff", "\x00", "\t", "\\", "'", "\"", "#",
              "\u00e9", "\U0001f600")
INVALID_UTF8 = (b"\xff", b"\xfe\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf")


def tokenize(text: str) -> Tokens:
    """The tokens of `text`, rough but lossless: `"".join(tokenize(t)) == t`."""
    return _TOKEN.findall(text)


def _is_number(tok: str) -> bool:
    return bool(tok) and (tok[0].isdigit() or (tok[0] == "." and tok[1:2].isdigit()))


def _is_name(tok: str) -> bool:
    return bool(tok) and (tok[0].isalpha() or tok[0] == "_")


def _solid(tok: str) -> bool:
    """A token that matters to the parser: not a blank, not a comment."""
    return not tok.isspace() and not tok.startswith("#")


def _at(kind: Callable[[str], bool], tokens: Tokens, index: int) -> int | None:
    """The index of the `index`-th token (modulo their count) that is of `kind`, if any."""
    hits = [i for i, t in enumerate(tokens) if kind(t)]
    return hits[index % len(hits)] if hits else None


def _replace(kind: Callable[[str], bool], index: int, new: str) -> Mutation:
    def mutate(tokens: Tokens) -> Tokens:
        i = _at(kind, tokens, index)
        return tokens if i is None else [*tokens[:i], new, *tokens[i + 1:]]

    return mutate


def _delete(index: int) -> Mutation:
    def mutate(tokens: Tokens) -> Tokens:
        i = _at(_solid, tokens, index)
        return tokens if i is None else tokens[:i] + tokens[i + 1:]

    return mutate


def _duplicate(index: int, times: int) -> Mutation:
    def mutate(tokens: Tokens) -> Tokens:
        i = _at(_solid, tokens, index)
        return tokens if i is None else [*tokens[:i], *[tokens[i]] * times, *tokens[i:]]

    return mutate


def _swap(first: int, second: int) -> Mutation:
    def mutate(tokens: Tokens) -> Tokens:
        i, j = _at(_solid, tokens, first), _at(_solid, tokens, second)
        if i is None or j is None:
            return tokens
        out = list(tokens)
        out[i], out[j] = out[j], out[i]
        return out

    return mutate


def _insert(index: int, text: str) -> Mutation:
    def mutate(tokens: Tokens) -> Tokens:
        i = index % (len(tokens) + 1)
        return [*tokens[:i], text, *tokens[i:]]

    return mutate


def _duplicate_line(index: int, times: int) -> Mutation:
    """Repeat one statement line, e.g. to make a body define or pipe something many times."""
    def mutate(tokens: Tokens) -> Tokens:
        lines = "".join(tokens).splitlines(keepends=True)
        if not lines:
            return tokens
        i = index % len(lines)
        return tokenize("".join([*lines[:i], *[lines[i]] * times, *lines[i + 1:]]))

    return mutate


def _insert_line(index: int, line: str) -> Mutation:
    """Splice a line (from any shipped spec) in between two lines of this one."""
    def mutate(tokens: Tokens) -> Tokens:
        lines = "".join(tokens).splitlines(keepends=True)
        i = index % (len(lines) + 1)
        return tokenize("".join([*lines[:i], line + "\n", *lines[i:]]))

    return mutate


def _truncate(fraction: float) -> Mutation:
    def mutate(tokens: Tokens) -> Tokens:
        text = "".join(tokens)
        return [text[:int(len(text) * fraction)]]

    return mutate


def mutations() -> st.SearchStrategy[Mutation]:
    """One grammar-aware mutation of a token list."""
    index = st.integers(0, 10_000)
    return st.one_of(
        st.builds(_delete, index),
        st.builds(_duplicate, index, st.sampled_from([1, 2, 50])),
        st.builds(_swap, index, index),
        st.builds(_replace, st.just(_is_number), index, st.sampled_from(HOSTILE_NUMBERS)),
        st.builds(_replace, st.just(_is_name), index, st.sampled_from(HOSTILE_NAMES)),
        st.builds(_replace, st.just(lambda t: t.startswith('"')), index,
                  st.sampled_from(HOSTILE_STRINGS)),
        st.builds(_insert, index, st.sampled_from(INSERTIONS)),
        st.builds(_duplicate_line, index, st.sampled_from([2, 3, 200])),
        st.builds(_insert_line, index, st.sampled_from(_code_lines())),
        st.builds(_truncate, st.floats(0.0, 1.0)),
    )


@cache
def _code_lines() -> tuple[str, ...]:
    """Every distinct non-comment line of the shipped specs."""
    lines = {line for text in shipped_sources().values() for line in text.splitlines()
             if line.strip() and not line.lstrip().startswith("#")}
    return tuple(sorted(lines))


@cache
def shipped_sources() -> dict[str, str]:
    """The text of every shipped spec, by file name."""
    from nasir.parse.loader import shipped_specs_dir

    return {p.name: p.read_text(encoding="utf-8")
            for p in sorted(Path(shipped_specs_dir()).glob("*.arch"))}


@st.composite
def mutated_specs(draw: st.DrawFn, sources: Mapping[str, str] | None = None,
                  max_mutations: int = 3) -> tuple[str, bytes]:
    """(file name, bytes): one of `sources` (default: the shipped specs) after 1 to
    `max_mutations` mutations, and sometimes invalid UTF-8 bytes at a random offset."""
    sources = sources or shipped_sources()
    name = draw(st.sampled_from(sorted(sources)))
    tokens = tokenize(sources[name])
    for mutate in draw(st.lists(mutations(), min_size=1, max_size=max_mutations)):
        tokens = mutate(tokens)
    data = "".join(tokens).encode("utf-8", errors="surrogatepass")
    if draw(st.integers(0, 9)) == 0:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from(INVALID_UTF8)) + data[at:]
    return name, data
