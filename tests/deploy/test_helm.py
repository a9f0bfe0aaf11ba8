"""The Helm chart (deploy/helm/conductor): helm lint, helm template with the defaults and each
example of deploy/helm/examples/, every rendering decoded strictly into the Kubernetes API types
(deploy/helm/validate), and what the objects say: probes on /health, a pod that cannot write
its image nor run as root, selectors that select, and a connector config that conductor's own
loader takes without a problem, a warning or a key without effect, its secrets read from the
files the kubelet would mount.

helm and the validator come from deploy/helm/tools.sh (built into ~/.cache/conductor once; a
few minutes from nothing). Failing to install them fails the tests, unless the machine has no
network at all: then they are skipped with the reason.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.certs import make_certificates

from conductor.api.auth import Guard
from conductor.config import parse_config
from conductor.config.readers import parse_properties
from conductor.connector import build_connector

ROOT = Path(__file__).resolve().parents[2]
HELM = ROOT / "deploy" / "helm"
CHART = HELM / "conductor"
EXAMPLES = {path.stem: path for path in sorted((HELM / "examples").glob("*.yaml"))}
RENDERINGS = ["default", *EXAMPLES]
NAMESPACE = "pipelines"
CONFIG_FILE = "connector.properties"


@dataclass(frozen=True)
class Tools:
    helm: Path
    validate: Path


@pytest.fixture(scope="module")
def tools() -> Tools:
    started = time.monotonic()
    run = subprocess.run(
        ["bash", str(HELM / "tools.sh")],
        capture_output=True,
        text=True,
        timeout=1200,
        stdin=subprocess.DEVNULL,
    )
    if run.returncode != 0:
        offline = _offline()
        if offline:
            pytest.skip(f"deploy/helm/tools.sh could not install helm and the validator, and {offline}")
        pytest.fail(f"deploy/helm/tools.sh failed (exit {run.returncode}):\n{run.stderr}")
    paths = dict(line.split("=", 1) for line in run.stdout.splitlines() if "=" in line)
    if time.monotonic() - started > 5:
        print(f"deploy/helm/tools.sh: {time.monotonic() - started:.0f} s\n{run.stderr}")
    return Tools(Path(paths["helm"]), Path(paths["validate"]))


def _offline() -> str | None:
    """Why the Go module proxy cannot be reached at all (no name lookup, no connection), or None
    when it can, or when there is no Go to ask where it is (that is a failure, not a skip)."""
    go = shutil.which("go") or "/usr/local/go/bin/go"
    if not os.access(go, os.X_OK):
        return None
    proxies = subprocess.run([go, "env", "GOPROXY"], capture_output=True, text=True).stdout.strip()
    hosts = [urllib.parse.urlsplit(p).hostname for p in re.split("[,|]", proxies) if "://" in p]
    reasons = []
    for host in filter(None, hosts):
        try:
            socket.create_connection((host, 443), timeout=5).close()
            return None
        except OSError as error:
            reasons.append(f"the Go module proxy {host} cannot be reached ({error})")
    return "; ".join(reasons) or None


def helm(tools: Tools, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    run = subprocess.run([str(tools.helm), *args], capture_output=True, text=True, timeout=60)
    if check:
        assert run.returncode == 0, f"helm {' '.join(args)}:\n{run.stderr}"
    return run


def template(tools: Tools, *args: str, release: str = "pipeline") -> str:
    return helm(tools, "template", release, str(CHART), "--namespace", NAMESPACE, *args).stdout


def values_args(name: str) -> list[str]:
    return [] if name == "default" else ["-f", str(EXAMPLES[name])]


def validate(tools: Tools, manifests: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tools.validate)], input=manifests, capture_output=True, text=True, timeout=60)


class Rendering:
    """One `helm template`'s objects, by kind."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.objects = [doc for doc in yaml.safe_load_all(text) if doc]

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        (found,) = self.all(kind)
        return found

    @property
    def pod(self) -> dict[str, Any]:
        return self.one("StatefulSet")["spec"]["template"]

    @property
    def container(self) -> dict[str, Any]:
        (container,) = self.pod["spec"]["containers"]
        return container

    @property
    def env(self) -> dict[str, str]:
        return {var["name"]: var["value"] for var in self.container.get("env", []) if "value" in var}


@pytest.fixture(scope="module")
def rendered(tools: Tools) -> dict[str, Rendering]:
    return {
        name: Rendering(template(tools, *values_args(name), release=_release(name))) for name in RENDERINGS
    }


def _release(name: str) -> str:
    return "pipeline" if name == "default" else f"temperatures-{name}"


