"""Readiness probes that speak each server's own protocol, with the standard library only.

A port that accepts connections is not a server that answers: Kafka must return cluster
metadata with a broker in it and a coordinator for a consumer group, Elasticsearch and OpenSearch
their distribution and a cluster health of yellow or green, Cassandra the result of a CQL query,
the Schema Registry its list of subjects. Each probe returns a short description on success and
raises ProbeFailed otherwise.
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import urllib.error
import urllib.request


class ProbeFailed(Exception):
    """The server did not answer as a ready server does."""


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            raise ProbeFailed("connection closed before the answer was complete")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _string(value: str) -> bytes:
    raw = value.encode()
    return struct.pack(">h", len(raw)) + raw


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def string(self, length_fmt: str = ">h") -> str | None:
        length = self.take(length_fmt)
        if length < 0:
            return None
        value = self.data[self.pos : self.pos + length].decode()
        self.pos += length
        return value


def _kafka_exchange(host: str, port: int, api_key: int, version: int, body: bytes, timeout: float) -> _Reader:
    """One request with header v1 (api key, version, correlation id, client id); the answer
    after its correlation id."""
    request = struct.pack(">hhi", api_key, version, 1) + _string("conductor-probe") + body
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            size = struct.unpack(">i", _recv_exact(sock, 4))[0]
            reader = _Reader(_recv_exact(sock, size))
    except OSError as exc:
        raise ProbeFailed(f"no answer from Kafka at {host}:{port}: {exc}") from exc
    reader.take(">i")  # correlation id
    return reader


def kafka_metadata(host: str, port: int, timeout: float = 5.0) -> str:
    """Send a Metadata v4 request (still served by Kafka 4.x) and require one live broker."""
    body = struct.pack(">i", -1) + b"\x00"  # all topics, no auto-creation
    reader = _kafka_exchange(host, port, 3, 4, body, timeout)
    reader.take(">i")  # throttle time
    brokers = reader.take(">i")
    if brokers < 1:
        raise ProbeFailed(f"Kafka at {host}:{port} reports no live broker yet")
    reader.take(">i")
    broker_host = reader.string()
    broker_port = reader.take(">i")
    return f"broker at {broker_host}:{broker_port}"


def kafka_group_coordinator(host: str, port: int, timeout: float = 5.0) -> str:
    """Send FindCoordinator v2 for a group and require a coordinator.

    A broker that has just started answers COORDINATOR_NOT_AVAILABLE until it has created and
    loaded __consumer_offsets (this request is what makes it create the topic): until then no
    consumer group can join or commit, and admin calls about groups fail.
    """
    body = _string("conductor-probe") + b"\x00"  # key, key type 0 = group
    reader = _kafka_exchange(host, port, 10, 2, body, timeout)
    reader.take(">i")  # throttle time
    error = reader.take(">h")
    message = reader.string()
    if error:
        raise ProbeFailed(
            f"Kafka at {host}:{port} cannot coordinate a consumer group yet (error {error}: {message})"
        )
    reader.take(">i")  # node id
    return f"group coordinator at {reader.string()}:{reader.take('>i')}"


def kafka_ready(host: str, port: int, timeout: float = 5.0) -> str:
    """A live broker that can also coordinate consumer groups: what conductor needs first."""
    broker = kafka_metadata(host, port, timeout)
    return f"{broker}, {kafka_group_coordinator(host, port, timeout)}"


def elasticsearch_health(url: str, timeout: float = 5.0) -> str:
    """Require cluster health yellow or green."""
    try:
        with urllib.request.urlopen(f"{url}/_cluster/health", timeout=timeout) as answer:
            health = json.load(answer)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise ProbeFailed(f"no cluster health from {url}: {exc}") from exc
    status = health.get("status")
    if status not in ("yellow", "green"):
        raise ProbeFailed(f"the cluster at {url} is {status}")
    return f"cluster {health.get('cluster_name')} {status}"


def _get_json(
    url: str, timeout: float, context: ssl.SSLContext | None = None, headers: dict[str, str] | None = None
) -> tuple[object, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as answer:
            return json.load(answer), dict(answer.headers)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise ProbeFailed(f"no answer to GET {url}: {exc}") from exc


_LABELS = {"elasticsearch": "Elasticsearch", "opensearch": "OpenSearch"}


def search_server(
    url: str,
    distribution: str,
    timeout: float = 5.0,
    context: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
) -> str:
    """Elasticsearch or OpenSearch: the expected one, with a cluster health of yellow or green.

    Elasticsearch says so in an X-Elastic-Product header; its integ-test-zip has no handler for
    GET / (405), so the version comes from GET /_nodes/_local. OpenSearch sends no such header;
    its GET / answers version.distribution "opensearch". With security on (https), `context` trusts
    its CA and `headers` carry the credentials."""
    health, answered = _get_json(f"{url}/_cluster/health", timeout, context, headers)
    if {k.lower(): v for k, v in answered.items()}.get("x-elastic-product") == "Elasticsearch":
        found = "elasticsearch"
    else:
        try:
            root, _ = _get_json(f"{url}/", timeout, context, headers)
            found = root["version"].get("distribution") or "elasticsearch"
        except (ProbeFailed, TypeError, KeyError, AttributeError):
            found = "unknown"
    nodes, _ = _get_json(f"{url}/_nodes/_local?filter_path=nodes.*.version", timeout, context, headers)
    try:
        number = next(iter(nodes["nodes"].values()))["version"]
    except (TypeError, KeyError, StopIteration, AttributeError):
        number = "?"
    if found != distribution:
        raise ProbeFailed(
            f"{url} is {_LABELS.get(found, found)} {number}, not {_LABELS.get(distribution, distribution)}"
        )
    status = health.get("status") if isinstance(health, dict) else None
    if status not in ("yellow", "green"):
        raise ProbeFailed(f"the cluster at {url} is {status}")
    return f"{_LABELS[found]} {number}, cluster {health.get('cluster_name')} {status}"


def schema_registry_subjects(url: str, timeout: float = 5.0) -> str:
    """GET {url}/subjects of the Confluent Schema Registry API must answer a JSON list."""
    try:
        with urllib.request.urlopen(f"{url}/subjects", timeout=timeout) as answer:
            subjects = json.load(answer)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise ProbeFailed(f"no list of subjects from {url}: {exc}") from exc
    if not isinstance(subjects, list):
        raise ProbeFailed(f"{url}/subjects answered {str(subjects)[:200]}, not a list")
    return f"Schema Registry API answered ({len(subjects)} subjects)"


_CQL_VERSION = 0x04
_OP_ERROR, _OP_STARTUP, _OP_READY, _OP_QUERY, _OP_RESULT = 0x00, 0x01, 0x02, 0x07, 0x08


def _cql_frame(opcode: int, body: bytes, stream: int) -> bytes:
    return struct.pack(">BBhBi", _CQL_VERSION, 0, stream, opcode, len(body)) + body


def _cql_exchange(sock: socket.socket, opcode: int, body: bytes, stream: int) -> tuple[int, bytes]:
    sock.sendall(_cql_frame(opcode, body, stream))
    _version, _flags, _stream, answer_opcode, length = struct.unpack(">BBhBi", _recv_exact(sock, 9))
    answer = _recv_exact(sock, length)
    if answer_opcode == _OP_ERROR:
        reader = _Reader(answer)
        code = reader.take(">i")
        raise ProbeFailed(f"CQL error 0x{code:04x}: {reader.string()}")
    return answer_opcode, answer


def cassandra_query(host: str, port: int, timeout: float = 5.0) -> str:
    """Run `SELECT release_version FROM system.local` over the native protocol v4."""
    startup = struct.pack(">h", 1) + _string("CQL_VERSION") + _string("3.0.0")
    query = b"SELECT release_version FROM system.local"
    query_body = struct.pack(">i", len(query)) + query + struct.pack(">hB", 0x0001, 0)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            opcode, _ = _cql_exchange(sock, _OP_STARTUP, startup, 1)
            if opcode != _OP_READY:
                raise ProbeFailed(f"CQL STARTUP answered with opcode {opcode}")
            opcode, answer = _cql_exchange(sock, _OP_QUERY, query_body, 2)
    except OSError as exc:
        raise ProbeFailed(f"no CQL answer from {host}:{port}: {exc}") from exc
    if opcode != _OP_RESULT:
        raise ProbeFailed(f"CQL QUERY answered with opcode {opcode}")
    return f"CQL answered ({_release_version(answer)})"


def _release_version(result: bytes) -> str:
    """Read the one text cell of a Rows result; metadata uses the global table spec."""
    reader = _Reader(result)
    if reader.take(">i") != 0x0002:  # kind: Rows
        return "no rows"
    flags = reader.take(">i")
    columns = reader.take(">i")
    if flags & 0x0002:  # has_more_pages: skip the paging state
        reader.string(">i")
    if flags & 0x0001:  # global table spec
        reader.string()
        reader.string()
    for _ in range(columns):
        if not flags & 0x0001:
            reader.string()
            reader.string()
        reader.string()  # column name
        reader.take(">h")  # type id (varchar)
    if reader.take(">i") < 1:
        return "no rows"
    return f"Cassandra {reader.string('>i')}"
