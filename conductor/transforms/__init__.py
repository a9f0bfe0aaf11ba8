"""Kafka Connect's Single Message Transforms, on conductor's schemaless records.

A config lists them as Kafka Connect does (`transforms=a,b`, `transforms.a.type=<class>`,
`transforms.a.<setting>`, `transforms.a.predicate`/`negate`, `predicates=...`). `build_chain`
turns that into a `Chain` once, at start; the sink task and the aggregator call `Chain.apply`
right after decoding. The classes conductor runs are in registry.py.
"""

from __future__ import annotations

from conductor.transforms.base import TransformError
from conductor.transforms.chain import Chain, Step, build_chain

__all__ = ["Chain", "Step", "TransformError", "build_chain"]