# -- helm lint and the strict validator -------------------------------------------------------


@pytest.mark.parametrize("name", RENDERINGS)
def test_lint(tools: Tools, name: str) -> None:
    run = helm(tools, "lint", "--strict", "--namespace", NAMESPACE, str(CHART), *values_args(name))
    assert "1 chart(s) linted, 0 chart(s) failed" in run.stdout


@pytest.mark.parametrize("name", RENDERINGS)
def test_rendering_decodes_strictly(tools: Tools, rendered: dict[str, Rendering], name: str) -> None:
    run = validate(tools, rendered[name].text)
    assert run.returncode == 0, run.stderr
    kinds = sorted({obj["kind"] for obj in rendered[name].objects})
    expected = {"ConfigMap", "Secret", "Service", "StatefulSet", "PodDisruptionBudget"}
    if name == "elasticsearch-sink":
        expected.add("ServiceMonitor")
    assert kinds == sorted(expected)
    assert len(run.stdout.splitlines()) == len(rendered[name].objects)


def _dump(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)


def _refusals() -> list[tuple[str, Any, str]]:
    """(what, how to spoil the rendering's objects, what the validator must say)."""

    def statefulset(objects: list[dict[str, Any]]) -> dict[str, Any]:
        return next(obj for obj in objects if obj["kind"] == "StatefulSet")

    def unknown_field(objects: list[dict[str, Any]]) -> None:
        statefulset(objects)["spec"]["replica"] = 3

    def misspelt_case(objects: list[dict[str, Any]]) -> None:
        container = statefulset(objects)["spec"]["template"]["spec"]["containers"][0]
        container["readinessProbe"]["httpGet"]["Path"] = container["readinessProbe"]["httpGet"].pop("path")

    def wrong_type(objects: list[dict[str, Any]]) -> None:
        statefulset(objects)["spec"]["replicas"] = "three"

    def bad_quantity(objects: list[dict[str, Any]]) -> None:
        container = statefulset(objects)["spec"]["template"]["spec"]["containers"][0]
        container["resources"]["limits"]["memory"] = "1 gigabyte"

    def unknown_monitor_field(objects: list[dict[str, Any]]) -> None:
        monitor = next(obj for obj in objects if obj["kind"] == "ServiceMonitor")
        monitor["spec"]["endpoints"][0]["intervall"] = "30s"

    def unknown_kind(objects: list[dict[str, Any]]) -> None:
        objects.append(
            {"apiVersion": "v1", "kind": "Pods", "metadata": {"name": "x", "namespace": NAMESPACE}}
        )

    def selector_misses_pods(objects: list[dict[str, Any]]) -> None:
        statefulset(objects)["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] = "other"

    def bad_name(objects: list[dict[str, Any]]) -> None:
        next(obj for obj in objects if obj["kind"] == "ConfigMap")["metadata"]["name"] = "Temperatures_ES"

    return [
        ("unknown field", unknown_field, 'unknown field "spec.replica"'),
        ("field in the wrong case", misspelt_case, "unknown field"),
        ("wrong type", wrong_type, "cannot unmarshal string"),
        ("bad quantity", bad_quantity, "quantities must match"),
        (
            "unknown ServiceMonitor field",
            unknown_monitor_field,
            'unknown field "spec.endpoints[0].intervall"',
        ),
        ("unknown kind", unknown_kind, 'no kind "Pods"'),
        (
            "selector that misses the pods",
            selector_misses_pods,
            "does not select spec.template.metadata.labels",
        ),
        ("invalid name", bad_name, "metadata.name: Invalid value"),
    ]


@pytest.mark.parametrize(("what", "spoil", "said"), _refusals(), ids=[r[0] for r in _refusals()])
def test_validator_refuses(
    tools: Tools, rendered: dict[str, Rendering], what: str, spoil: Any, said: str
) -> None:
    objects = yaml.safe_load_all(rendered["elasticsearch-sink"].text)
    objects = [obj for obj in objects if obj]
    assert validate(tools, _dump(objects)).returncode == 0  # the same objects, dumped again, pass
    spoil(objects)
    run = validate(tools, _dump(objects))
    assert run.returncode == 1, f"{what}: accepted\n{run.stdout}"
    assert said in run.stderr


# -- what the objects say ---------------------------------------------------------------------


@pytest.mark.parametrize("name", RENDERINGS)
def test_probes_on_health(rendered: dict[str, Rendering], name: str) -> None:
    container = rendered[name].container
    (port,) = container["ports"]
    assert port["name"] == "http"
    config = _properties(rendered[name])
    assert config["listeners"] == f"http://0.0.0.0:{port['containerPort']}"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http", "scheme": "HTTP"}, probe


@pytest.mark.parametrize("name", RENDERINGS)
def test_pod_cannot_write_its_image_nor_run_as_root(rendered: dict[str, Rendering], name: str) -> None:
    pod, container = rendered[name].pod["spec"], rendered[name].container
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    # Where conductor writes is an emptyDir: its state folder, TMPDIR and /tmp.
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    writable = {
        mount["mountPath"]
        for mount in container["volumeMounts"]
        if "emptyDir" in volumes[mount["name"]] and not mount.get("readOnly")
    }
    env = rendered[name].env
    assert {env["CONDUCTOR_STATE_DIR"], env["TMPDIR"], "/tmp"} <= writable
    assert "args" not in container and "command" not in container  # the image's `conductor start`
    assert int(env["CONDUCTOR_WORKERS"]) >= 1


@pytest.mark.parametrize("name", RENDERINGS)
def test_selectors_select_the_pods(rendered: dict[str, Rendering], name: str) -> None:
    r = rendered[name]
    labels = r.pod["metadata"]["labels"]
    statefulset = r.one("StatefulSet")
    service = r.one("Service")
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"].items() <= labels.items()
    assert r.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for monitor in r.all("ServiceMonitor"):
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        ports = {port["name"] for port in service["spec"]["ports"]}
        assert {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]} <= ports
    annotations = r.pod["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(r.container["ports"][0]["containerPort"])
    assert annotations["prometheus.io/path"] == "/metrics"


# -- the connector config, as conductor loads it in the pod ---------------------------------


@pytest.fixture(scope="module")
def outside_secrets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """The Secrets the examples mount but do not make (an operator's, or yours), by name."""
    certs = make_certificates(tmp_path_factory.mktemp("certs"))
    ca = certs.ca.read_text()
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="temperatures-aggregator" password="kafka-secret-1";'
    )
    return {
        "iot-es-elastic-user": {"elastic": "es-secret-1"},
        "iot-es-http-certs-public": {"ca.crt": ca, "tls.crt": ca},
        "temperatures-cassandra-credentials": {
            "cassandra.properties": "username=conductor\npassword=cass-secret-1\n"
        },
        "temperatures-aggregator": {"password": "kafka-secret-1", "sasl.jaas.config": jaas},
        "events-cluster-ca-cert": {"ca.crt": ca, "ca.p12": "binary"},
    }


