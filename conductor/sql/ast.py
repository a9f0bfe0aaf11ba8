"""The aggregator SQL's syntax tree: frozen dataclasses.

Every node keeps where it starts (``start`` offset in the whole text, 1-based ``line`` and
``column``).  Positions are keyword-only and left out of equality, so a test or a caller can
compare a parsed node with one built by hand.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass, field
from typing import Any

WindowKind = typing.Literal["TUMBLING", "HOPPING"]
Emit = typing.Literal["FINAL", "CHANGES"]
Comparator = typing.Literal["=", "!=", "<", "<=", ">", ">="]
Value = int | float | str | bool | None

AGGREGATES = ("COUNT", "SUM", "AVG", "MIN", "MAX", "EARLIEST", "LATEST")
PLAIN_NAME = re.compile(r"[^\W\d][\w-]*")


def position(default: int = 0) -> Any:
    return field(default=default, compare=False, kw_only=True)


@dataclass(frozen=True)
class FieldRef:
    """A field of the record's JSON value, by its path: ``a.b`` is ``FieldRef(("a", "b"))``."""

    path: tuple[str, ...]
    start: int = position()
    line: int = position()
    column: int = position()

    @property
    def dotted(self) -> str:
        """The path as SQL spells it; a part that is not a plain name is back-quoted."""
        return ".".join(part if PLAIN_NAME.fullmatch(part) else f"`{part}`" for part in self.path)


@dataclass(frozen=True, eq=False)
class Literal:
    """A constant in WHERE: a number, a string, TRUE/FALSE or NULL (None)."""

    value: Value
    start: int = position()
    line: int = position()
    column: int = position()

    @property
    def kind(self) -> str:
        return kind_of(self.value)

    # 1 == 1.0 == True in Python; a literal keeps its type, so TRUE is not the literal 1.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Literal):
            return NotImplemented
        return type(self.value) is type(other.value) and self.value == other.value

    def __hash__(self) -> int:
        return hash((type(self.value), self.value))


def kind_of(value: Any) -> str:
    """The JSON name of a value's type, as messages use it: number, string, boolean, ..."""
    return KINDS.get(type(value), type(value).__name__)


KINDS: dict[type, str] = {
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    type(None): "null",
    dict: "object",
    list: "array",
}

Operand = FieldRef | Literal


@dataclass(frozen=True)
class Comparison:
    """``left op right``; ``<>`` is read as ``!=``."""

    left: Operand
    op: Comparator
    right: Operand
    start: int = position()
    line: int = position()
    column: int = position()


@dataclass(frozen=True)
class IsNull:
    """``operand IS NULL``, or ``IS NOT NULL`` when ``negated``."""

    operand: Operand
    negated: bool = False
    start: int = position()
    line: int = position()
    column: int = position()


@dataclass(frozen=True)
class Not:
    condition: Condition
    start: int = position()
    line: int = position()
    column: int = position()


@dataclass(frozen=True)
class And:
    """Two or more conditions joined by AND (a parenthesised group stays its own node)."""

    items: tuple[Condition, ...]
    start: int = position()
    line: int = position()
    column: int = position()


@dataclass(frozen=True)
class Or:
    items: tuple[Condition, ...]
    start: int = position()
    line: int = position()
    column: int = position()


Condition = Comparison | IsNull | Not | And | Or


@dataclass(frozen=True)
class Aggregate:
    """``COUNT(*)`` (argument None) or ``FUNCTION(field)``; ``function`` is upper case and
    ``alias`` the output name (``count``, ``avg_celsius`` when no AS is given)."""

    function: str
    argument: FieldRef | None
    alias: str
    start: int = position()
    line: int = position()
    column: int = position()


@dataclass(frozen=True)
class GroupItem:
    """A GROUP BY field selected as is; ``alias`` defaults to its last path part."""

    field: FieldRef
    alias: str
    start: int = position()
    line: int = position()
    column: int = position()


@dataclass(frozen=True)
class Window:
    """A window in milliseconds; a tumbling window advances by its size."""

    kind: WindowKind
    size_ms: int
    advance_ms: int
    grace_ms: int = 0
    start: int = position()
    line: int = position()
    column: int = position()


@dataclass(frozen=True)
class Aggregation:
    """One ``INSERT INTO output SELECT ... FROM input ... WINDOW ... GROUP BY ...`` statement.

    ``items`` keeps the SELECT order.  ``keyed`` says the input's record key already is the
    group (no repartition).  ``text`` is the statement's own source text, without the ``;``.
    """

    output_topic: str
    input_topic: str
    items: tuple[Aggregate | GroupItem, ...]
    group_by: tuple[FieldRef, ...]
    keyed: bool
    timestamp_field: FieldRef | None
    where: Condition | None
    window: Window
    emit: Emit = "FINAL"
    text: str = field(default="", compare=False, kw_only=True)
    start: int = position()
    line: int = position()
    column: int = position()

    @property
    def aggregates(self) -> tuple[Aggregate, ...]:
        return tuple(item for item in self.items if isinstance(item, Aggregate))

    @property
    def group_items(self) -> tuple[GroupItem, ...]:
        return tuple(item for item in self.items if isinstance(item, GroupItem))
