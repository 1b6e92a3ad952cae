"""One error type for users: every failure caused by a spec or an argument is a `SpecError`.

A `SpecError` carries where the problem is (file:line:col and the offending line), what
was expected, and optional notes pointing at related spec locations, so the CLI can print
a compiler-style message and exit with status 2 instead of a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SourceLoc:
    """A position in a spec: 1-based line and column, with the text of that line."""

    file: str
    line: int
    col: int
    line_text: str = ""
    length: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def excerpt(self) -> str:
        """The offending line with a caret under the offending text.

        Control and format characters are drawn one column wide (tab as a space, others as
        Unicode control pictures or U+FFFD) so the caret stays aligned and a hostile spec
        cannot send terminal escapes or reorder the line with bidi controls.
        """
        if not self.line_text:
            return ""
        text, col, length = self.line_text.rstrip(), self.col, max(1, self.length)
        if len(text) > _EXCERPT_WIDTH:  # a window around the column, marked by "..."
            start = max(0, min(col - 1 - _EXCERPT_WIDTH // 2, len(text) - _EXCERPT_WIDTH))
            end = start + _EXCERPT_WIDTH
            text = ("..." if start else "") + text[start:end] + ("..." if end < len(text) else "")
            col = col - start + (3 if start else 0)
            length = min(length, _EXCERPT_WIDTH)
        length = max(1, min(length, len(text) - col + 1))
        gutter = f"{self.line:>4} | "
        caret = " " * (len(gutter) + col - 1) + "^" * length
        return f"{gutter}{_visible(text)}\n{caret}"


_EXCERPT_WIDTH = 160  # characters of a long line shown around the error


def _visible_char(char: str) -> str:
    if char == "\t":
        return " "
    if char.isprintable() or char == " ":
        return char
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)  # U+2400.. CONTROL PICTURES: \f shows as ␌
    if code == 0x7F:
        return "\u2421"
    return "\ufffd"


def _visible(text: str) -> str:
    return text if text.isprintable() else "".join(_visible_char(c) for c in text)


def shown(text: str, limit: int = 200) -> str:
    """`text` (a name, path or string from a spec) safe to put in a message: non-printable
    characters escaped, and at most `limit` characters."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


@dataclass
class Note:
    """A secondary location that helps explain an error (e.g. the other input of an add)."""

    message: str
    loc: SourceLoc | None = None


@dataclass
class SpecError(Exception):
    """An error in a spec or in user-supplied arguments; never a bug in nasir itself."""

    message: str
    loc: SourceLoc | None = None
    expected: str | None = None
    notes: list[Note] = field(default_factory=list)
    trace: list[tuple[str, SourceLoc]] = field(default_factory=list)  # (block, call site)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.format()

    def format(self) -> str:
        """Render like a compiler diagnostic: location, excerpt with caret, expectation."""
        head = f"{self.loc}: error: {self.message}" if self.loc else f"error: {self.message}"
        lines = [head]
        if self.loc and self.loc.line_text:
            lines.append(self.loc.excerpt())
        if self.expected:
            lines.append(f"expected: {self.expected}")
        for note in self.notes:
            where = f"{note.loc}: " if note.loc else ""
            lines.append(f"note: {where}{note.message}")
            if note.loc and note.loc.line_text:
                lines.append(note.loc.excerpt())
        for block, call in self.trace:
            lines.append(f"  in {block}, called at {call}")
        return "\n".join(lines)

    def with_trace(self, trace: list[tuple[str, SourceLoc]]) -> SpecError:
        """Attach the chain of block calls that led here (innermost first), once."""
        if not self.trace:
            self.trace = list(trace)
        return self


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """A ' (did you mean 'x'?)' suffix when a close spelling exists, else ''."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