def _properties(r: Rendering) -> dict[str, str]:
    text = r.one("ConfigMap")["data"][CONFIG_FILE]
    entries, warnings = parse_properties(text, CONFIG_FILE)
    assert not warnings
    return entries


def mount(r: Rendering, root: Path, outside: dict[str, dict[str, str]]) -> dict[str, Path]:
    """What the kubelet would mount for the container, under `root`: each ConfigMap and Secret
    volume as its files (a Secret the chart renders from its data, any other from `outside`).
    Returns {mountPath in the pod: folder here}."""
    secrets = {s["metadata"]["name"]: s.get("data", {}) for s in r.all("Secret")}
    config_maps = {c["metadata"]["name"]: c["data"] for c in r.all("ConfigMap")}
    volumes = {volume["name"]: volume for volume in r.pod["spec"]["volumes"]}
    mounted: dict[str, Path] = {}
    for index, volume_mount in enumerate(r.container["volumeMounts"]):
        volume = volumes[volume_mount["name"]]
        if "secret" in volume:
            name = volume["secret"]["secretName"]
            if name in secrets:
                files = {key: base64.b64decode(value).decode() for key, value in secrets[name].items()}
            else:
                assert name in outside, f"the Secret {name} is neither rendered nor given by the test"
                files = outside[name]
            items = volume["secret"].get("items")
        elif "configMap" in volume:
            files, items = config_maps[volume["configMap"]["name"]], volume["configMap"].get("items")
        else:
            continue
        if items:  # only these keys, at these paths; a missing key keeps the pod from starting
            files = {item["path"]: files[item["key"]] for item in items}
        folder = root / f"volume-{index}"
        folder.mkdir(parents=True)
        for path, content in files.items():
            (folder / path).write_text(content)
        mounted[volume_mount["mountPath"]] = folder
    return mounted


