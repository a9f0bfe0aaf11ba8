"""What a statement that parses must also satisfy, each failure a SqlSyntaxError pointing at
the offending token: grouping, output names, KEYED BY, and a job that does not read its own
output."""

from __future__ import annotations

from conductor.sql.ast import Aggregate, FieldRef, GroupItem
from conductor.sql.errors import SqlSyntaxError

Item = Aggregate | GroupItem
WINDOW_COLUMNS = ("window_start", "window_end")  # the aggregator adds them to every output


def check_topics(source: str, output_at: int, output_topic: str, input_topic: str) -> None:
    """The job must not write the topic it reads: it would aggregate its own output."""
    if output_topic == input_topic:
        raise SqlSyntaxError(
            f"INSERT INTO '{output_topic}' is the topic the statement reads FROM", source, output_at
        )


def check_items(
    source: str, select_at: int, named_items: tuple[tuple[Item, int], ...], group_by: tuple[FieldRef, ...]
) -> None:
    """A plain field must be grouped by; output names are unique and not the window's own
    (compared in any case: Cassandra folds unquoted column names); one aggregate at least.

    ``named_items`` pairs each item with the offset of its output name (its alias, if any).
    """
    seen: dict[str, str] = {}
    for item, name_at in named_items:
        if isinstance(item, GroupItem) and item.field not in group_by:
            message = f"Field '{item.field.dotted}' is neither in GROUP BY nor aggregated"
            raise SqlSyntaxError(message, source, item.start)
        name = item.alias.lower()
        if name in WINDOW_COLUMNS:
            raise SqlSyntaxError(
                f"Output name '{item.alias}' is reserved for the window's bounds", source, name_at
            )
        if name in seen:
            earlier = seen[name]
            message = f"Output name '{item.alias}' is used twice"
            if earlier != item.alias:
                message = (
                    f"Output name '{item.alias}' clashes with '{earlier}' (names are compared in any case)"
                )
            raise SqlSyntaxError(message, source, name_at)
        seen[name] = item.alias
    # A GROUP BY field not in SELECT is still in the output, under its last part.
    selected = {item.field for item, _ in named_items if isinstance(item, GroupItem)}
    for index, field in enumerate(group_by):
        name = field.path[-1]
        if field in selected or field in group_by[:index]:  # a field named twice: check_keyed says so
            continue
        if name.lower() in WINDOW_COLUMNS or name.lower() in seen:
            clash = "the window's bounds" if name.lower() in WINDOW_COLUMNS else f"'{seen[name.lower()]}'"
            raise SqlSyntaxError(
                f"GROUP BY field '{field.dotted}' is output as '{name}', which clashes with {clash}; "
                f"select it with AS another name",
                source,
                field.start,
            )
        seen[name.lower()] = name
    if not any(isinstance(item, Aggregate) for item, _ in named_items):
        message = "SELECT has no aggregate (COUNT, SUM, AVG, MIN, MAX, EARLIEST or LATEST)"
        raise SqlSyntaxError(message, source, select_at)


def check_keyed(source: str, keyed: tuple[FieldRef, ...] | None, group_by: tuple[FieldRef, ...]) -> None:
    """KEYED BY names exactly the GROUP BY fields, in any order; neither names a field twice."""
    for clause, fields in (("KEYED BY", keyed or ()), ("GROUP BY", group_by)):
        for index, field in enumerate(fields):
            if field in fields[:index]:
                raise SqlSyntaxError(
                    f"Field '{field.dotted}' is named twice in {clause}", source, field.start
                )
    if keyed is None:
        return
    rule = "KEYED BY must name exactly the GROUP BY fields"
    for field in keyed:
        if field not in group_by:
            message = f"KEYED BY field '{field.dotted}' is not in GROUP BY ({rule})"
            raise SqlSyntaxError(message, source, field.start)
    for field in group_by:
        if field not in keyed:
            message = f"GROUP BY field '{field.dotted}' is missing from KEYED BY ({rule})"
            raise SqlSyntaxError(message, source, field.start)
