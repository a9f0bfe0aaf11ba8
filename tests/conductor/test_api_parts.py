"""The REST server's parts that need no server: the listeners key, the command lines, the
offsets a PATCH carries, the state mapping, the router's answers."""

from __future__ import annotations

import pytest

from conductor.api.http import HttpError, Request, Router
from conductor.api.offsets import parse
from conductor.api.view import _task_state
from conductor.commands import Command
from conductor.config import parse_config
from conductor.errors import ConfigError

BASE = {
    "name": "x",
    "connector.class": "conductor.aggregate",
    "topics": "r",
    "conductor.aggregate.sql": "INSERT INTO o SELECT COUNT(*) FROM r",
}


@pytest.mark.parametrize(
    ("given", "host", "port"),
    [
        (None, "127.0.0.1", 8083),
        ("http://0.0.0.0:9000", "0.0.0.0", 9000),
        ("HTTP://:8090/", "0.0.0.0", 8090),
        ("http://[::1]:0", "::1", 0),
    ],
)
def test_listeners_is_one_http_listener(given, host, port):
    open_beyond = {"conductor.rest.allow.unauthenticated": "true"}  # 0.0.0.0 asks for it
    rest = parse_config({**BASE, **({"listeners": given} if given else {}), **open_beyond}).rest
    assert (rest.host, rest.port, rest.scheme) == (host, port, "http")


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("https://127.0.0.1:8443", "https needs listeners.https.ssl.keystore.location"),
        ("http://a:1,http://b:2", "one listener"),
        ("http://a:70000", "one listener"),
        ("a:8083", "one listener"),
    ],
)
def test_a_listener_conductor_cannot_serve_is_refused(given, says):
    with pytest.raises(ConfigError) as refused:
        parse_config({**BASE, "listeners": given})
    assert any(problem.startswith("listeners:") and says in problem for problem in refused.value.problems)


@pytest.mark.parametrize(
    "listener", ["http://0.0.0.0:8083", "http://:8083", "http://10.1.2.3:8083", "http://[::]:1"]
)
def test_listening_beyond_this_host_without_authentication_is_refused(listener):
    with pytest.raises(ConfigError) as refused:
        parse_config({**BASE, "listeners": listener})
    (problem,) = refused.value.problems
    assert problem == (
        f"listeners: {listener} answers beyond this host, and no one has to sign in: set "
        "conductor.rest.users.file or conductor.rest.token, or conductor.rest.allow.unauthenticated=true "
        "to serve it open"
    )
    token = "a-token-of-more-than-16-characters"
    rest = parse_config({**BASE, "listeners": listener, "conductor.rest.token": token}).rest
    assert rest.authenticates and rest.token.reveal() == token


def test_rest_security_keys_are_read_and_checked(tmp_path):
    users = tmp_path / "users.properties"
    users.write_text("admin=pw1\n# a comment\nviewer: pw2\n")
    https = {"listeners": "https://127.0.0.1:8443", "listeners.https.ssl.keystore.location": "/etc/k.pem"}
    rest = parse_config({**BASE, **https, "conductor.rest.users.file": str(users)}).rest
    assert rest.scheme == "https" and rest.certfile == "/etc/k.pem"
    assert {user: word.reveal() for user, word in rest.users.items()} == {"admin": "pw1", "viewer": "pw2"}
    assert "pw1" not in repr(rest)
    for extra, says in (
        ({"listeners.https.ssl.keystore.type": "PKCS12"}, "ssl.keystore.location: cannot read /etc/k.pem"),
        ({"listeners.https.ssl.client.auth": "required"}, "does not ask clients for certificates"),
        ({"conductor.rest.token": "short"}, "at least 16 characters"),
        ({"conductor.rest.users.file": str(tmp_path / "none")}, "cannot read"),
    ):
        with pytest.raises(ConfigError) as refused:
            parse_config({**BASE, **https, **extra})
        assert any(says in problem for problem in refused.value.problems), refused.value.problems


