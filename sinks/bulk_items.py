"""What Elasticsearch or OpenSearch said about each item of a bulk request.

Each refused item becomes its record's Failure: retriable for what the server refused for now
(429, 5xx, a rejected execution, a conflict), else a RecordError that says which document and
why, with the command that mends a closed index. The answers are the same JSON on
Elasticsearch 8 and 9 and OpenSearch 2 and 3.
"""

from __future__ import annotations

from typing import Any

import orjson

from conductor.errors import RecordError, RetriableRecordError
from conductor.records import Record
from conductor.routes import Route
from sinks.base import Failure

RETRIABLE_TYPES = frozenset(
    {
        "es_rejected_execution_exception",
        "circuit_breaking_exception",
        "unavailable_shards_exception",
        "no_shard_available_action_exception",
    }
)
CLOSED = "index_closed_exception"  # a bulk item for a closed index (retention closed it)
NL = b"\n"

# (the NDJSON lines of one bulk action, its record, its route)
Action = tuple[bytes, Record, Route]


def describe(error: Any) -> str:
    """`type: reason (caused by type: reason)` from a bulk item's error object."""
    if not isinstance(error, dict):
        return str(error)
    text = f"{error.get('type', 'error')}: {error.get('reason', '')}"
    cause = error.get("caused_by")
    if isinstance(cause, dict) and cause.get("reason"):
        text += f" (caused by {cause.get('type', 'error')}: {cause['reason']})"
    return text


def retriable_item(status: int, error: Any) -> bool:
    kind = error.get("type", "") if isinstance(error, dict) else ""
    return status == 429 or status == 409 or status >= 500 or kind in RETRIABLE_TYPES or "timeout" in kind


def read_items(
    part: list[Action], items: list[dict[str, Any]], failures: list[Failure], server: str = "Elasticsearch"
) -> None:
    for action, item in zip(part, items, strict=True):
        ((op, result),) = item.items()
        status = result.get("status", 500)
        if status < 300 or (status == 404 and op == "delete"):
            continue
        error = result.get("error")
        index, doc_id = where_written(action[0], result)
        reason = f"{server} rejected document {index}/{doc_id}: {describe(error)}"
        if isinstance(error, dict) and error.get("type") == CLOSED:
            reason += (
                f". Index {index} is closed (by conductor.index.close.after.days, or by hand), and "
                f"conductor never reopens an index: reopen it with POST /{index}/_open to write "
                f"the record, or let the error policy skip it (NOOP)"
            )
        kind = RetriableRecordError if retriable_item(status, error) else RecordError
        failures.append(Failure(action[1], action[2], kind(reason, failure_kind(status, error))))


def failure_kind(status: int, error: Any) -> str:
    """A refused item's kind, for the metrics: 429, version_conflict, mapping, or the error's type."""
    kind = error.get("type", "") if isinstance(error, dict) else ""
    if status == 429:
        return "429"
    if status == 409 or "version_conflict" in kind:
        return "version_conflict"
    if "mapping" in kind or "parsing" in kind or kind == "illegal_argument_exception":
        return "mapping"
    if status >= 500:
        return "server_error"
    if kind == CLOSED:
        return "index_closed"
    return kind or f"http_{status}"


def where_written(line: bytes, result: dict[str, Any]) -> tuple[Any, Any]:
    """Index and id of a refused item: the answer omits them (BULK_PATH), the action line has them."""
    if "_index" in result:
        return result.get("_index"), result.get("_id")
    ((_, meta),) = orjson.loads(line[: line.index(NL)]).items()
    return meta.get("_index"), meta.get("_id")
