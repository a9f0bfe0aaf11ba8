"""A scripted HTTP server in the place of Elasticsearch, for the answers a healthy server does
not give (429, 5xx, 413, a hang). Every test that uses it says so."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

Answer = Callable[[list[dict[str, Any]]], tuple[int, dict[str, Any]]]


class ScriptedElasticsearch:
    """Answers cluster health, and each `_bulk` with the next scripted answer (the last one
    repeats). Records the action lines of every bulk request."""

    def __init__(self, answers: list[Answer]) -> None:
        self.answers = answers
        self.requests: list[list[dict[str, Any]]] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.reply(200, {"status": "green"})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                lines = [json.loads(line) for line in body.splitlines() if line]
                actions = [
                    line
                    for line in lines
                    if len(line) == 1 and next(iter(line)) in ("index", "update", "delete", "create")
                ]
                scripted.requests.append(actions)
                answer = scripted.answers[min(len(scripted.requests), len(scripted.answers)) - 1]
                self.reply(*answer(actions))

            def reply(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("x-elastic-product", "Elasticsearch")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def items(
    statuses: Callable[[int, dict[str, Any]], int], error: str = "es_rejected_execution_exception"
) -> Answer:
    def answer(actions: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        result = []
        for position, action in enumerate(actions):
            ((op, meta),) = action.items()
            status = statuses(position, meta)
            item = {"_index": meta["_index"], "_id": meta["_id"], "status": status}
            if status >= 300:
                item["error"] = {"type": error, "reason": "queue full"}
            result.append({op: item})
        return 200, {"errors": any(i[next(iter(i))]["status"] >= 300 for i in result), "items": result}

    return answer


def whole(status: int) -> Answer:
    return lambda actions: (status, {"error": {"type": "x", "reason": "whole request"}, "status": status})


@pytest.fixture
def scripted() -> Iterator[Callable[[list[Answer]], ScriptedElasticsearch]]:
    servers: list[ScriptedElasticsearch] = []

    def start(answers: list[Answer]) -> ScriptedElasticsearch:
        servers.append(ScriptedElasticsearch(answers))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()