def load_in_pod(r: Rendering, root: Path, outside: dict[str, dict[str, str]]) -> Any:
    """The rendered config loaded as the pod's `conductor start` loads it (without servers): the
    file CONDUCTOR_CONFIG names, its ${directory:}/${file:} paths on the mounted volumes, its
    ${env:} from the container's env."""
    mounted = mount(r, root, outside)
    config_path = Path(r.env["CONDUCTOR_CONFIG"])
    assert str(config_path.parent) in mounted, f"{config_path} is on no mounted volume"
    text = (mounted[str(config_path.parent)] / config_path.name).read_text()
    raw, warnings = parse_properties(text, str(config_path))
    assert not warnings

    def here(value: str) -> str:
        for pod_path in sorted(mounted, key=len, reverse=True):
            value = value.replace(pod_path + "/", f"{mounted[pod_path]}/").replace(
                pod_path + ":", f"{mounted[pod_path]}:"
            )
        return value

    config = parse_config({key: here(value) for key, value in raw.items()}, str(config_path), environ=r.env)
    return build_connector(config)


@pytest.mark.parametrize("name", RENDERINGS)
def test_config_loads_in_the_pod(
    rendered: dict[str, Rendering], name: str, tmp_path: Path, outside_secrets: dict[str, dict[str, str]]
) -> None:
    r = rendered[name]
    connector = load_in_pod(r, tmp_path, outside_secrets)
    config = connector.config
    assert config.warnings == ()
    assert config.notices == ()
    assert config.group_id == f"connect-{config.name}"
    assert (config.rest.host, config.rest.port) == ("0.0.0.0", r.container["ports"][0]["containerPort"])
    token = config.rest.token.reveal()
    (rest_secret,) = [s for s in r.all("Secret") if s["metadata"]["name"].endswith("-rest")]
    assert token == base64.b64decode(rest_secret["data"]["token"]).decode()
    assert len(token) >= 16
    # /health is open for the probes, /metrics for the scrape annotations, commands take the token.
    guard = Guard({}, token, config.rest.open_reads)
    assert guard.allows("GET", "/health", None)
    assert guard.allows("GET", "/metrics", None)
    assert not guard.allows("PUT", f"/connectors/{config.name}/pause", None)
    assert guard.allows("PUT", f"/connectors/{config.name}/pause", f"Bearer {token}")
    expected = {
        "default": ("elasticsearch", "temperatures-es"),
        "elasticsearch-sink": ("elasticsearch", "temperatures-es"),
        "cassandra-sink": ("cassandra", "temperatures-cassandra"),
        "aggregator": ("aggregate", "temperatures-aggregator"),
    }[name]
    assert (config.sink, config.name) == expected


def test_example_secrets_reach_the_config(
    rendered: dict[str, Rendering], tmp_path: Path, outside_secrets: dict[str, dict[str, str]]
) -> None:
    es = load_in_pod(rendered["elasticsearch-sink"], tmp_path / "es", outside_secrets).config
    assert es.elastic.hosts == ("https://iot-es-http.elastic.svc:9200",)
    assert es.elastic.credentials is not None
    assert es.raw["connect.elastic.use.http.password"].reveal() == "es-secret-1"
    assert es.elastic.tls.enabled and es.elastic.tls.cafile
    cassandra = load_in_pod(rendered["cassandra-sink"], tmp_path / "cassandra", outside_secrets).config
    assert cassandra.raw["connect.cassandra.password"].reveal() == "cass-secret-1"
    assert cassandra.raw["connect.cassandra.contact.points"] == (
        "cassandra-0.cassandra.cassandra.svc,cassandra-1.cassandra.cassandra.svc"
    )
    aggregator = load_in_pod(rendered["aggregator"], tmp_path / "aggregator", outside_secrets)
    assert aggregator.config.kafka.security.protocol == "SASL_SSL"
    assert "kafka-secret-1" in aggregator.config.raw["sasl.jaas.config"].reveal()
    sql = aggregator.config.aggregate.sql
    assert sql.startswith("INSERT INTO temperatures.aggregated\n  SELECT home_id, COUNT(*)")
    assert sql.endswith("GROUP BY home_id EMIT FINAL")


# -- the chart's own choices ------------------------------------------------------------------


def test_properties_keep_every_value(tools: Tools, tmp_path: Path) -> None:
    """What values hold reaches conductor unchanged: escapes, blanks, numbers, lists, lines."""
    tricky = {
        "backslash": "C:\\temp\\new",
        "blanks": "  two leading, one trailing ",
        "hash": "#not a comment",
        "separators": "a=b: c",
        "unicode": "Zürich → 東京",
        "lines": "first\n  indented\n\ttabbed\nlast",
        "big": 3600000,
        "small": 0.25,
        "flag": True,
        "list": ["a", "b", "c"],
    }
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"config": {f"x.{key}": value for key, value in tricky.items()}}))
    text = Rendering(template(tools, "-f", str(values), "-s", "templates/configmap.yaml")).one("ConfigMap")
    entries, _ = parse_properties(text["data"][CONFIG_FILE])
    expected = {
        **{key: value for key, value in tricky.items() if isinstance(value, str)},
        "big": "3600000",
        "small": "0.25",
        "flag": "true",
        "list": "a,b,c",
    }
    assert {key: entries[f"x.{key}"] for key in tricky} == expected


