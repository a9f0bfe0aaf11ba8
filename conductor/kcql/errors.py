"""KCQL's syntax error: what was expected, what was found, where, and a caret under the spot."""

from __future__ import annotations

from conductor.syntax import PositionedSyntaxError, locate

__all__ = ["KcqlSyntaxError", "locate"]


class KcqlSyntaxError(PositionedSyntaxError):
    """A KCQL text that does not parse (see PositionedSyntaxError for its message and fields)."""