def test_the_guard_asks_for_credentials_except_on_health_and_open_reads():
    import base64

    from conductor.api.auth import Guard

    def basic(user, password):
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    guard = Guard({"admin": "pw"}, "a-token-of-more-than-16", open_reads=False)
    assert guard.allows("GET", "/health", None) and guard.allows("GET", "/health/", None)
    assert not guard.allows("GET", "/connectors", None)
    assert guard.allows("GET", "/connectors", basic("admin", "pw"))
    assert guard.allows("PUT", "/connectors/x/pause", "Bearer a-token-of-more-than-16")
    for wrong in (basic("admin", "no"), basic("other", "pw"), "Bearer nope", "Basic !!!", "Digest x", ""):
        assert not guard.allows("PUT", "/connectors/x/pause", wrong), wrong
    reads_open = Guard({"admin": "pw"}, None, open_reads=True)
    assert reads_open.allows("GET", "/connectors", None)
    for method in ("PUT", "POST", "PATCH", "DELETE"):
        assert not reads_open.allows(method, "/connectors/x/offsets", None)
        assert not reads_open.allows(method, "/connectors/x/offsets", "Bearer anything")  # no token set


def test_commands_travel_as_json_lines_and_bad_ones_are_named():
    command = Command("restart", (0, 2), only_failed=True)
    assert Command.decode(command.encode()) == command
    for line, says in (
        (b"nonsense", "not JSON"),
        (b'{"action": "explode"}', "no known action"),
        (b'{"action": "restart", "tasks": ["0"]}', "worker numbers"),
    ):
        with pytest.raises(ValueError, match=says):
            Command.decode(line)


def test_offsets_of_a_patch_in_kafka_connects_sink_shape():
    body = {
        "offsets": [
            {"partition": {"kafka_topic": "t", "kafka_partition": 0}, "offset": {"kafka_offset": 5}},
            {"partition": {"kafka_topic": "t", "kafka_partition": "1"}, "offset": None},
        ]
    }
    assert parse(body) == [(("t", 0), 5), (("t", 1), None)]
    for bad, says in (
        ({}, "need to be provided"),
        ({"offsets": [{"offset": {"kafka_offset": 1}}]}, "cannot be null or missing"),
        ({"offsets": [{"partition": {"kafka_topic": "t"}}]}, "'kafka_topic' and 'kafka_partition'"),
        ({"offsets": [{"partition": {"kafka_topic": "t", "kafka_partition": "x"}}]}, "Partition values"),
        (
            {"offsets": [{"partition": {"kafka_topic": "t", "kafka_partition": 0}, "offset": {"o": 1}}]},
            "either be null or contain the key 'kafka_offset'",
        ),
    ):
        with pytest.raises(HttpError, match=says) as refused:
            parse(bad)
        assert refused.value.status == 400


@pytest.mark.parametrize(
    ("slot", "worker", "state"),
    [
        ({"state": "running"}, {"state": "running"}, "RUNNING"),
        ({"state": "running"}, {"state": "waiting"}, "RUNNING"),
        ({"state": "running"}, {"state": "paused"}, "PAUSED"),
        ({"state": "running", "replacing": "on request"}, {"state": "running"}, "RESTARTING"),
        ({"state": "running"}, {"state": "failed"}, "FAILED"),
        ({"state": "starting", "restarts": 0, "last_exit": None}, {}, "UNASSIGNED"),
        ({"state": "starting", "restarts": 1, "last_exit": "killed by SIGKILL"}, {}, "RESTARTING"),
        ({"state": "backoff"}, {}, "RESTARTING"),
        ({"state": "failed"}, {}, "FAILED"),
        ({"state": "stopped"}, {}, "STOPPED"),
    ],
)
def test_slot_and_worker_states_read_as_kafka_connects_task_states(slot, worker, state):
    assert _task_state(slot, worker) == state


def test_the_router_answers_404_and_405_as_kafka_connect_does():
    router = Router()
    router.add("GET", "/connectors/{name}", lambda request: request.params["name"])
    assert router.handle(Request("GET", "/connectors/a%20b", {}, b"")) == "a b"
    for method, path, status in (("GET", "/nowhere", 404), ("DELETE", "/connectors/a", 405)):
        with pytest.raises(HttpError) as refused:
            router.handle(Request(method, path, {}, b""))
        assert refused.value.status == status
