"""What KCQL's and the aggregator SQL's parsers share: a syntax error that knows its place (what
was expected, what was found, where, and a caret under the spot), and the parsing helpers."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from conductor.errors import ConductorError

T = TypeVar("T")


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


class TokenParser:
    """What KCQL's and the SQL's recursive-descent parsers share (graphql-core's helpers): one
    token of lookahead in ``token``, a second on demand, keywords in any case, and errors that
    say what was expected and what was found. A subclass names its ``Kind`` (token kinds with
    NAME, STRING, COMMA and EOF) and its ``Error``."""

    Kind: Any
    Error: type[PositionedSyntaxError] = PositionedSyntaxError

    def __init__(self, source: str, tokens: Iterator[Any]) -> None:
        self.source = source
        self.tokens = tokens
        self.token = next(tokens)
        self.previous = self.token
        self.peeked: Any = None

    def advance(self) -> Any:
        """Consume the current token and return it."""
        token = self.previous = self.token
        if token.kind is not self.Kind.EOF:
            self.token = self.peeked or next(self.tokens)
            self.peeked = None
        return token

    def peek(self) -> Any:
        """The token after the current one."""
        if self.peeked is None:
            self.peeked = self.token if self.token.kind is self.Kind.EOF else next(self.tokens)
        return self.peeked

    def peek_is(self, kind: Any) -> bool:
        return self.peek().kind is kind

    def at_keyword(self, keyword: str) -> bool:
        return self.token.kind is self.Kind.NAME and self.token.value.upper() == keyword

    def optional_keyword(self, keyword: str) -> bool:
        if self.at_keyword(keyword):
            self.advance()
            return True
        return False

    def expect_keyword(self, keyword: str, expected: str | None = None) -> Any:
        if not self.optional_keyword(keyword):
            raise self.unexpected(expected or f"'{keyword}'")
        return self.previous

    def expect(self, kind: Any, expected: str | None = None) -> Any:
        if self.token.kind is not kind:
            raise self.unexpected(expected or kind.value)
        return self.advance()

    def delimited(self, parse_item: Callable[[], T]) -> tuple[T, ...]:
        """item {',' item}"""
        items = [parse_item()]
        while self.token.kind is self.Kind.COMMA:
            self.advance()
            items.append(parse_item())
        return tuple(items)

    def unexpected(self, expected: str, token: Any = None, last: Any = None) -> PositionedSyntaxError:
        """'Expected <expected>, found <token .. last>' at the token (the current one by default)."""
        token = token or self.token
        found = self.describe(token, last)
        return self.Error(
            f"Expected {expected}, found {found}",
            self.source, token.start, expected=expected, found=found,
        )  # fmt: skip

    def describe(self, token: Any, last: Any = None) -> str:
        last = last or token
        if token.kind is self.Kind.EOF:
            return "end of input"
        if token.kind is self.Kind.STRING and last is token:
            return f"string {self.source[token.start : token.end]}"
        return f"'{self.source[token.start : last.end]}'"


@dataclass(frozen=True)
class Token:
    kind: Any  # the language's token kind
    value: str  # the word, the unescaped string or back-quoted name, or the character
    start: int  # offset in the whole source text
    end: int
    line: int  # 1-based
    column: int  # 1-based


def scan(source: str, offset: int, eof: Any, read: Callable[[int], tuple[Any, str, int]]) -> Iterator[Token]:
    """The loop both lexers share: blanks skipped, ``read(pos) -> (kind, value, end)`` for each
    token, then one EOF token just after the last non-blank character, so "found end of input"
    points at the end of the text the user typed rather than at trailing newlines."""
    line_starts = [0] + [i + 1 for i, ch in enumerate(source) if ch == "\n"]

    def make(kind: Any, value: str, start: int, end: int) -> Token:
        line = bisect.bisect_right(line_starts, start)
        return Token(kind, value, start, end, line, start - line_starts[line - 1] + 1)

    pos, length = offset, len(source)
    while True:
        while pos < length and source[pos].isspace():
            pos += 1
        if pos >= length:
            end = max(len(source.rstrip()), offset)
            yield make(eof, "", end, end)
            return
        kind, value, end = read(pos)
        yield make(kind, value, pos, end)
        pos = end
