"""The Cassandra sink's plans: each route's table read from the schema once, its INSERT
prepared, one converter per column; and the per-record binding of INSERTs and deletes.

A route's statement is `INSERT INTO ks.table (c1, ...) VALUES (?, ...) USING [TTL n AND]
TIMESTAMP ?`. The write timestamp is the record's Kafka timestamp in microseconds plus
`offset % 1000`, so a replayed or late record never overwrites newer data, two records of one
millisecond keep their order, and a batch written again rewrites itself. Tombstones run the
configured delete statement, given the same timestamp.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cassandra.cluster import NoHostAvailable, Session
from cassandra.metadata import protect_name
from cassandra.query import UNSET_VALUE, BoundStatement, PreparedStatement

from conductor.config import CassandraSettings
from conductor.errors import RecordError
from conductor.records import Record
from conductor.routes import MISSING, Route, dig
from sinks.cassandra_types import Converter, Unconvertible, converter, shown, type_name

log = logging.getLogger("sinks.cassandra")

TIMESTAMP_MARKER = "[timestamp]"
MAX_FIELD_CACHE = 10_000
NOT_A_COLUMN = -1


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """Everything about a route the per-record path needs, worked out once. `slots` maps a
    field name to its bind position (NOT_A_COLUMN if none); SELECT * fills it as names come."""

    route: Route
    table: str
    prepared: PreparedStatement
    columns: tuple[str, ...]
    types: tuple[str, ...]
    converters: tuple[Converter, ...]
    template: tuple[Any, ...]
    pk_slots: tuple[int, ...]
    slots: dict[str, int]
    wildcard: bool


@dataclass(frozen=True, slots=True)
class DeletePlan:
    prepared: PreparedStatement
    timestamp_slots: tuple[int, ...]
    key_slots: tuple[tuple[int, tuple[str, ...], Converter, str], ...]  # slot, path, convert, name


def where_of(route: Route) -> str:
    statement = route.statement
    return f"KCQL line {statement.line} ({statement.target.name} <- {statement.topic})"


def find(mapping: Any, name: str) -> Any:
    """Exact name first (a quoted identifier), then the lowercase one CQL folds names to."""
    found = mapping.get(name)
    return found if found is not None else mapping.get(name.lower())


def describe(error: BaseException) -> str:
    if isinstance(error, NoHostAvailable) and error.errors:
        return "; ".join(f"{host}: {reason}" for host, reason in error.errors.items())
    return f"{type(error).__name__}: {error}"


def write_timestamp(record: Record) -> int:
    """Microseconds: the Kafka timestamp, plus the offset's last three digits as a tie-break."""
    if record.timestamp < 0:
        return time.time_ns() // 1000
    return record.timestamp * 1000 + record.offset % 1000


def with_timestamp(delete: str) -> str:
    """The delete statement given `USING TIMESTAMP ?` (bound to the tombstone's timestamp),
    unless it has one or is conditional (`IF ...` takes no custom timestamp)."""
    if re.search(r"\bUSING\s+TIMESTAMP\b|\bIF\b", delete, re.IGNORECASE):
        return delete
    return re.sub(r"\s+WHERE\s", " USING TIMESTAMP ? WHERE ", delete, count=1, flags=re.IGNORECASE)


def prepare(session: Session, cql: str) -> PreparedStatement:
    prepared = session.prepare(cql)
    prepared.is_idempotent = True  # explicit timestamps: writing twice is harmless
    return prepared


# -- planning, once at setup -------------------------------------------------------------------


def plan_all(
    session: Session, routes: Sequence[Route], settings: CassandraSettings
) -> tuple[dict[int, RoutePlan], DeletePlan | None, list[str]]:
    """Plan every route and the delete statement; every problem found, or none."""
    plans: dict[int, RoutePlan] = {}
    delete: DeletePlan | None = None
    problems: list[str] = []
    keyspace = find(session.cluster.metadata.keyspaces, settings.keyspace)
    if keyspace is not None:
        session.set_keyspace(protect_name(keyspace.name))
    else:
        problems.append(f"keyspace {settings.keyspace!r} (connect.cassandra.key.space) does not exist")
    for route in routes:
        plan, found = plan_route(session, route, settings)
        problems += found
        if plan is not None:
            plans[id(route)] = plan
    if settings.delete_enabled and keyspace is not None:
        delete, found = plan_delete(session, settings)
        problems += found
    return plans, delete, problems


