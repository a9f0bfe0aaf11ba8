"""The Schema Registry client against the real registry (compose/local up schema-registry):
schemas by id, kept once fetched, an unknown id as the record's error, a registry that cannot
be reached as an outage, and the basic-auth header it sends (to a scripted HTTP server: a
healthy registry here runs without authentication)."""

from __future__ import annotations

import base64
import http.server
import os
import threading
import uuid

import orjson
import pytest
from support.registry import register

from conductor.registry import RegistryUnavailable, SchemaRegistry, UnknownSchema

pytestmark = pytest.mark.servers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
URL = f"http://127.0.0.1:{os.environ.get('CONDUCTOR_SCHEMA_REGISTRY_PORT', '18081')}/apis/ccompat/v7"
AVRO = {"type": "record", "name": "Reading", "fields": [{"name": "celsius", "type": "double"}]}


@pytest.fixture
def registry(schema_registry: str) -> str:
    return schema_registry


def test_a_schema_by_id_is_fetched_once_and_kept(registry):
    schema_id = register(registry, f"readings-{uuid.uuid4().hex[:8]}-value", AVRO)
    client = SchemaRegistry(registry)
    found = client.schema(schema_id)
    assert found.schema_type == "AVRO" and orjson.loads(found.text) == AVRO
    # Kept: the same answer once the registry is unreachable (another client on a dead port
    # shares nothing, so point this one elsewhere).
    client.url = "http://127.0.0.1:1"
    assert client.schema(schema_id) is found
    with pytest.raises(RegistryUnavailable, match="cannot be reached"):
        client.schema(schema_id + 10_000)


def test_other_schema_types_carry_their_type(registry):
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"celsius": {"type": "number"}},
    }
    json_id = register(registry, f"json-{uuid.uuid4().hex[:8]}-value", schema, "JSON")
    assert SchemaRegistry(registry).schema(json_id).schema_type == "JSON"


def test_an_unknown_id_is_the_records_error(registry):
    with pytest.raises(UnknownSchema, match="has no schema id 987654"):
        SchemaRegistry(registry).schema(987654)


def test_basic_auth_is_sent_and_a_refusal_named():
    """A scripted server: the registry here runs without authentication, and a registry that
    refuses credentials cannot be made from a healthy one."""
    seen: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            body = b'{"error_code": 40101, "message": "Unauthorized"}'
            self.send_response(401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = SchemaRegistry(f"http://127.0.0.1:{server.server_port}", user_info="reader:s3cret")
        with pytest.raises(RegistryUnavailable, match="refused the credentials"):
            client.schema(1)
    finally:
        server.shutdown()
    assert seen == ["Basic " + base64.b64encode(b"reader:s3cret").decode()]
