"""`compose/local up schema-registry`: a real Apicurio Registry that speaks the Confluent Schema
Registry API at the URL `compose/local env` exports. Started only when named, stopped at the end
unless it was already running."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.servers

LAUNCHER = Path(__file__).resolve().parents[2] / "compose" / "local"
CONFLUENT_JSON = {"Content-Type": "application/vnd.schemaregistry.v1+json"}


def _launcher(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(LAUNCHER), *arguments], capture_output=True, text=True, timeout=600
    )


def _answers(url: str) -> bool:
    try:
        return isinstance(requests.get(f"{url}/subjects", timeout=5).json(), list)
    except (requests.RequestException, ValueError):
        return False


@pytest.fixture(scope="module")
def registry() -> str:
    url = json.loads(_launcher("env", "--json").stdout)["CONDUCTOR_SCHEMA_REGISTRY_URL"]
    was_running = _answers(url)
    if not was_running:
        started = _launcher("up", "schema-registry")
        assert started.returncode == 0, started.stdout + started.stderr
        assert "schema-registry ready: Schema Registry API answered" in started.stdout
    try:
        yield url
    finally:
        if not was_running:
            stopped = _launcher("down", "schema-registry")
            assert stopped.returncode == 0, stopped.stdout + stopped.stderr
            assert not _answers(url)


def _register(url: str, subject: str, schema: str, schema_type: str | None = None) -> requests.Response:
    body = {"schema": schema} | ({"schemaType": schema_type} if schema_type else {})
    return requests.post(f"{url}/subjects/{subject}/versions", json=body, headers=CONFLUENT_JSON, timeout=10)


def _avro(*fields: dict) -> str:
    return json.dumps({"type": "record", "name": "Reading", "namespace": "conductor", "fields": list(fields)})


def test_env_exports_the_url_and_it_answers(registry: str) -> None:
    exports = _launcher("env").stdout.splitlines()
    assert f"export CONDUCTOR_SCHEMA_REGISTRY_URL={registry}" in exports
    assert registry.startswith("http://127.0.0.1:") and registry.endswith("/apis/ccompat/v7")
    answer = requests.get(f"{registry}/subjects", timeout=5)
    assert answer.status_code == 200 and isinstance(answer.json(), list)
    status = _launcher("status", "schema-registry")
    assert status.returncode == 0, status.stdout
    assert "Schema Registry API answered" in status.stdout


def test_avro_versions_are_registered_read_back_by_id_and_checked_for_compatibility(registry: str) -> None:
    subject = f"readings-{uuid.uuid4().hex[:8]}-value"
    first = _avro({"name": "sensor", "type": "string"}, {"name": "value", "type": "double"})
    registered = _register(registry, subject, first)
    assert registered.status_code == 200, registered.text
    first_id = registered.json()["id"]

    by_id = requests.get(f"{registry}/schemas/ids/{first_id}", timeout=5)
    assert by_id.status_code == 200, by_id.text
    assert json.loads(by_id.json()["schema"]) == json.loads(first)
    assert by_id.json().get("schemaType", "AVRO") == "AVRO"

    # A field with a default: readers of the new version still read the old records (BACKWARD).
    second = _avro(
        {"name": "sensor", "type": "string"},
        {"name": "value", "type": "double"},
        {"name": "unit", "type": ["null", "string"], "default": None},
    )
    registered = _register(registry, subject, second, "AVRO")
    assert registered.status_code == 200, registered.text
    second_id = registered.json()["id"]
    assert second_id != first_id
    assert requests.get(f"{registry}/subjects/{subject}/versions", timeout=5).json() == [1, 2]
    latest = requests.get(f"{registry}/subjects/{subject}/versions/latest", timeout=5).json()
    assert (latest["version"], latest["id"]) == (2, second_id)
    assert json.loads(latest["schema"]) == json.loads(second)
    assert subject in requests.get(f"{registry}/subjects", timeout=5).json()

    # As in Confluent's registry, BACKWARD is the default: a changed field type is refused.
    incompatible = _avro({"name": "sensor", "type": "string"}, {"name": "value", "type": "string"})
    refused = _register(registry, subject, incompatible)
    assert refused.status_code == 409, refused.text
    assert requests.get(f"{registry}/subjects/{subject}/versions", timeout=5).json() == [1, 2]


@pytest.mark.parametrize(
    ("schema_type", "schema"),
    [
        (
            "PROTOBUF",
            'syntax = "proto3";\npackage conductor;\n\nmessage Reading {\n  string sensor = 1;\n  double value = 2;\n}\n',
        ),
        (
            "JSON",
            json.dumps(
                {
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "type": "object",
                    "properties": {"sensor": {"type": "string"}, "value": {"type": "number"}},
                    "required": ["sensor"],
                }
            ),
        ),
    ],
)
def test_protobuf_and_json_schemas_are_registered_with_their_type(
    registry: str, schema_type: str, schema: str
) -> None:
    subject = f"readings-{schema_type.lower()}-{uuid.uuid4().hex[:8]}-value"
    registered = _register(registry, subject, schema, schema_type)
    assert registered.status_code == 200, registered.text
    by_id = requests.get(f"{registry}/schemas/ids/{registered.json()['id']}", timeout=5).json()
    assert by_id["schemaType"] == schema_type
    if schema_type == "JSON":
        assert json.loads(by_id["schema"]) == json.loads(schema)
    else:
        assert "message Reading" in by_id["schema"]
    versions = requests.get(f"{registry}/subjects/{subject}/versions", timeout=5).json()
    assert versions == [1]


def test_up_without_names_leaves_the_registry_out_and_down_without_names_takes_it_in() -> None:
    loader = importlib.machinery.SourceFileLoader("compose_local", str(LAUNCHER))
    spec = importlib.util.spec_from_loader("compose_local", loader)
    launcher = importlib.util.module_from_spec(spec)
    loader.exec_module(launcher)
    assert [server.name for server in launcher.selected([])] == ["kafka", "elasticsearch", "cassandra"]
    assert "schema-registry" in [server.name for server in launcher.selected([], with_optional=True)]
