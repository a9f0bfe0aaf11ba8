"""What each server is: where it comes from on Maven Central, how it is configured and started,
and how to tell it answers. compose/local does the fetching, starting and stopping."""

from __future__ import annotations

import base64
import os
import shutil
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import probes

COMPOSE_DIR = Path(__file__).resolve().parent

KAFKA_VERSION = os.environ.get("CONDUCTOR_KAFKA_VERSION", "4.1.1")
# 9.x (e.g. 9.5.3, Java 21+) comes from the same coordinates; this mirror has no checksum for it:
# mvn warns, and compose/local says the download is unverified.
ELASTICSEARCH_VERSION = os.environ.get("CONDUCTOR_ELASTICSEARCH_VERSION", "8.19.4")
CASSANDRA_VERSION = os.environ.get("CONDUCTOR_CASSANDRA_VERSION", "5.0.6")
# Apicurio Registry 3.0.9 runs on Java 17; 3.3's classes need Java 21 (compose/local finds one).
SCHEMA_REGISTRY_VERSION = os.environ.get("CONDUCTOR_SCHEMA_REGISTRY_VERSION", "3.0.9")
# Only when named: `compose/local up opensearch`. 2.19.6 runs on Java 11 to 21, 3.x on 21+.
OPENSEARCH_VERSION = os.environ.get("CONDUCTOR_OPENSEARCH_VERSION", "3.6.0")
# Kafka 4 logs through SLF4J 1.7; this binds it to log4j2 so the broker writes a log file.
LOG4J_VERSION = "2.24.3"


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def major(version: str) -> int:
    """8 of "8.19.4"; 0 when the version does not start with a number."""
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def _minor(version: str) -> tuple[int, int]:
    parts = [*version.split("."), "0"]
    return major(version), int(parts[1]) if parts[1].isdigit() else 0


def java_range(name: str, version: str) -> tuple[int, int | None]:
    """The Java major versions a server's version runs on: (lowest, highest or None), inclusive."""
    if name == "elasticsearch":
        # 9.x: class files of Java 21 and a launcher that checks it. 8.x: 17 and newer.
        return (21, None) if major(version) >= 9 else (17, None)
    if name == "opensearch":
        # 3.x: "OpenSearch requires Java 21". 2.x checks for 11, and its jvm.options still turn the
        # Security Manager on, which Java 24 removed (JEP 486).
        return (21, None) if major(version) >= 3 else (11, 21)
    if name == "cassandra":
        return (17, 17)  # the JVM options are Cassandra 5.0's for 17 (cassandra/jvm17-server.options)
    if name == "schema-registry":
        # Apicurio 3.0.x runs on 17; 3.3's classes need 21 (3.1 and 3.2 not checked: 21 runs them all).
        return (17, None) if _minor(version) <= (3, 0) else (21, None)
    return (17, None)  # Kafka 4


def _versioned_home(name: str, version: str, plain_major: int | None = None) -> str:
    """The run folder of a server whose data a newer major rewrites for good (Elasticsearch,
    OpenSearch): one folder a major version, so 8 and 9 never share a data folder or a copied
    config. `plain_major` keeps the folder it always had (Elasticsearch 8: compose/.run/elasticsearch)."""
    return name if major(version) == plain_major else f"{name}-{major(version)}"


@dataclass(frozen=True)
class Paths:
    """Where one server keeps its installation (shared cache) and its state (run folder)."""

    install: Path
    home: Path  # run_dir/<home_name>: config, data, logs, pid file, started.json

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def pid_file(self) -> Path:
        return self.home / "pid"

    @property
    def console_log(self) -> Path:
        return self.logs / "console.log"


