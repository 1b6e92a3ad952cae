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
        """The offending line with a caret under the offending text."""
        if not self.line_text:
            return ""
        gutter = f"{self.line:>4} | "
        caret = " " * (len(gutter) + self.col - 1) + "^" * max(1, self.length)
        return f"{gutter}{self.line_text.rstrip()}\n{caret}"


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
