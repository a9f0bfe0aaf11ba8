"""The transforms a config lists (`transforms=a,b`), built once at start and applied to each
record right after decoding, in order, as Kafka Connect applies them before the connector."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conductor.errors import RecordError
from conductor.records import Record
from conductor.transforms import registry
from conductor.transforms.base import Settings, TransformError


@dataclass(frozen=True, slots=True)
class Step:
    alias: str
    kind: str  # the class as configured, short: InsertField$Value
    transform: Any
    predicate: Any = None
    negate: bool = False


@dataclass(frozen=True, slots=True)
class Chain:
    steps: tuple[Step, ...]
    routes: bool  # a step may change the topic: routes are looked up per record

    def apply(self, record: Record) -> Record | None:
        """The record transformed, or None when a Filter dropped it. A transform that fails
        raises RecordError naming it: errors.tolerance decides, as for an undecodable record."""
        for step in self.steps:
            predicate = step.predicate
            if predicate is not None and predicate.test(record) == step.negate:
                continue
            try:
                record = step.transform.apply(record)
            except TransformError as error:
                raise RecordError(
                    f"transform {step.alias} ({step.kind}): {error}", kind="transform"
                ) from error
            except Exception as error:  # Kafka Connect tolerates any exception a transform throws
                raise RecordError(
                    f"transform {step.alias} ({step.kind}): {type(error).__name__}: {error}", kind="transform"
                ) from error
            if record is None:
                return None
        if record.value is not None and type(record.value) is not dict:
            raise RecordError(
                f"after the transforms the value is a {type(record.value).__name__}, not a JSON object; "
                "the sinks write objects",
                kind="transform",
            )
        return record

    def describe(self) -> str:
        """`a (InsertField$Value), b (Filter if not tombstone)`, for `conductor validate`."""
        parts = []
        for step in self.steps:
            condition = ""
            if step.predicate is not None:
                condition = f" {'unless' if step.negate else 'if'} {type(step.predicate).__name__}"
            parts.append(f"{step.alias} ({step.kind}{condition})")
        return ", ".join(parts)


def build_chain(values: Mapping[str, str]) -> tuple[Chain | None, list[str], list[str]]:
    """The chain `transforms` lists (None without one), the problems, and warnings for keys
    no transform reads. ``values`` are the config's keys, resolved."""
    problems: list[str] = []
    warnings: list[str] = []
    aliases = _aliases(values, "transforms", problems)
    predicates = {
        alias: _predicate(alias, values, problems, warnings)
        for alias in _aliases(values, "predicates", problems)
    }
    steps = []
    for alias in aliases:
        s = Settings(values, f"transforms.{alias}.", problems)
        class_name = s.string("type", required=True)
        predicate_alias = s.string("predicate")
        negate = s.boolean("negate", False)
        predicate = None
        if predicate_alias is not None:
            if predicate_alias not in predicates:
                s.problem(
                    "predicate", f"{predicate_alias!r} is not one of the predicates ({', '.join(predicates)})"
                )
            predicate = predicates.get(predicate_alias)
        elif values.get(s.key("negate")) is not None:
            warnings.append(f"{s.key('negate')}: it turns a predicate around, and this transform has none")
        if class_name is None:
            continue
        target = registry.TRANSFORMS.get(class_name.strip())
        if target is None:
            why = registry.NOT_YET.get(class_name.strip(), "not supported")
            s.problem(
                "type",
                f"{class_name} is {why}; conductor has: {', '.join(map(registry.short, registry.TRANSFORMS))}",
            )
            continue
        transform = registry.load(target).configure(s, registry.side_of(class_name))
        warnings += [f"{key}: {registry.short(class_name)} has no such setting" for key in s.unread()]
        if transform is not None:
            steps.append(Step(alias, registry.short(class_name.strip()), transform, predicate, negate))
    if problems or not steps:
        return None, problems, warnings
    routes = any(values[f"transforms.{step.alias}.type"].strip() in registry.ROUTERS for step in steps)
    return Chain(tuple(steps), routes), problems, warnings


def _aliases(values: Mapping[str, str], key: str, problems: list[str]) -> list[str]:
    aliases = [alias.strip() for alias in values.get(key, "").split(",") if alias.strip()]
    duplicates = sorted({alias for alias in aliases if aliases.count(alias) > 1})
    if duplicates:
        problems.append(f"{key}: Duplicate alias provided: {', '.join(duplicates)}")
    return list(dict.fromkeys(aliases))


def _predicate(alias: str, values: Mapping[str, str], problems: list[str], warnings: list[str]) -> Any:
    s = Settings(values, f"predicates.{alias}.", problems)
    s.read = {"type"}
    class_name = s.string("type", required=True)
    if class_name is None:
        return None
    target = registry.PREDICATES.get(class_name.strip())
    if target is None:
        s.problem(
            "type",
            f"{class_name} is not supported; conductor has: {', '.join(map(registry.short, registry.PREDICATES))}",
        )
        return None
    predicate = registry.load(target).configure(s)
    warnings += [f"{key}: {registry.short(class_name)} has no such setting" for key in s.unread()]
    return predicate