@dataclass(frozen=True)
class Server:
    name: str
    version: str
    ports: dict[str, int]
    heap: str
    main_log: str  # relative to the logs folder: the file to read when it does not come up
    # Maven coordinates: a list of jars resolved with their dependencies, or one zip or tar.gz
    # to unpack.
    artifacts: tuple[str, ...] = ()
    archive_artifact: str | None = None
    start_timeout: float = 180.0
    prepare: Callable[[Server, Paths], None] = field(default=lambda server, paths: None)
    command: Callable[[Server, Paths, str], list[str]] = field(default=lambda s, p, j: [])
    environment: Callable[[Server, Paths, str], dict[str, str]] = field(
        default=lambda server, paths, java_home: {}
    )
    probe: Callable[[Server], str] = field(default=lambda server: "")
    # A one-off command to run before the first start (Kafka formats its KRaft storage).
    init_command: Callable[[Server, Paths, str], list[str] | None] = field(
        default=lambda server, paths, java: None
    )
    # Elasticsearch daemonizes itself and writes its own pid file.
    self_daemonizing: bool = False
    # Started only when named: `compose/local up` without names leaves it out (`down` stops it).
    optional: bool = False
    # The Java major versions it runs on, inclusive (None: no upper bound), from java_range().
    # compose/local picks the lowest installed Java in the range, or the one
    # CONDUCTOR_<NAME>_JAVA_HOME names.
    java: tuple[int, int | None] = (17, None)
    # The folder under the run dir; the name when empty. Servers of one name but another major
    # version get another folder (see _versioned_home), and share the ports.
    home_name: str = ""
    # The address it listens on (every port) and that its probe asks; Kafka advertises it too
    # (compose/hosts.py binds servers to another address).
    host: str = "127.0.0.1"

    @property
    def port(self) -> int:
        return self.ports["port"]

    @property
    def run_name(self) -> str:
        return self.home_name or self.name

    @property
    def java_home_variable(self) -> str:
        """The variable that names this server's JDK (it wins over CONDUCTOR_JAVA_HOME)."""
        return f"CONDUCTOR_{self.name.upper().replace('-', '_')}_JAVA_HOME"

    @property
    def java_needed(self) -> str:
        lowest, highest = self.java
        if highest is None:
            return f"Java {lowest} or newer"
        if highest == lowest:
            return f"Java {lowest}"
        return f"Java {lowest} to {highest}"

    def install_dir(self, cache: Path) -> Path:
        return cache / f"{self.name}-{self.version}"


def _render(template: str, target: Path, **values: object) -> None:
    text = (COMPOSE_DIR / template).read_text()
    target.write_text(string.Template(text).substitute({k: str(v) for k, v in values.items()}))


# -- Kafka ---------------------------------------------------------------------------------


def _kafka_prepare(server: Server, paths: Paths) -> None:
    _render(
        "kafka/server.properties",
        paths.home / "server.properties",
        port=server.port,
        controller_port=server.ports["controller"],
        data_dir=paths.data,
    )
    _render("kafka/log4j2.properties", paths.home / "log4j2.properties", log_dir=paths.logs)


def _kafka_format_command(server: Server, paths: Paths, java: str) -> list[str] | None:
    """KRaft needs its storage formatted once; None when it already is."""
    if (paths.data / "meta.properties").exists():
        return None
    return [
        java,
        "-cp",
        str(paths.install / "lib" / "*"),
        "kafka.tools.StorageTool",
        "format",
        "-t",
        _cluster_id(),
        "-c",
        str(paths.home / "server.properties"),
    ]