def plan_route(
    session: Session, route: Route, settings: CassandraSettings
) -> tuple[RoutePlan | None, list[str]]:
    statement, where = route.statement, where_of(route)
    path = statement.target.path
    if statement.target.is_dynamic or len(path) > 2:
        return None, [f"{where}: the target must be 'table' or 'keyspace.table'"]
    keyspace_name, table_name = path if len(path) == 2 else (settings.keyspace, path[0])
    keyspace = find(session.cluster.metadata.keyspaces, keyspace_name)
    if keyspace is None:
        return None, [f"{where}: keyspace {keyspace_name!r} does not exist"]
    table = find(keyspace.tables, table_name)
    if table is None:
        return None, [
            f"{where}: table {keyspace.name}.{table_name} does not exist (the sink "
            f"does not create tables: create it with CQL)"
        ]
    qualified = f"{keyspace.name}.{table.name}"
    problems = []
    if any(column.cql_type == "counter" for column in table.columns.values()):
        problems.append(f"{where}: {qualified} is a counter table, which INSERT cannot write")
    wildcard = any(f.wildcard for f in statement.fields)
    slots: dict[str, int] = {}
    # Columns given CQL's now(): written by the server, never bound from the record.
    computed: list[str] = []
    for selected in statement.fields:
        if selected.source == "now":
            column = find(table.columns, selected.name)
            if column is None:
                problems.append(f"{where}: now() AS {selected.name!r} matches no column of {qualified}")
            elif column.name not in computed:
                computed.append(column.name)
    chosen: list[str] = [c for c in table.columns if c not in computed] if wildcard else []
    for selected in statement.fields:
        if selected.wildcard or selected.source == "now":
            continue
        column = find(table.columns, selected.name)
        if column is None:
            problems.append(
                f"{where}: field {selected.name!r} matches no column of {qualified} "
                f"(columns: {', '.join(table.columns)})"
            )
        elif column.name not in chosen:
            chosen.append(column.name)
        if column is not None:
            slots[selected.name] = chosen.index(column.name)
    unfilled = [c.name for c in table.primary_key if c.name not in chosen and c.name not in computed]
    if unfilled:
        problems.append(
            f"{where}: primary key column(s) {', '.join(unfilled)} of {qualified} "
            f"are never written: no selected field has that name"
        )
    if problems:
        return None, problems
    ttl = f"TTL {statement.ttl} AND " if statement.ttl else ""
    columns = ", ".join(map(protect_name, chosen + computed))
    values = ", ".join(["?"] * len(chosen) + ["now()"] * len(computed))
    cql = (
        f"INSERT INTO {protect_name(keyspace.name)}.{protect_name(table.name)} ({columns}) "
        f"VALUES ({values}) USING {ttl}TIMESTAMP ?"
    )
    try:
        prepared = prepare(session, cql)
    except Exception as error:
        return None, [f"{where}: cannot prepare {cql}: {describe(error)}"]
    bound_types = [m.type for m in prepared.column_metadata]
    keys = {c.name for c in table.primary_key}
    default = None if settings.default_value == "NULL" else UNSET_VALUE
    slots.update({name: index for index, name in enumerate(chosen) if name not in slots})
    return RoutePlan(
        route,
        qualified,
        prepared,
        tuple(chosen),
        tuple(table.columns[name].cql_type for name in chosen),
        tuple(converter(t) for t in bound_types[:-1]),
        tuple(None if name in keys else default for name in chosen) + (None,),
        tuple(index for index, name in enumerate(chosen) if name in keys),
        slots,
        wildcard,
    ), []


