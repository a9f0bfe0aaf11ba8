"""The Elasticsearch sink against Elasticsearch with security on (CONDUCTOR_SECURE=1 compose/local
up elasticsearch): https with the servers' own CA, a user and password or an API key, and every
way signing in can go wrong stopping the start with its reason."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests
from support.records import record, route

from conductor.config import parse_config
from conductor.errors import ConfigError
from sinks.elasticsearch import ElasticsearchSink

pytestmark = pytest.mark.servers


def settings(secure: dict[str, str], **changes: str | None) -> dict[str, str]:
    host, port = secure["CONDUCTOR_ELASTICSEARCH_URL"].removeprefix("https://").split(":")
    given = {
        "name": "secure-es",
        "connector.class": "io.lenses.streamreactor.connect.elastic8.ElasticSinkConnector",
        "topics": "readings",
        "connect.elastic.protocol": "https",
        "connect.elastic.hosts": host,
        "connect.elastic.port": port,
        "connect.elastic.kcql": "INSERT INTO x SELECT * FROM readings",
        "connect.elastic.use.http.username": secure["CONDUCTOR_ELASTICSEARCH_USERNAME"],
        "connect.elastic.use.http.password": secure["CONDUCTOR_ELASTICSEARCH_PASSWORD"],
        "ssl.truststore.location": secure["CONDUCTOR_CA_FILE"],
        "ssl.truststore.type": "PEM",
        **changes,
    }
    return {key: value for key, value in given.items() if value is not None}


def sink_of(given: dict[str, str], kcql: str) -> ElasticsearchSink:
    config = parse_config({**given, "connect.elastic.kcql": kcql})
    r = route(kcql)
    return ElasticsearchSink(config.elastic, [r])


def call(secure: dict[str, str], method: str, path: str, body: Any = None) -> Any:
    answer = requests.request(
        method,
        secure["CONDUCTOR_ELASTICSEARCH_URL"] + path,
        json=body,
        auth=(secure["CONDUCTOR_ELASTICSEARCH_USERNAME"], secure["CONDUCTOR_ELASTICSEARCH_PASSWORD"]),
        verify=secure["CONDUCTOR_CA_FILE"],
        timeout=30,
    )
    assert answer.ok, answer.text
    return answer.json()


def count(secure: dict[str, str], index: str) -> int:
    call(secure, "POST", f"/{index}/_refresh")
    return call(secure, "GET", f"/{index}/_count")["count"]


def test_writes_over_https_with_a_user_and_with_an_api_key(secure: dict[str, str]) -> None:
    index = f"secure-{uuid.uuid4().hex[:10]}"
    kcql = f"INSERT INTO {index} SELECT * FROM readings PK n"
    sink = sink_of(settings(secure), kcql)
    sink.setup()
    try:
        assert sink.where.startswith("Elasticsearch at https://")
        assert sink.write([(record(n, {"n": n}), sink.routes[0]) for n in range(100)]) == []
    finally:
        sink.close()
    assert count(secure, index) == 100

    key = call(secure, "POST", "/_security/api_key", {"name": f"conductor-test-{index}"})["encoded"]
    by_key = settings(
        secure,
        **{"connect.elastic.use.http.username": None, "connect.elastic.use.http.password": None},
        **{"conductor.elastic.api.key": key},
    )
    sink = sink_of(by_key, kcql)
    sink.setup()
    try:
        assert sink.write([(record(n, {"n": n}), sink.routes[0]) for n in range(100, 150)]) == []
    finally:
        sink.close()
    assert count(secure, index) == 150
    call(secure, "DELETE", f"/{index}")


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"connect.elastic.use.http.password": "not-the-password"}, "refused the credentials"),
        (
            {
                "conductor.elastic.api.key": "bm90OmEta2V5",
                "connect.elastic.use.http.username": None,
                "connect.elastic.use.http.password": None,
            },
            "refused the credentials",
        ),
        ({"ssl.truststore.location": None, "ssl.truststore.type": None}, "the TLS handshake failed"),
        (
            {"ssl.truststore.location": "/nonexistent/ca.pem"},
            "its TLS files (CA /nonexistent/ca.pem) cannot be used",
        ),
    ],
    ids=["wrong-password", "unknown-api-key", "untrusted-certificate", "missing-ca-file"],
)
def test_a_start_that_cannot_sign_in_is_a_config_error_with_its_reason(
    secure: dict[str, str], changes: dict[str, str | None], says: str
) -> None:
    sink = sink_of(settings(secure, **changes), "INSERT INTO nowhere SELECT * FROM readings")
    with pytest.raises(ConfigError) as refused:
        sink.setup()
    sink.close()
    (problem,) = refused.value.problems
    assert says in problem, problem
    assert secure["CONDUCTOR_ELASTICSEARCH_PASSWORD"] not in problem