def _cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, base64url without padding (22 characters). Never one
    that starts with '-' (1 in 64 would): the storage tool takes it for an option and fails, so
    Kafka's own Uuid.randomUuid() draws again too."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _kafka_command(server: Server, paths: Paths, java: str) -> list[str]:
    return [
        java,
        f"-Xms{server.heap}",
        f"-Xmx{server.heap}",
        "-XX:+UseG1GC",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={paths.home / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={paths.logs}",
        "-cp",
        str(paths.install / "lib" / "*"),
        "kafka.Kafka",
        str(paths.home / "server.properties"),
    ]


def _kafka_probe(server: Server) -> str:
    return probes.kafka_ready(server.host, server.port)


# -- Elasticsearch and OpenSearch -----------------------------------------------------------
# OpenSearch is a fork of Elasticsearch 7.10: the same launcher flags and settings, other names for
# the environment variables, no x-pack.


def _search_prepare(server: Server, paths: Paths) -> None:
    # The server writes its keystore into the config folder, so each run folder gets its own copy;
    # copied again when the version changes (8.19.4 to 8.19.21 in one folder: the new jvm.options).
    # A config folder without the marker was copied by an older compose/local: it is kept.
    config = paths.home / "config"
    marker = config / ".copied-from"
    if marker.exists() and marker.read_text().strip() != server.version:
        shutil.rmtree(config)
    if not config.exists():
        source = paths.install / "config"
        config.mkdir()
        for item in source.rglob("*"):
            target = config / item.relative_to(source)
            if item.is_dir():
                target.mkdir(exist_ok=True)
            else:
                target.write_bytes(item.read_bytes())
        marker.write_text(f"{server.version}\n")
    if server.name == "opensearch":
        _opensearch_jvm_paths(server, paths)
    (paths.home / "tmp").mkdir(exist_ok=True)


def _opensearch_jvm_paths(server: Server, paths: Paths) -> None:
    """bin/opensearch runs Java in the installation folder (Elasticsearch in its logs folder), so the
    relative GC log, heap dump and error file of jvm.options would land in the shared download
    cache: they go to this run folder instead."""
    options = paths.home / "config" / "jvm.options"
    text = options.read_text()
    fixed = (
        text.replace("file=logs/gc.log", f"file={paths.logs}/gc.log")
        .replace("-XX:HeapDumpPath=data", f"-XX:HeapDumpPath={paths.data}")
        .replace("-XX:ErrorFile=logs/", f"-XX:ErrorFile={paths.logs}/")
    )
    if fixed != text:
        options.write_text(fixed)


def _search_command(server: Server, paths: Paths, java: str) -> list[str]:
    opensearch = server.name == "opensearch"
    launcher = paths.install / "bin" / ("opensearch" if opensearch else "elasticsearch")
    command = [str(launcher), "-d", "-p", str(paths.pid_file)]
    settings: dict[str, object] = {
        "cluster.name": "conductor",
        "node.name": "conductor-local",
        "discovery.type": "single-node",
        "network.host": server.host,
        "http.port": server.port,
        "transport.port": server.ports["transport"],
        "path.data": paths.data,
        "path.logs": paths.logs,
        # Disk-full watermarks would turn a busy shared disk into read-only test indexes.
        "cluster.routing.allocation.disk.threshold_enabled": "false",
        "action.destructive_requires_name": "false",
    }
    if not opensearch:
        settings["xpack.security.enabled"] = (
            "false"  # the integ-test-zips of OpenSearch have no security plugin
        )
    command += [f"-E{key}={value}" for key, value in settings.items()]
    if os.geteuid() == 0:
        # Both refuse to run as root. A user namespace that maps root to an ordinary uid
        # satisfies them while the files stay root's (no system user to create).
        command = ["unshare", "--map-user=1000", "--map-group=1000", *command]
    return command


def _search_environment(server: Server, paths: Paths, java_home: str) -> dict[str, str]:
    prefix = "OPENSEARCH" if server.name == "opensearch" else "ES"
    return {
        f"{prefix}_JAVA_HOME": java_home,
        f"{prefix}_PATH_CONF": str(paths.home / "config"),
        f"{prefix}_TMPDIR": str(paths.home / "tmp"),
        f"{prefix}_JAVA_OPTS": f"-Xms{server.heap} -Xmx{server.heap}",
    }


def _elasticsearch_probe(server: Server) -> str:
    return probes.search_server(f"http://{server.host}:{server.port}", "elasticsearch")


def _opensearch_probe(server: Server) -> str:
    return probes.search_server(f"http://{server.host}:{server.port}", "opensearch")


# -- Cassandra -----------------------------------------------------------------------------


def _cassandra_prepare(server: Server, paths: Paths) -> None:
    _render(
        "cassandra/cassandra.yaml",
        paths.home / "cassandra.yaml",
        data_dir=paths.data,
        port=server.port,
        storage_port=server.ports["storage"],
    )
    _render("cassandra/logback.xml", paths.home / "logback.xml", log_dir=paths.logs)


def _cassandra_command(server: Server, paths: Paths, java: str) -> list[str]:
    options = [
        line.strip()
        for line in (COMPOSE_DIR / "cassandra" / "jvm17-server.options").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    young = "256m"
    return [
        java,
        f"-Xms{server.heap}",
        f"-Xmx{server.heap}",
        f"-Xmn{young}",
        *options,
        f"-Dcassandra.config=file://{paths.home / 'cassandra.yaml'}",
        f"-Dlogback.configurationFile=file://{paths.home / 'logback.xml'}",
        f"-Dcassandra.logdir={paths.logs}",
        f"-Dcassandra.storagedir={paths.data}",
        f"-Dcassandra.jmx.local.port={server.ports['jmx']}",
        "-Dcassandra-foreground=yes",
        "-cp",
        str(paths.install / "lib" / "*"),
        "org.apache.cassandra.service.CassandraDaemon",
    ]


def _cassandra_probe(server: Server) -> str:
    return probes.cassandra_query("127.0.0.1", server.port)


# -- Schema Registry (Apicurio, Confluent-compatible API) --------------------------------------


def _schema_registry_prepare(server: Server, paths: Paths) -> None:
    (paths.home / "tmp").mkdir(exist_ok=True)
    paths.data.mkdir(parents=True, exist_ok=True)


def _schema_registry_command(server: Server, paths: Paths, java: str) -> list[str]:
    # 3.0 ships a legacy Quarkus jar (…-runner.jar beside lib/), later versions the fast-jar layout.
    runners = sorted(paths.install.glob("*-runner.jar"))
    jar = runners[0] if runners else paths.install / "quarkus-run.jar"
    settings = {
        "quarkus.http.host": "127.0.0.1",
        "quarkus.http.port": server.port,
        # An H2 database in a file under the run folder (Apicurio's default is in memory): the
        # schemas and their ids outlive a restart, as they do in Confluent's registry (which
        # keeps them in Kafka); a test stops the registry mid-run and starts it again.
        "apicurio.storage.kind": "sql",
        "apicurio.storage.sql.kind": "h2",
        "apicurio.datasource.url": f"jdbc:h2:file:{paths.data / 'registry'}",
        # Confluent's Schema Registry checks BACKWARD compatibility unless told otherwise;
        # Apicurio checks nothing by default.
        "apicurio.rules.global.compatibility": "BACKWARD",
    }
    return [
        java,
        f"-Xms{server.heap}",
        f"-Xmx{server.heap}",
        "-XX:+ExitOnOutOfMemoryError",
        f"-Djava.io.tmpdir={paths.home / 'tmp'}",
        *(f"-D{key}={value}" for key, value in settings.items()),
        "-jar",
        str(jar),
    ]


def _schema_registry_url(server: Server) -> str:
    """What a Confluent-API client takes as schema.registry.url."""
    return f"http://127.0.0.1:{server.port}/apis/ccompat/v7"


def _schema_registry_probe(server: Server) -> str:
    return probes.schema_registry_subjects(_schema_registry_url(server))


KAFKA = Server(
    name="kafka",
    version=KAFKA_VERSION,
    ports={
        "port": _port("CONDUCTOR_KAFKA_PORT", 19092),
        "controller": _port("CONDUCTOR_KAFKA_CONTROLLER_PORT", 19093),
    },
    heap=os.environ.get("CONDUCTOR_KAFKA_HEAP", "512m"),
    main_log="server.log",
    artifacts=(
        f"org.apache.kafka:kafka_2.13:{KAFKA_VERSION}",
        f"org.apache.logging.log4j:log4j-core:{LOG4J_VERSION}",
        f"org.apache.logging.log4j:log4j-slf4j-impl:{LOG4J_VERSION}",
    ),
    prepare=_kafka_prepare,
    command=_kafka_command,
    init_command=_kafka_format_command,
    probe=_kafka_probe,
    java=java_range("kafka", KAFKA_VERSION),
)

ELASTICSEARCH = Server(
    name="elasticsearch",
    version=ELASTICSEARCH_VERSION,
    ports={
        "port": _port("CONDUCTOR_ELASTICSEARCH_PORT", 19200),
        "transport": _port("CONDUCTOR_ELASTICSEARCH_TRANSPORT_PORT", 19300),
    },
    heap=os.environ.get("CONDUCTOR_ELASTICSEARCH_HEAP", "1g"),
    main_log="conductor.log",
    archive_artifact=f"org.elasticsearch.distribution.integ-test-zip:elasticsearch:{ELASTICSEARCH_VERSION}:zip",
    prepare=_search_prepare,
    command=_search_command,
    environment=_search_environment,
    probe=_elasticsearch_probe,
    self_daemonizing=True,
    java=java_range("elasticsearch", ELASTICSEARCH_VERSION),
    home_name=_versioned_home("elasticsearch", ELASTICSEARCH_VERSION, plain_major=8),
)

CASSANDRA = Server(
    name="cassandra",
    version=CASSANDRA_VERSION,
    ports={
        "port": _port("CONDUCTOR_CASSANDRA_PORT", 19042),
        "storage": _port("CONDUCTOR_CASSANDRA_STORAGE_PORT", 17000),
        "jmx": _port("CONDUCTOR_CASSANDRA_JMX_PORT", 17199),
    },
    heap=os.environ.get("CONDUCTOR_CASSANDRA_HEAP", "1g"),
    main_log="system.log",
    artifacts=(f"org.apache.cassandra:cassandra-all:{CASSANDRA_VERSION}",),
    prepare=_cassandra_prepare,
    command=_cassandra_command,
    probe=_cassandra_probe,
    java=java_range("cassandra", CASSANDRA_VERSION),
)

SCHEMA_REGISTRY = Server(
    name="schema-registry",
    version=SCHEMA_REGISTRY_VERSION,
    ports={"port": _port("CONDUCTOR_SCHEMA_REGISTRY_PORT", 18081)},
    heap=os.environ.get("CONDUCTOR_SCHEMA_REGISTRY_HEAP", "256m"),
    main_log="console.log",
    archive_artifact=f"io.apicurio:apicurio-registry-app:{SCHEMA_REGISTRY_VERSION}:tar.gz:all",
    start_timeout=120.0,
    prepare=_schema_registry_prepare,
    command=_schema_registry_command,
    probe=_schema_registry_probe,
    optional=True,
    java=java_range("schema-registry", SCHEMA_REGISTRY_VERSION),
)

OPENSEARCH = Server(
    name="opensearch",
    version=OPENSEARCH_VERSION,
    ports={
        "port": _port("CONDUCTOR_OPENSEARCH_PORT", 19201),
        "transport": _port("CONDUCTOR_OPENSEARCH_TRANSPORT_PORT", 19301),
    },
    heap=os.environ.get("CONDUCTOR_OPENSEARCH_HEAP", "512m"),
    main_log="conductor.log",
    archive_artifact=f"org.opensearch.distribution.integ-test-zip:opensearch:{OPENSEARCH_VERSION}:zip",
    prepare=_search_prepare,
    command=_search_command,
    environment=_search_environment,
    probe=_opensearch_probe,
    self_daemonizing=True,
    optional=True,
    java=java_range("opensearch", OPENSEARCH_VERSION),
    home_name=_versioned_home("opensearch", OPENSEARCH_VERSION),
)

SERVERS = {server.name: server for server in (KAFKA, ELASTICSEARCH, CASSANDRA, SCHEMA_REGISTRY, OPENSEARCH)}


def connection_settings() -> dict[str, str]:
    """What a client needs, as the environment variables conductor's tests and demo read."""
    return {
        "CONDUCTOR_KAFKA_BOOTSTRAP": f"127.0.0.1:{KAFKA.port}",
        "CONDUCTOR_ELASTICSEARCH_URL": f"http://127.0.0.1:{ELASTICSEARCH.port}",
        "CONDUCTOR_CASSANDRA_HOSTS": "127.0.0.1",
        "CONDUCTOR_CASSANDRA_PORT": str(CASSANDRA.port),
        "CONDUCTOR_SCHEMA_REGISTRY_URL": _schema_registry_url(SCHEMA_REGISTRY),
        "CONDUCTOR_OPENSEARCH_URL": f"http://127.0.0.1:{OPENSEARCH.port}",
    }
