"""Servers stopped and started again under a running conductor: compose/local's own commands."""

from __future__ import annotations

import subprocess
import sys
import time

from elasticsearch import Elasticsearch
from support.pipeline import ROOT, es_count, wait_for

LAUNCHER = ROOT / "compose" / "local"


def launcher(*arguments: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(LAUNCHER), *arguments], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def es_answers(url: str) -> bool:
    client = Elasticsearch(url, request_timeout=3)
    try:
        health = client.cluster.health(timeout="2s")
        return health["status"] in ("yellow", "green")
    except Exception:
        return False
    finally:
        client.close()


def es_count_or_none(url: str, index: str) -> int | None:
    try:
        return es_count(url, index)
    except Exception:
        return None


def stop(server: str) -> None:
    stopped = launcher("down", server, timeout=120)
    assert stopped.returncode == 0, f"compose/local down {server} failed:\n{stopped.stdout}\n{stopped.stderr}"


def bring_back(server: str, answers, timeout: float = 180) -> None:
    """`compose/local up SERVER` until `answers()`. Tried again when it fails: another test session
    that found the server down mid-outage may be starting it at the same moment."""
    deadline = time.monotonic() + timeout
    failures = []
    while not answers():
        if time.monotonic() > deadline:
            raise AssertionError(f"could not bring {server} back:\n" + "\n".join(failures[-2:]))
        started = launcher("up", server, timeout=max(deadline - time.monotonic(), 30))
        if started.returncode != 0:
            failures.append(f"compose/local up {server}: {started.stdout[-1500:]}{started.stderr[-1500:]}")
            time.sleep(3)
    wait_for(answers, 60, f"{server} to answer again")


def group_settled(conductor, workers: int, partitions: int) -> bool:
    """Each of `workers` running workers holds partitions, and together all `partitions`."""
    owned = [
        {p["partition"] for p in state.get("partitions", [])}
        for state in conductor.states()
        if state.get("state") == "running"
    ]
    return len(owned) == workers and all(owned) and len(set().union(*owned)) == partitions


def create_unwritable_index(url: str, index: str) -> None:
    """Elasticsearch stays up, but the index's primary shard is held unassigned (an allocation
    filter no node matches): every bulk request to it times out until make_writable(). (A
    read-only-allow-delete block would not do: the disk monitor lifts it by itself within 30 s.)"""
    client = Elasticsearch(url)
    try:
        client.indices.create(
            index=index,
            wait_for_active_shards="0",
            settings={
                "index.routing.allocation.require._name": "no-such-node",
                "index.number_of_replicas": 0,
            },
            mappings={"properties": {"celsius": {"type": "float"}}},
        )
    finally:
        client.close()


def make_writable(url: str, index: str) -> None:
    client = Elasticsearch(url)
    try:
        client.indices.put_settings(index=index, settings={"index.routing.allocation.require._name": None})
        client.cluster.health(index=index, wait_for_status="green", timeout="30s")
    finally:
        client.close()
