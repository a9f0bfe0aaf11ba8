"""A syntax error that knows its place: what was expected, what was found, where, and a caret
under the spot.  KCQL's and the aggregator SQL's errors are both this one."""

from __future__ import annotations

from conductor.errors import ConductorError


def locate(source: str, offset: int) -> tuple[int, int, str]:
    """Return the 1-based line and column of ``offset`` in ``source`` and the text of that line."""
    line_start = source.rfind("\n", 0, offset) + 1
    line_end = source.find("\n", offset)
    if line_end == -1:
        line_end = len(source)
    line = source.count("\n", 0, offset) + 1
    return line, offset - line_start + 1, source[line_start:line_end].rstrip("\r")


class PositionedSyntaxError(ConductorError):
    """A text that does not parse, with the place it stops.

    ``message`` is the first line (``Expected 'SELECT', found 'SELEC' at line 1, column 24``);
    ``str(err)`` adds the source line and a caret under the column.  ``expected`` and ``found``
    are the phrases used in the message (``"'SELECT'"``, ``"end of input"``) or None.
    """

    def __init__(
        self,
        description: str,
        source: str,
        offset: int,
        *,
        expected: str | None = None,
        found: str | None = None,
    ) -> None:
        self.line, self.column, self.source_line = locate(source, offset)
        self.offset = offset
        self.expected = expected
        self.found = found
        self.message = f"{description} at line {self.line}, column {self.column}"
        indent = "".join("\t" if ch == "\t" else " " for ch in self.source_line[: self.column - 1])
        super().__init__(f"{self.message}\n{self.source_line}\n{indent}^")
