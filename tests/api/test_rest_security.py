"""conductor's REST server over https with authentication, on a running conductor: /health stays
open, everything else asks, and what changes anything refuses an unauthenticated call."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from support.certs import make_certificates
from support.pipeline import create_topic, unique, wait_for, write_config

pytestmark = pytest.mark.servers

TOKEN = "t0ken-0f-at-least-16-characters"
PASSWORD = "s3cret-of-the-admin"
IN_URL = "pa55-in-the-host-url"

MUTATING = [
    ("PUT", "/connectors/{name}/pause"),
    ("PUT", "/connectors/{name}/resume"),
    ("PUT", "/connectors/{name}/stop"),
    ("POST", "/connectors/{name}/restart"),
    ("POST", "/connectors/{name}/tasks/0/restart"),
    ("DELETE", "/connectors/{name}/offsets"),
    ("PATCH", "/connectors/{name}/offsets"),
    ("PUT", "/connector-plugins/ElasticSinkConnector/config/validate"),
]


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def secured(kafka, elasticsearch, conductors, tmp_path: Path):
    certs = make_certificates(tmp_path)
    keystore = tmp_path / "rest-keystore.pem"
    keystore.write_bytes(certs.cert.read_bytes() + certs.key.read_bytes())
    users = tmp_path / "users.properties"
    users.write_text(f"admin={PASSWORD}\nviewer=another-password\n")
    secrets = tmp_path / "secrets.properties"
    secrets.write_text(f"token={TOKEN}\nkey={certs.password}\n")
    topic = create_topic(kafka, partitions=1)
    name = unique("secured")
    config = write_config(
        tmp_path,
        name,
        topic,
        f"INSERT INTO {name} SELECT * FROM {topic}",
        elasticsearch,
        kafka,
        # a user and password inside the host URL (the server has security off and ignores them)
        connect__elastic__hosts=elasticsearch.replace("http://", f"http://someone:{IN_URL}@"),
        listeners="https://127.0.0.1:0",
        listeners__https__ssl__keystore__location=keystore,
        listeners__https__ssl__key__password=f"${{file:{secrets}:key}}",
        conductor__rest__users__file=users,
        conductor__rest__token=f"${{file:{secrets}:token}}",
    )
    conductor = conductors(config, workers=1)
    url = conductor.url()
    assert url.startswith("https://127.0.0.1:")
    return name, url, str(certs.ca), config, conductor.state_dir


def test_only_health_answers_without_credentials(secured) -> None:
    name, url, ca, _, _ = secured
    health = wait_for(lambda: requests.get(f"{url}/health", verify=ca, timeout=10), 30, "/health")
    assert health.status_code == 200
    for path in (
        "/",
        "/connectors",
        f"/connectors/{name}/status",
        f"/connectors/{name}/config",
        "/metrics",
        "/ui",
    ):
        refused = requests.get(url + path, verify=ca, timeout=10)
        assert refused.status_code == 401, (path, refused.text)
        assert refused.headers["WWW-Authenticate"].startswith('Basic realm="conductor"')
        assert refused.json()["error_code"] == 401
    for headers in (
        basic("admin", "wrong"),
        basic("nobody", PASSWORD),
        {"Authorization": "Bearer wrong-token"},
    ):
        assert requests.get(f"{url}/connectors", headers=headers, verify=ca, timeout=10).status_code == 401
    for headers in (
        basic("admin", PASSWORD),
        basic("viewer", "another-password"),
        {"Authorization": f"Bearer {TOKEN}"},
    ):
        assert requests.get(f"{url}/connectors", headers=headers, verify=ca, timeout=10).json() == [name]
    shown = requests.get(
        f"{url}/connectors/{name}/config", headers=basic("admin", PASSWORD), verify=ca, timeout=10
    )
    config = shown.json()
    # As Kafka Connect shows them: a value read from a reference shows the reference.
    assert config["conductor.rest.token"].startswith("${file:") and config["conductor.rest.token"].endswith(
        ":token}"
    )
    assert config["listeners.https.ssl.key.password"].endswith(":key}")
    assert "someone" not in config["connect.elastic.hosts"]
    assert TOKEN not in shown.text and PASSWORD not in shown.text and IN_URL not in shown.text


def test_what_changes_anything_refuses_an_unauthenticated_call(secured) -> None:
    name, url, ca, _, _ = secured
    admin = basic("admin", PASSWORD)
    wait_for(
        lambda: requests.get(f"{url}/connectors/{name}/status", headers=admin, verify=ca, timeout=10).json()[
            "tasks"
        ],
        60,
        "the task",
    )
    for method, path in MUTATING:
        answer = requests.request(method, url + path.format(name=name), json={}, verify=ca, timeout=10)
        assert answer.status_code == 401, (method, path, answer.status_code, answer.text)
    status = requests.get(f"{url}/connectors/{name}/status", headers=admin, verify=ca, timeout=10).json()
    assert status["connector"]["state"] == "RUNNING", "nothing was paused or stopped"
    paused = requests.put(f"{url}/connectors/{name}/pause", headers=admin, verify=ca, timeout=10)
    assert paused.status_code == 202
    wait_for(
        lambda: (
            requests.get(f"{url}/connectors/{name}/status", headers=admin, verify=ca, timeout=10).json()[
                "connector"
            ]["state"]
            == "PAUSED"
        ),
        30,
        "paused",
    )


def test_the_certificate_is_checked_and_plain_http_gets_nothing(secured) -> None:
    name, url, ca, config, state_dir = secured
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{url}/health", timeout=10)  # the system's CAs do not know the test CA
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url.replace("https://", "http://") + "/health", timeout=5)
    shown = subprocess.run(
        [sys.executable, "-m", "conductor.cli", "status", "--config", str(config), "--cafile", ca],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CONDUCTOR_STATE_DIR": str(state_dir)},
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[1].split()[:2] == [name, "elasticsearch"]
