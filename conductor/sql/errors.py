"""The aggregator SQL's syntax error: what was expected, what was found, where, and a caret."""

from __future__ import annotations

from conductor.syntax import PositionedSyntaxError


class SqlSyntaxError(PositionedSyntaxError):
    """A windowed SQL text that does not parse or does not make sense (see PositionedSyntaxError)."""