def plan_delete(session: Session, settings: CassandraSettings) -> tuple[DeletePlan | None, list[str]]:
    try:
        prepared = prepare(session, with_timestamp(settings.delete_statement or ""))
    except Exception as error:
        return None, [f"connect.cassandra.delete.statement cannot be prepared: {describe(error)}"]
    markers = list(enumerate(prepared.column_metadata))
    keys = [(i, m) for i, m in markers if m.name != TIMESTAMP_MARKER]
    fields = settings.delete_key_fields
    if len(keys) != max(len(fields), 1):
        return None, [
            f"connect.cassandra.delete.statement has {len(keys)} key marker(s) but "
            f"connect.cassandra.delete.struct_flds names {len(fields)} field(s) "
            f"(none: one marker for the whole key)"
        ]
    paths = [tuple(f.split(".")) for f in fields] or [()]
    return DeletePlan(
        prepared,
        tuple(i for i, m in markers if m.name == TIMESTAMP_MARKER),
        tuple((i, path, converter(m.type), m.name) for (i, m), path in zip(keys, paths, strict=True)),
    ), []


# -- binding, per record -----------------------------------------------------------------------


def bind_insert(plan: RoutePlan, record: Record) -> BoundStatement:
    values = list(plan.template)
    slots, converters = plan.slots, plan.converters
    slot, value = NOT_A_COLUMN, None
    try:
        for name, value in plan.route.project(record).items():
            slot = slots.get(name)
            if slot is None:
                slot = resolve(plan, name)
            if slot >= 0:
                values[slot] = None if value is None else converters[slot](value)
    except (Unconvertible, ValueError, TypeError, OverflowError) as error:
        detail = f" ({error.detail})" if isinstance(error, Unconvertible) and error.detail else ""
        raise RecordError(
            f"column {plan.columns[slot]} ({plan.types[slot]}): cannot convert {shown(value)}{detail}"
        ) from None
    for slot in plan.pk_slots:
        if values[slot] is None:
            raise RecordError(f"missing primary key column {plan.columns[slot]} (table {plan.table})")
    values[-1] = write_timestamp(record)
    try:
        return plan.prepared.bind(values)
    except Exception as error:
        raise RecordError(f"cannot bind record for {plan.table}: {error}") from None


def resolve(plan: RoutePlan, name: str) -> int:
    """The bind position of a field SELECT * brought that was not seen before."""
    lowered = name.lower()
    slot = plan.columns.index(lowered) if lowered in plan.columns else NOT_A_COLUMN
    if len(plan.slots) < MAX_FIELD_CACHE:
        plan.slots[name] = slot
        if slot == NOT_A_COLUMN:
            log.debug(
                "%s: field %r matches no column of %s: not written", where_of(plan.route), name, plan.table
            )
    return slot


def bind_delete(plan: DeletePlan, record: Record) -> BoundStatement:
    values: list[Any] = [None] * len(plan.prepared.column_metadata)
    for slot in plan.timestamp_slots:
        values[slot] = write_timestamp(record)
    key = record.key_object()
    whole = key if key is not None and type(key) not in (dict, list) else record.key_text()
    for slot, path, convert, name in plan.key_slots:
        if path and type(key) is dict:
            value = dig(key, path)
        else:  # no struct_flds, or a key that is not a JSON object: the whole key
            value = whole if len(plan.key_slots) == 1 else MISSING
        if value is None or value is MISSING:
            raise RecordError(
                f"tombstone: key field {'.'.join(path) or '(the key)'} for {name} of the delete statement is missing"
            )
        try:
            values[slot] = convert(value)
        except (Unconvertible, ValueError, TypeError) as error:
            raise RecordError(
                f"tombstone: key value {shown(value)} does not fit {name} "
                f"({type_name(plan.prepared.column_metadata[slot].type)}) {error}"
            ) from None
    try:
        return plan.prepared.bind(values)
    except Exception as error:
        raise RecordError(f"tombstone: cannot bind the delete statement: {error}") from None