def test_prometheus_without_open_reads_scrapes_with_the_token(tools: Tools, tmp_path: Path) -> None:
    r = Rendering(
        template(
            tools,
            "--set",
            "rest.openReads=false,metrics.podAnnotations=false,metrics.serviceMonitor.enabled=true",
            "--set",
            "rest.token.value=a-token-of-thirty-two-characters",
        )
    )
    assert validate(tools, r.text).returncode == 0
    assert not any(key.startswith("prometheus.io/") for key in r.pod["metadata"]["annotations"])
    (endpoint,) = r.one("ServiceMonitor")["spec"]["endpoints"]
    secret = r.one("Secret")
    assert endpoint["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": secret["metadata"]["name"], "key": "token"},
    }
    config = load_in_pod(r, tmp_path, {}).config
    guard = Guard({}, config.rest.token.reveal(), config.rest.open_reads)
    assert not guard.allows("GET", "/metrics", None)
    assert guard.allows("GET", "/metrics", "Bearer a-token-of-thirty-two-characters")
    assert guard.allows("GET", "/health", None)


def test_secret_files_made_by_the_chart(tools: Tools, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "secrets": {
                    "files": {"es-password": "es-secret-2\n", "kafka.properties": "password=kafka-2\n"}
                },
                "config": {
                    "connect.elastic.use.http.username": "conductor",
                    "connect.elastic.use.http.password": "${directory:/etc/conductor/secrets:es-password}",
                    "security.protocol": "SASL_PLAINTEXT",
                    "sasl.mechanism": "PLAIN",
                    "sasl.jaas.config": "org.apache.kafka.common.security.plain.PlainLoginModule required "
                    'username="conductor" password="${file:/etc/conductor/secrets/kafka.properties:password}";',
                },
            }
        )
    )
    r = Rendering(template(tools, "-f", str(values)))
    assert validate(tools, r.text).returncode == 0
    assert "es-secret-2" not in r.one("ConfigMap")["data"][CONFIG_FILE]
    config = load_in_pod(r, tmp_path / "pod", {}).config
    assert (config.warnings, config.notices) == ((), ())
    assert config.raw["connect.elastic.use.http.password"].reveal() == "es-secret-2"
    assert 'password="kafka-2";' in config.raw["sasl.jaas.config"].reveal()


def test_token_from_an_existing_secret(tools: Tools) -> None:
    r = Rendering(template(tools, "--set", "rest.token.existingSecret=ops-token,rest.token.key=conductor"))
    assert r.all("Secret") == []  # the chart makes none
    volume = next(v for v in r.pod["spec"]["volumes"] if v["name"] == "rest-token")
    assert volume["secret"]["secretName"] == "ops-token"
    assert volume["secret"]["items"] == [{"key": "conductor", "path": "token"}]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--set", "config.listeners=http://0.0.0.0:9000"], "config.listeners: the chart writes this key"),
        (["--set", "rest.openReads=false"], "metrics.podAnnotations: a Prometheus led by annotations"),
        (["--set", "rest.auth=basic"], 'rest.auth: "basic" is neither token nor none'),
        (["--set", "rest.token.value=short"], "at least 16 characters"),
        (["--set-json", 'config.nested={"a":1}'], "config.nested: a map"),
    ],
)
def test_chart_refuses(tools: Tools, args: list[str], said: str) -> None:
    run = helm(tools, "template", "pipeline", str(CHART), *args, check=False)
    assert run.returncode != 0
    assert said in run.stderr


def test_open_listener_only_when_asked(tools: Tools, tmp_path: Path) -> None:
    r = Rendering(template(tools, "--set", "rest.auth=none"))
    assert "rest-token" not in {v["name"] for v in r.pod["spec"]["volumes"]}
    config = load_in_pod(r, tmp_path, {}).config
    assert config.rest.allow_unauthenticated and config.rest.token is None


def test_every_value_is_documented() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = [
        f"line {number}: {line.strip()}"
        for number, line in enumerate(lines, 1)
        if re.match(r"\s*[\w.-]+:", line) and not lines[number - 2].lstrip().startswith("#")
    ]
    assert undocumented == []
