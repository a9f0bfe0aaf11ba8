"""Where the aggregator's records flow: worked out once, from the statements, before the fork.

A statement whose input is keyed by its group (KEYED BY) aggregates the input topic's
partitions directly. Any other is re-keyed by its group fields through a repartition topic, as
Kafka Streams does, so that one group is always on one worker; statements that regroup one
input by the same fields share that topic. Each statement keeps its open windows in a compacted
changelog topic with one partition per partition it aggregates, named after the statement's
text: change the statement and it starts from fresh state instead of misreading the old one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tasks.aggregation import Plan, field_getter

# Kafka keeps internal records until the aggregator has read them: a repartition topic keeps
# them for ever and the aggregator deletes what it has committed (as Kafka Streams purges);
# a changelog is compacted. Time retention would lose records whose event times are days old.
REPARTITION_CONFIGS = {"cleanup.policy": "delete", "retention.ms": "-1"}
CHANGELOG_CONFIGS = {"cleanup.policy": "compact"}


def topic_name(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", "-".join(parts))[:249]


@dataclass(frozen=True)
class Regroup:
    """Records of `source` re-keyed by `fields` into `topic`."""

    source: str
    fields: tuple[str, ...]
    topic: str
    getters: tuple[Callable[[dict], Any], ...]


@dataclass
class Topology:
    name: str
    plans: tuple[Plan, ...]
    regroups: list[Regroup] = field(default_factory=list)
    aggregating: dict[str, list[Plan]] = field(default_factory=dict)  # topic -> plans counting it
    regrouping: dict[str, list[Regroup]] = field(default_factory=dict)  # input topic -> regroups
    changelogs: dict[int, str] = field(default_factory=dict)  # plan index -> changelog topic
    source_of: dict[str, str] = field(default_factory=dict)  # aggregated topic -> its input topic

    @classmethod
    def of(cls, name: str, plans: Sequence[Plan]) -> Topology:
        topology = cls(name, tuple(plans))
        for plan in plans:
            statement = plan.statement
            source = statement.input_topic
            if statement.keyed:
                topic = source
            else:
                fields = tuple(ref.dotted for ref in statement.group_by)
                topic = topic_name("connect", name, source, "by", "-".join(fields), "repartition")
                if all(r.topic != topic for r in topology.regroups):
                    regroup = Regroup(source, fields, topic, tuple(map(field_getter, statement.group_by)))
                    topology.regroups.append(regroup)
                    topology.regrouping.setdefault(source, []).append(regroup)
            topology.aggregating.setdefault(topic, []).append(plan)
            topology.source_of[topic] = source
            digest = hashlib.sha1(" ".join(statement.text.split()).encode()).hexdigest()[:8]
            topology.changelogs[plan.index] = topic_name(
                "connect", name, statement.output_topic, digest, "changelog"
            )
        return topology

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """The input topics, then the repartition topics: what the workers' group reads."""
        inputs = {plan.statement.input_topic for plan in self.plans}
        return tuple(sorted(inputs)) + tuple(r.topic for r in self.regroups)

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(sorted({plan.statement.output_topic for plan in self.plans}))

    def describe(self) -> list[str]:
        """For `conductor validate`: how each statement's records flow."""
        lines = []
        for plan in self.plans:
            statement = plan.statement
            via = next(t for t, ps in self.aggregating.items() if plan in ps)
            route = "keyed by its group" if via == statement.input_topic else f"regrouped through {via}"
            lines.append(
                f"statement {plan.index + 1}: {statement.input_topic} ({route}) -> "
                f"{statement.output_topic}; state in {self.changelogs[plan.index]}"
            )
        return lines
