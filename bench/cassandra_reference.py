"""The Java reference for the Cassandra benchmark: Kafka -> Kafka Connect 4.1.1 (standalone) with
the DataStax Apache Kafka sink (datastax/kafka-sink 1.5.0, built here from its public source) ->
Cassandra, on the readings, topic and table of bench/cassandra_pipeline.py.

    .venv/bin/python bench/cassandra_reference.py --records 200000

Set-up (once, cached in ~/.cache/conductor/peers/, never in the repository; `--setup-only` stops
there):
  - Kafka Connect 4.1.1: connect-runtime, connect-json, connect-api and connect-transforms with
    their runtime dependencies (and log4j2's slf4j binding, as the Kafka distribution ships it),
    fetched from Maven Central by `mvn dependency:copy-dependencies` from a pom written here;
  - the DataStax sink: not on Maven Central. Its source (the tag SINK_TAG of a clone of
    github.com/datastax/kafka-sink: `--sink-source`) is built with its own poms and `mvn
    package` (the uber-jar of dist/), with what Maven Central lacks or JDK 17 cannot run taken
    out (SINK_PATCHES, printed at build time) and Maven Central as the only repository.

One run (per --runs, per --tasks):
  1. N readings produced to a new 6-partition topic, a keyspace with the table of
     examples/cassandra-schema.cql, exactly as cassandra_pipeline.py does (its functions), and a
     throwaway load so Cassandra is as warm as for cassandra_pipeline's conductor runs;
  2. `java ... org.apache.kafka.connect.cli.ConnectStandalone worker.properties
     connector.properties` on a fresh connector name (a fresh consumer group, from offset 0) and
     a truncated table, timed from the spawn until Cassandra holds N rows (the table's write
     count, which counts a batch of one partition once, then SELECT COUNT(*) once it stalls:
     MutationPoller; `--progress count` counts every second instead); the JVM's CPU (user+sys,
     whole process tree) and RSS are sampled at each poll, Cassandra's and Kafka's CPU over the
     same span;
  3. then until the group `connect-<name>` committed every end offset (Connect commits every
     offset.flush.interval.ms), SIGTERM, and a check of the row count and a sample of rows (values,
     and WRITETIME = the record's timestamp in microseconds, which is what the DataStax sink writes);
  4. a Markdown table with cassandra_pipeline's columns on stdout (`--output FILE` also writes it
     between this script's markers); topic, keyspace and groups are deleted at the end.

The sink's settings are its defaults (UNLOGGED batches of up to 32 rows of one partition key
within each put(), 500 requests in flight, 4 connections) with tasks.max=3 (3 tasks in one
worker JVM, as conductor's 3 workers share the 6 partitions). The mapping is
`sensor_id=value.sensor_id, ts=value.timestamp, celsius=value.celsius, humidity=value.humidity,
home_id=value.home_id, reading_id=value.reading_id`: `ts` from the reading's epoch-millisecond
number (with `codec.timestamp=UNITS_SINCE_EPOCH`; the default CQL_TIMESTAMP fails on a JSON number,
see codec_lines; codec.unit MILLISECONDS is the default), and no `__timestamp`, so the write time is the
Kafka record timestamp * 1000 (us), without conductor's `+ offset % 1000`. Values go through
JsonConverter with schemas.enable=false; the keys (not mapped) through ByteArrayConverter.

From cassandra_pipeline.py (which may add this as a row in its own run): import this module inside
a function (it imports cassandra_pipeline at its top), call `add_reference_arguments(parser)`,
`setup = ensure_setup(args)` before the clock, and `run_reference(args, data, store, server, groups,
setup, tasks=3)` -> common.Result (kind "reference") per run.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cassandra_pipeline import (
    EXACT_EVERY_S,
    SERVERS,
    TABLE,
    Commits,
    Dataset,
    Store,
    WriteCountPoller,
    build_dataset,
    build_rows,
    cassandra_retried,
    cleanup,
    wait_for_cassandra,
    warm_up,
)
from common import (
    KAFKA,
    MIB,
    PARTITIONS,
    RUN_NUMBERS,
    ProcessSampler,
    Result,
    ServerCpu,
    conductor_version,
    find_process,
    fmt,
    kafka_version,
    produce,
    render,
    steady_rate,
    stop,
    table,
    timeline,
    write_doc,
)

MARK_BEGIN = "<!-- bench/cassandra_reference.py: generated from here -->"
MARK_END = "<!-- bench/cassandra_reference.py: generated until here -->"

CACHE = Path(
    os.environ.get("CONDUCTOR_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "conductor"
)
PEERS = CACHE / "peers"
MAVEN_CENTRAL = "https://repo.maven.apache.org/maven2"

CONNECT_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"  # what the Kafka 4.1.1 distribution ships in libs/
CONNECT_ARTIFACTS = ("connect-runtime", "connect-json", "connect-api", "connect-transforms")

SINK_REPO = "https://github.com/datastax/kafka-sink.git"
SINK_TAG = "1.5.0"  # the latest release (2023-07-19): messaging-connectors-commons 1.0.15, driver 4.16.0
SINK_JAR = f"kafka-connect-cassandra-sink-{SINK_TAG}.jar"
SINK_CONNECTOR = "com.datastax.oss.kafka.sink.CassandraSinkConnector"
# What the sink's own build needs taken out here: (file, pattern, what, why). Each must match.
SINK_PATCHES = (
    (
        "sink/pom.xml",
        r"\s*<dependency>\s*<groupId>io\.confluent</groupId>\s*"
        r"<artifactId>kafka-connect-avro-converter</artifactId>\s*</dependency>",
        "the dependency on io.confluent:kafka-connect-avro-converter",
        "io.confluent:kafka-connect-avro-converter:5.2.1 is not on Maven Central (only on "
        "packages.confluent.io, unreachable here); only sink/src/test uses it, so the tests are "
        "not compiled (-Dmaven.test.skip=true)",
    ),
    (
        "pom.xml",
        r"<arg>-Xplugin:ErrorProne</arg>",
        "the compiler argument -Xplugin:ErrorProne",
        "the jdk11 profile runs Error Prone 2.4.0 as a javac plugin, which fails on JDK 17 "
        "(IllegalAccessError, then NoSuchFieldError: reader); it is a lint and changes no class",
    ),
)
# the repositories the sink's pom names (repo.aws.dsinternal.org: DataStax-internal;
# packages.confluent.io) are not reachable here: every request goes to Maven Central.
SETTINGS_XML = f"""<settings>
  <mirrors>
    <mirror>
      <id>central-only</id>
      <mirrorOf>*</mirrorOf>
      <url>{MAVEN_CENTRAL}</url>
    </mirror>
  </mirrors>
</settings>
"""
# bin/connect-standalone.sh -> kafka-run-class.sh defaults (KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS)
JVM_OPTIONS = (
    "-Xms256M",
    "-Xmx2G",
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
)
COMMIT_WAIT_S = 75.0  # Connect commits every offset.flush.interval.ms (10 s here, as the sample config)
STATUS_EVERY_S = 2.0


# -- set-up: Kafka Connect and the sink, cached ----------------------------------------------------


@dataclass
class Setup:
    java: str
    java_version: str
    connect_libs: Path
    plugin_dir: Path
    sink_jar: Path
    sink_info: dict[str, str]


def say(message: str) -> None:
    print(f"  [reference] {message}", flush=True)


def maven(arguments: Sequence[str], cwd: Path, log: Path, timeout: float = 1800) -> None:
    """`mvn` with the peers' own local repository and Maven Central only; output into `log`."""
    mvn = shutil.which("mvn")
    if not mvn:
        raise RuntimeError("`mvn` is not on PATH (e.g. `apt-get install maven`)")
    settings = PEERS / "settings.xml"
    if not settings.exists() or settings.read_text() != SETTINGS_XML:
        settings.write_text(SETTINGS_XML)
    command = [mvn, "-B", "-s", str(settings), f"-Dmaven.repo.local={PEERS / 'm2'}", *arguments]
    with log.open("w") as out:
        out.write("$ " + " ".join(command) + f"\n(in {cwd})\n")
        out.flush()
        code = subprocess.run(
            command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout
        ).returncode
    if code != 0:
        errors = [line for line in log.read_text(errors="replace").splitlines() if "[ERROR]" in line][:8]
        raise RuntimeError(
            f"mvn {' '.join(arguments)} failed (exit {code}), read {log}:\n" + "\n".join(errors)
        )


def connect_pom() -> str:
    deps = [("org.apache.kafka", a, CONNECT_VERSION) for a in CONNECT_ARTIFACTS] + [
        ("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J_VERSION),
        ("org.apache.logging.log4j", "log4j-core", LOG4J_VERSION),
    ]
    body = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>"
        for g, a, v in deps
    )
    return f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <!-- written by bench/cassandra_reference.py: Kafka Connect {CONNECT_VERSION}'s runtime, for copy-dependencies -->
  <groupId>local.conductor.peers</groupId>
  <artifactId>kafka-connect</artifactId>
  <version>{CONNECT_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
{body}
  </dependencies>
</project>
"""


def ensure_connect() -> Path:
    """Kafka Connect's jars (cached): the folder for the JVM's class path."""
    home = PEERS / f"kafka-connect-{CONNECT_VERSION}"
    libs = home / "libs"
    if (home / ".complete").exists():
        return libs
    say(f"fetching Kafka Connect {CONNECT_VERSION} from Maven Central into {home}")
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(connect_pom())
    shutil.rmtree(libs, ignore_errors=True)
    maven(
        ["dependency:copy-dependencies", f"-DoutputDirectory={libs}", "-DincludeScope=runtime"],
        home,
        home / "fetch.log",
    )
    if not (libs / f"connect-runtime-{CONNECT_VERSION}.jar").exists():
        raise RuntimeError(f"no connect-runtime-{CONNECT_VERSION}.jar in {libs}")
    (home / ".complete").write_text(f"{len(list(libs.glob('*.jar')))} jars\n")
    return libs


def default_sink_source() -> str | None:
    """A local clone of datastax/kafka-sink: $CONDUCTOR_DATASTAX_SINK_SOURCE, or the mirror this
    machine keeps; None to clone it from GitHub."""
    given = os.environ.get("CONDUCTOR_DATASTAX_SINK_SOURCE")
    if given:
        return given
    mirror = Path("/work/.mirror/datastax+kafka-sink/repo")
    return str(mirror) if mirror.exists() else None


def is_git(path: Path) -> bool:
    return (
        subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--git-dir"], capture_output=True, text=True
        ).returncode
        == 0
    )


def extract_sink_source(source: str | None, dest: Path) -> str:
    """The sink's source at SINK_TAG into `dest`; returns where it came from (with the commit)."""
    if source is None:
        clone = PEERS / "kafka-sink.git"
        if not clone.exists():
            say(f"cloning {SINK_REPO} (tag {SINK_TAG}) into {clone}")
            done = subprocess.run(
                ["git", "clone", "--bare", "--branch", SINK_TAG, "--depth", "1", SINK_REPO, str(clone)],
                capture_output=True,
                text=True,
                timeout=600,
            )
            if done.returncode != 0:
                raise RuntimeError(
                    f"cannot clone {SINK_REPO}: {done.stderr.strip()}; pass --sink-source with a "
                    f"clone of it (or an unpacked source tree of its release {SINK_TAG})"
                )
        source = str(clone)
    path = Path(source)
    if is_git(path):
        commit = subprocess.run(
            ["git", "-C", str(path), "rev-parse", f"{SINK_TAG}^{{commit}}"], capture_output=True, text=True
        ).stdout.strip()
        if not commit:
            raise RuntimeError(f"{path} has no tag {SINK_TAG}")
        archive = subprocess.run(
            ["git", "-C", str(path), "archive", "--format=tar", commit], capture_output=True, check=True
        ).stdout
        dest.mkdir(parents=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(dest, filter="data")
        return f"{SINK_REPO} tag {SINK_TAG} = {commit[:12]} (from {path})"
    if (path / "pom.xml").exists() and (path / "sink" / "pom.xml").exists():
        shutil.copytree(path, dest, ignore=shutil.ignore_patterns("target", ".git"))
        return f"source tree {path}"
    raise RuntimeError(f"--sink-source {path}: neither a git clone of {SINK_REPO} nor its source tree")


def patch_sink(src: Path) -> list[str]:
    """SINK_PATCHES applied to the extracted source; what was changed, and why."""
    applied = []
    for name, pattern, what, why in SINK_PATCHES:
        path = src / name
        patched, count = re.subn(pattern, "", path.read_text())
        if count == 0:
            raise RuntimeError(f"{name}: {what} not found (another version of the sink?)")
        path.write_text(patched)
        applied.append(f"{name}: removed {what} ({count}x): {why}")
    return applied


def pom_properties(pom: Path, names: Sequence[str]) -> dict[str, str]:
    text = pom.read_text()
    out = {}
    for name in names:
        match = re.search(rf"<{re.escape(name)}>([^<]+)</{re.escape(name)}>", text)
        if match:
            out[name] = match.group(1)
    return out


def ensure_sink(source: str | None) -> tuple[Path, dict[str, str]]:
    """The sink's uber-jar (dist/, as its release ships it) in a plugin.path folder of its own
    (cached), and what it was built from."""
    plugin = PEERS / "plugins" / f"datastax-kafka-sink-{SINK_TAG}"
    jar = plugin / SINK_JAR
    info_path = plugin / "build-info.json"
    if jar.exists() and info_path.exists():
        return jar, json.loads(info_path.read_text())
    build = PEERS / f"datastax-kafka-sink-{SINK_TAG}-build"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    src = build / "src"
    origin = extract_sink_source(source, src)
    say(f"building the DataStax Kafka sink from {origin}")
    applied = patch_sink(src)
    for line in applied:
        say(f"  patch {line}")
    arguments = ["-Dmaven.test.skip=true", "-pl", "sink,dist", "package"]
    say(f"  mvn {' '.join(arguments)} (a few minutes the first time; log {build / 'build.log'})")
    maven(arguments, src, build / "build.log")
    built = src / "dist" / "target" / SINK_JAR
    with zipfile.ZipFile(built) as z:
        if SINK_CONNECTOR.replace(".", "/") + ".class" not in z.namelist():
            raise RuntimeError(f"{built} has no {SINK_CONNECTOR}")
    versions = pom_properties(
        src / "pom.xml",
        (
            "messaging.connectors.commons.version",
            "oss.driver.version",
            "dsbulk.version",
            "kafka.connect.version",
        ),
    )
    shutil.rmtree(plugin, ignore_errors=True)
    plugin.mkdir(parents=True)
    shutil.copy(built, jar)
    info = {
        "source": origin,
        "version": SINK_TAG,
        "patches": "; ".join(applied),
        "build": f"mvn -s settings.xml (every repository -> Maven Central) {' '.join(arguments)}",
        **versions,
    }
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    return jar, info


def find_java() -> tuple[str, str]:
    home = os.environ.get("CONDUCTOR_JAVA_HOME") or os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise RuntimeError("no java on PATH (Kafka Connect 4 needs Java 17+)")
    text = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)[^"]*"', text)
    if not match or int(match.group(1)) < 17:
        raise RuntimeError(f"{java}: Kafka Connect 4 needs Java 17+, found {text.splitlines()[:1]}")
    return java, text.splitlines()[0].strip()


def ensure_setup(args: argparse.Namespace) -> Setup:
    """Kafka Connect and the sink, fetched and built once (cached in PEERS)."""
    PEERS.mkdir(parents=True, exist_ok=True)
    java, java_version = find_java()
    libs = ensure_connect()
    jar, info = ensure_sink(getattr(args, "sink_source", None) or default_sink_source())
    return Setup(java, java_version, libs, jar.parent.parent, jar, info)


# -- one run ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def properties(path: Path, lines: Sequence[str]) -> Path:
    path.write_text("# written by bench/cassandra_reference.py\n" + "\n".join(lines) + "\n")
    return path


def worker_lines(args: argparse.Namespace, setup: Setup, run_dir: Path, port: int) -> list[str]:
    """config/connect-standalone.properties of the Kafka distribution, for this topic's format."""
    return [
        f"bootstrap.servers={args.kafka}",
        "key.converter=org.apache.kafka.connect.converters.ByteArrayConverter",
        "value.converter=org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable=false",
        f"offset.storage.file.filename={run_dir / 'connect.offsets'}",
        "offset.flush.interval.ms=10000",
        f"plugin.path={setup.plugin_dir}",
        f"listeners=http://127.0.0.1:{port}",
        "consumer.auto.offset.reset=earliest",
        *getattr(args, "worker_setting", []),
    ]


def mapping(keyspace: str, topic: str) -> str:
    return (
        f"topic.{topic}.{keyspace}.{TABLE}.mapping=sensor_id=value.sensor_id, ts=value.timestamp, "
        "celsius=value.celsius, humidity=value.humidity, home_id=value.home_id, reading_id=value.reading_id"
    )


def connector_lines(args: argparse.Namespace, name: str, data: Dataset, tasks: int, dc: str) -> list[str]:
    return [
        f"name={name}",
        f"connector.class={SINK_CONNECTOR}",
        f"tasks.max={tasks}",
        f"topics={data.topic}",
        f"contactPoints={args.cassandra_host}",
        f"port={args.cassandra_port}",
        f"loadBalancing.localDc={dc}",
        mapping(data.keyspace, data.topic),
        *codec_lines(data.topic),
        *getattr(args, "sink_setting", []),
    ]


def codec_lines(topic: str) -> list[str]:
    """The reading's `timestamp` is a JSON number of epoch milliseconds. With the default
    codec.timestamp (CQL_TIMESTAMP) the sink parses a JSON number's text as a CQL timestamp
    literal and fails on every record ("Text '1795993369544' could not be parsed at index 0");
    UNITS_SINCE_EPOCH reads the number in codec.unit (MILLISECONDS, the default)."""
    return [f"topic.{topic}.codec.timestamp=UNITS_SINCE_EPOCH"]


LOG4J2 = """status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.out.ref = out
"""


def java_command(setup: Setup, run_dir: Path, worker: Path, connector: Path) -> list[str]:
    return [
        setup.java,
        *JVM_OPTIONS,
        f"-Dlog4j2.configurationFile={run_dir / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={run_dir}",
        "-cp",
        str(setup.connect_libs / "*"),
        "org.apache.kafka.connect.cli.ConnectStandalone",
        str(worker),
        str(connector),
    ]


class LogWatch:
    """Reads Kafka Connect's log as it grows (at most READ_BYTES a call): the sink's per-record
    failures (a mapping failure is retried forever from the same offset, ignoreErrors=None,
    logging each record again) and the first ERROR line. The log can grow by gigabytes a minute
    that way, so it is never read whole."""

    READ_BYTES = 8 * MIB
    MAX_BYTES = 512 * MIB

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.mapping_errors = 0
        self.write_errors = 0
        self.errors = 0
        self.first: dict[str, str] = {}

    def scan(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                chunk = f.read(self.READ_BYTES)
        except OSError:
            return
        end = chunk.rfind(b"\n")
        if end < 0:
            return
        self.offset += end + 1
        for raw in chunk[:end].split(b"\n"):
            if b"Error decoding/mapping" in raw:
                kind = "mapping"
                self.mapping_errors += 1
            elif b"Error inserting/updating" in raw:
                kind = "write"
                self.write_errors += 1
            elif b" ERROR " in raw:
                kind = "error"
                self.errors += 1
            else:
                continue
            self.first.setdefault(kind, raw[:500].decode(errors="replace"))

    @property
    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def problem(self) -> str | None:
        """Why the run cannot give a valid number (then it is stopped at once)."""
        if self.mapping_errors:
            return f"the sink failed to map {self.mapping_errors:,} records, first: {self.first['mapping']}"
        if self.size > self.MAX_BYTES:
            return f"Kafka Connect's log passed {self.MAX_BYTES // MIB} MiB"
        return None

    def notes(self) -> list[str]:
        out = []
        if self.write_errors:
            out.append(f"{self.write_errors:,} failed writes (retried), first: {self.first['write']}")
        if self.errors:
            out.append(f"{self.errors:,} ERROR lines in the log, first: {self.first['error']}")
        return out

    def tail(self, lines: int = 30) -> list[str]:
        try:
            with self.path.open("rb") as f:
                f.seek(max(0, self.size - 16384))
                return f.read().decode(errors="replace").splitlines()[-lines:]
        except OSError:
            return []


class MutationPoller(WriteCountPoller):
    """Progress of a writer that batches: the table's write count (cassandra_pipeline's
    WriteCountPoller) counts mutations, one per partition per batch, so it stays below N while
    the rows are all there. This one polls that count and, when it stops growing (no write
    between two polls; polled every fast_interval once the rate falls below half its recent
    median), asks SELECT COUNT(*) (at most every EXACT_EVERY_S): the rows are all there when it
    says N. `count()` says target then, and the mutations so far otherwise (capped below target).
    `row_samples()` scales the mutation counts by rows per mutation over the whole run, for the
    steady rate and the timeline."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, exact=False, **kwargs)
        self.raw: list[tuple[float, int]] = []
        self.rates: list[float] = []
        self.slowing = False
        self.done_writes: int | None = None

    def count(self) -> int:
        now = time.monotonic()
        try:
            written = self.writes() - self.base
        except Exception:
            self.errors += 1
            return self.samples[-1][1] if self.samples else 0
        last_t, last_w = self.raw[-1] if self.raw else (now, 0)
        self.raw.append((now, written))
        rate = (written - last_w) / (now - last_t) if now > last_t else 0.0
        stalled = written > 0 and written == last_w
        recent = sorted(self.rates[-10:])
        self.slowing = stalled or bool(recent and rate < 0.5 * recent[len(recent) // 2])
        if rate > 0:
            self.rates.append(rate)
        if stalled and now - self.exact_at >= EXACT_EVERY_S:
            self.exact_at = now
            try:
                rows = self.store.count()
            except Exception:
                self.errors += 1
                rows = -1
            self.exact_counts.append(rows)
            self.exact_seconds.append(time.monotonic() - now)
            if rows >= self.target:
                self.done_writes = written
                return self.target
        return min(written, self.target - 1)

    def next_pause(self) -> float:
        return self.fast_interval if self.slowing else self.interval

    @property
    def rows_per_mutation(self) -> float | None:
        return self.target / self.done_writes if self.done_writes else None

    def row_samples(self) -> list[tuple[float, int]]:
        scale = self.rows_per_mutation
        if scale is None:
            return self.samples
        rows = [(t, min(self.target, round(w * scale))) for t, w in self.raw]
        return rows[:-1] + [(self.raw[-1][0], self.target)]


def make_poller(args: argparse.Namespace, data: Dataset) -> WriteCountPoller:
    """--progress mutations (MutationPoller, the default) or count (cassandra_pipeline's poller
    for batched writes: SELECT COUNT(*) every EXACT_EVERY_S, as its batched conductor rows)."""
    where = (args.cassandra_host, args.cassandra_port, data.keyspace, data.count, args.poll, args.fast_poll)
    if getattr(args, "progress", "mutations") == "count":
        return WriteCountPoller(*where, exact=False, rows_per_write=None)
    return MutationPoller(*where)


def row_samples(poller: WriteCountPoller) -> list[tuple[float, int]]:
    return poller.row_samples() if isinstance(poller, MutationPoller) else poller.samples


def connect_status(port: int, name: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/connectors/{name}/status", timeout=2) as r:
            return json.loads(r.read())
    except Exception:
        return None


def failed_tasks(status: dict[str, Any] | None) -> list[str]:
    if not status:
        return []
    out = []
    for part in [status.get("connector") or {}, *(status.get("tasks") or [])]:
        if part.get("state") == "FAILED":
            trace = (part.get("trace") or "").splitlines()
            out.append(
                f"{'task ' + str(part['id']) if 'id' in part else 'connector'} FAILED: "
                + " | ".join(trace[:6])
            )
    return out


def data_center(store: Store) -> str:
    return store.session.execute("SELECT data_center FROM system.local").one()[0]


def reference_rows(data: Dataset) -> Dataset:
    """`data` with the write timestamps the DataStax sink uses (record timestamp in ms * 1000),
    for Store.check: the columns are conductor's."""
    rows = [row[:-1] + (stamp * 1000,) for row, stamp in zip(data.rows, data.timestamps, strict=True)]
    return dataclasses.replace(data, rows=rows)


def reference_label(args: argparse.Namespace, tasks: int) -> str:
    extra = [*getattr(args, "worker_setting", []), *getattr(args, "sink_setting", [])]
    return f"Kafka Connect {CONNECT_VERSION} + DataStax Kafka sink {SINK_TAG} (Java), tasks.max={tasks}" + (
        f", {', '.join(extra)}" if extra else ""
    )


def run_reference(
    args: argparse.Namespace,
    data: Dataset,
    store: Store,
    server: ServerCpu,
    groups: list[str],
    setup: Setup | None = None,
    tasks: int = 3,
    attempt: int = 0,
) -> Result:
    """One timed run of the reference on `data` (produced, rows built, keyspace created): a fresh
    connector name and consumer group from offset 0, a truncated table, the clock from the
    JVM's spawn until Cassandra holds every row. `args` needs kafka, cassandra_host,
    cassandra_port, poll, fast_poll and timeout (and this script's optional settings)."""
    setup = setup or ensure_setup(args)
    wait_for_cassandra(args)
    name = f"datastax-{data.topic}-t{tasks}-{next(RUN_NUMBERS)}" + (f"-retry{attempt}" if attempt else "")
    groups.append(f"connect-{name}")
    store.truncate()
    run_dir = PEERS / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (run_dir / "log4j2.properties").write_text(
        LOG4J2.format(level=getattr(args, "reference_log_level", "WARN"))
    )
    worker = properties(run_dir / "worker.properties", worker_lines(args, setup, run_dir, port))
    connector = properties(
        run_dir / "connector.properties", connector_lines(args, name, data, tasks, data_center(store))
    )
    result = Result(reference_label(args, tasks), "reference", data.count)
    poller = make_poller(args, data)
    commits = Commits(args.kafka, f"connect-{name}", data.end_offsets, data.topic)
    log_path = run_dir / "connect.log"
    log_file = log_path.open("wb")
    watch = LogWatch(log_path)
    server.begin()
    started = time.monotonic()
    process = subprocess.Popen(
        java_command(setup, run_dir, worker, connector),
        stdout=log_file,
        stderr=subprocess.STDOUT,
        cwd=run_dir,
        start_new_session=True,
    )
    sampler = ProcessSampler(process.pid)
    done_at = first_row = cpu_at_first = cpu_at_done = None
    ended = False
    status: dict[str, Any] | None = None
    status_at = started
    failures: list[str] = []
    try:
        while True:
            sampler.sample()
            count = poller.poll()
            if first_row is None and count > 0:
                first_row = time.monotonic() - started
                cpu_at_first = sampler.total_cpu
            if count >= data.count:
                done_at = time.monotonic()
                sampler.sample()
                break
            if process.poll() is not None:
                result.notes.append(f"Kafka Connect exited early with {process.returncode}")
                break
            if time.monotonic() - started > args.timeout:
                result.notes.append(f"timed out after {args.timeout:.0f}s at {count:,} rows")
                break
            if time.monotonic() - status_at >= STATUS_EVERY_S:
                status_at = time.monotonic()
                status = connect_status(port, name) or status
                failures = failed_tasks(status)
                watch.scan()
                problem = watch.problem()
                if problem:
                    failures.append(problem)
                if failures:
                    break
            time.sleep(poller.next_pause())
        server.end()
        ended = True
        cpu_at_done = sampler.total_cpu
        if done_at is not None:
            while time.monotonic() - done_at < COMMIT_WAIT_S:
                if commits():
                    result.committed_s = time.monotonic() - started
                    break
                if process.poll() is not None:
                    break
                time.sleep(args.fast_poll)
                sampler.sample()
        status = connect_status(port, name) or status
        failures = failures or failed_tasks(status)
    finally:
        if not ended:
            server.end()
        result.server = server
        result.client_cpu = sampler.total_cpu if cpu_at_done is None else cpu_at_done
        stop_started = time.monotonic()
        code = stop(process, timeout=60)
        log_file.close()
        poller.close()
        commits.close()
    stop_s = time.monotonic() - stop_started
    if server.restarted:
        result.ok = False
        result.notes += server.restarted
    result.rss_mib = max(sampler.rss.values(), default=0) / MIB
    if done_at is None:
        result.ok = False
    else:
        result.seconds = done_at - started
        result.steady = steady_rate([(t - started, n) for t, n in row_samples(poller)], data.count)
    if failures:
        result.ok = False
        result.notes += failures
    if code is None:
        result.ok = False
        result.notes.append("Kafka Connect did not stop within 60 s of SIGTERM: killed")
    result.notes.append(
        f"first row visible after {first_row:.1f}s (JVM CPU by then {cpu_at_first:.1f}s: start-up, "
        f"plugin scan, JIT; {result.per_million(result.client_cpu - cpu_at_first):.1f} CPU-s per "
        f"million from there to the last row)"
        if first_row is not None and cpu_at_first is not None
        else "no row became visible"
    )
    result.notes.append("rows by second: " + timeline(row_samples(poller), started))
    if isinstance(poller, MutationPoller) and poller.rows_per_mutation:
        result.notes.append(
            f"{poller.done_writes:,} mutations in the table's write count for {data.count:,} rows: "
            f"{poller.rows_per_mutation:.2f} rows per mutation (a batch of one partition is one)"
        )
    if result.committed_s is not None:
        result.notes.append(f"group committed every offset at {result.committed_s:.1f}s")
    elif done_at is not None:
        result.notes.append(f"not every offset committed within {COMMIT_WAIT_S:.0f}s: {commits.describe()}")
    states = (
        ", ".join(
            f"{t.get('id')}:{t.get('state')}@{t.get('worker_id', '')}"
            for t in (status or {}).get("tasks", [])
        )
        or "unknown"
    )
    result.notes.append(
        f"tasks {states}; SIGTERM -> exit {code} in {stop_s:.1f}s; JVM processes seen {len(sampler.rss)}; "
        f"max RSS {result.rss_mib:.0f} MiB (the whole JVM)"
    )
    if poller.exact_seconds:
        result.notes.append(
            f"{len(poller.exact_seconds)} SELECT COUNT(*) ("
            + ("when the write count stalled" if isinstance(poller, MutationPoller) else "every second")
            + f"), taking {', '.join(f'{t:.2f}' for t in poller.exact_seconds[-8:])}s (the last 8)"
        )
    if poller.errors:
        result.notes.append(f"{poller.errors} progress polls failed")
    if done_at is not None:
        problems = store.check(reference_rows(data))
        if problems:
            result.ok = False
            result.notes += problems
    store.truncate()
    if watch.size <= LogWatch.MAX_BYTES:
        while watch.offset < watch.size - 1 and watch.problem() is None:
            before = watch.offset
            watch.scan()
            if watch.offset == before:
                break
    problem = watch.problem()
    if problem and problem not in failures:
        result.ok = False
        result.notes.append(problem)
    result.notes += watch.notes()
    if not result.ok:
        result.notes.append("log tail:\n      " + "\n      ".join(line[:400] for line in watch.tail()))
    logs = getattr(args, "logs", None)
    if logs:
        target = Path(logs) / name
        shutil.copytree(run_dir, target, dirs_exist_ok=True)
        result.notes.append(f"log and configs kept in {target}")
    shutil.rmtree(run_dir, ignore_errors=True)
    return result


# -- report ----------------------------------------------------------------------------------------


def versions(setup: Setup, store: Store) -> dict[str, str]:
    info = setup.sink_info
    out = {
        "Java": setup.java_version,
        "Kafka Connect": CONNECT_VERSION,
        "DataStax Kafka sink": f"{SINK_TAG} ({info.get('source', '?')})",
        "messaging-connectors-commons": info.get("messaging.connectors.commons.version", "?"),
        "java-driver": info.get("oss.driver.version", "?"),
        "dsbulk codecs": info.get("dsbulk.version", "?"),
    }
    try:
        out["Cassandra"] = store.version()
    except Exception as exc:
        out["Cassandra"] = f"unknown ({exc})"
    out["Kafka"] = kafka_version(find_process(KAFKA.needle))
    commit = conductor_version()
    if commit is not None:
        out["conductor (this benchmark's code)"] = commit
    return out


def render_block(
    args: argparse.Namespace,
    results: list[Result],
    setup: Setup,
    data: Dataset,
    produce_s: float,
    info: dict[str, str],
    started: dt.datetime,
) -> str:
    committed = ("all committed s", lambda r: fmt(r.committed_s, ".1f"))
    extra_settings = [*getattr(args, "worker_setting", []), *getattr(args, "sink_setting", [])]
    bullets = [
        f"- data: {data.count:,} readings = {data.count:,} rows of {data.keyspace}.{TABLE}, "
        f"produced in {produce_s:.1f}s; {PARTITIONS} partitions",
        f"- reference: `ConnectStandalone` (one JVM, {' '.join(JVM_OPTIONS)}), the sink's "
        f"defaults, key ByteArrayConverter, value JsonConverter schemas.enable=false; "
        f"`{mapping(data.keyspace, data.topic)}`, `{'`, `'.join(codec_lines(data.topic))}`"
        + (f"; plus {', '.join(extra_settings)}" if extra_settings else ""),
        f"- sink build: {setup.sink_info.get('build', '')}; patches: {setup.sink_info.get('patches', '')}",
        "- the write time is the record's timestamp in us (conductor adds offset % 1000); CPU is "
        "the JVM's (user+sys) from the spawn until the rows were there, RSS the JVM's largest",
    ]
    return render(
        begin=MARK_BEGIN,
        end=MARK_END,
        script="bench/cassandra_reference.py",
        started=started,
        info=info,
        bullets=bullets,
        table_text=table(results, None, SERVERS, [committed]),
        results=results,
        limit=None,
        profile=None,
    )


# -- main ------------------------------------------------------------------------------------------


def add_reference_arguments(parser: argparse.ArgumentParser) -> None:
    """This script's own options (cassandra_pipeline.py may add them to its parser)."""
    parser.add_argument(
        "--sink-source",
        default=None,
        help=f"a git clone of {SINK_REPO} (or its {SINK_TAG} source tree) to build the sink from "
        "(default: $CONDUCTOR_DATASTAX_SINK_SOURCE, this machine's mirror, else a clone)",
    )
    parser.add_argument(
        "--sink-setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra line for the connector's .properties (repeatable), e.g. maxNumberOfRecordsInBatch=64",
    )
    parser.add_argument(
        "--worker-setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra line for the worker's .properties (repeatable), e.g. consumer.max.poll.records=2000",
    )
    parser.add_argument("--reference-log-level", default="WARN", help="Kafka Connect's root log level")
    parser.add_argument(
        "--progress",
        choices=("mutations", "count"),
        default="mutations",
        help="how rows are counted during a run: the table's write count, SELECT COUNT(*) once it "
        "stalls (default), or SELECT COUNT(*) every second (as cassandra_pipeline's batched rows)",
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=200_000, help="readings to produce (default 200000)")
    parser.add_argument("--tasks", default="3", help="tasks.max values to run, comma-separated (default 3)")
    parser.add_argument("--runs", type=int, default=1, help="runs per tasks.max value (default 1)")
    parser.add_argument("--kafka", default=os.environ.get("CONDUCTOR_KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    parser.add_argument("--cassandra", default="127.0.0.1:19042", help="host:port (default 127.0.0.1:19042)")
    parser.add_argument(
        "--poll", type=float, default=0.5, help="write count poll interval in s (default 0.5)"
    )
    parser.add_argument(
        "--fast-poll", type=float, default=0.1, help="poll interval once the write rate falls (default 0.1)"
    )
    parser.add_argument("--timeout", type=float, default=600, help="per run, s (default 600)")
    parser.add_argument(
        "--retries", type=int, default=2, help="run again when a server restarted (default 2)"
    )
    parser.add_argument("--no-warm-up", dest="warm_up", action="store_false", help="skip the throwaway load")
    parser.add_argument("--setup-only", action="store_true", help="fetch and build, then stop")
    parser.add_argument(
        "--output", default="-", help="also write the block into this Markdown file ('-': no)"
    )
    parser.add_argument(
        "--logs", default=None, metavar="DIR", help="keep each run's Connect log and configs in DIR"
    )
    parser.add_argument("--keep", action="store_true", help="keep the topic (the keyspace is always dropped)")
    add_reference_arguments(parser)
    args = parser.parse_args(argv)
    args.task_counts = [int(t) for t in args.tasks.split(",") if t.strip()]
    host, _, port = args.cassandra.rpartition(":")
    args.cassandra_host, args.cassandra_port = host or args.cassandra, int(port or 9042)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    setup = ensure_setup(args)
    say(f"Kafka Connect {CONNECT_VERSION}: {setup.connect_libs}; sink: {setup.sink_jar}")
    if args.setup_only:
        print(json.dumps(setup.sink_info, indent=2))
        return 0
    started_at = dt.datetime.now(dt.UTC)
    run_id = uuid.uuid4().hex[:8]
    wait_for_cassandra(args)
    server = ServerCpu(SERVERS)
    server.begin()
    for spec in SERVERS:
        if server.proc(spec.name) is None:
            print(f"warning: {spec.name} process not found; its CPU is not measured", file=sys.stderr)
    groups: list[str] = []
    results: list[Result] = []
    data = store = None
    total = time.monotonic()
    try:
        print(f"run {run_id}: building {args.records:,} readings", flush=True)
        data = build_dataset(args.records, run_id)
        produce_s = produce(args.kafka, data, data.placed)
        build_rows(data)
        print(
            f"  produced to {data.topic} in {produce_s:.1f}s ({data.count / produce_s:,.0f}/s); "
            f"end offsets {data.end_offsets}",
            flush=True,
        )
        store = Store(args.cassandra_host, args.cassandra_port, data.keyspace)
        store.create()
        print(f"  keyspace {data.keyspace} created", flush=True)
        if args.warm_up:
            cassandra_retried(args, lambda attempt: warm_up(args, data, store))
        for tasks in args.task_counts:
            for n in range(args.runs):
                r = cassandra_retried(
                    args,
                    lambda attempt: run_reference(
                        args, data, store, server.copy(), groups, setup, tasks=tasks, attempt=attempt
                    ),
                )
                if args.runs > 1:
                    r.label += f" (run {n + 1})"
                results.append(r)
                cpu = r.server.used if r.server else (float("nan"),) * 3
                print(
                    f"  {r.label}: {r.rate:,.0f} rec/s, steady {fmt(r.steady)}, "
                    f"all committed at {fmt(r.committed_s, '.1f')}s, JVM CPU {r.per_million(r.client_cpu):.1f} s/M, "
                    f"RSS {fmt(r.rss_mib, '.0f')} MiB, Cassandra {r.per_million(cpu[0]):.1f} s/M, "
                    f"Kafka {r.per_million(cpu[1]):.1f} s/M, ok={r.ok}",
                    flush=True,
                )
                for note in r.notes:
                    print(f"    {note}", flush=True)
        info = versions(setup, store)
        block = render_block(args, results, setup, data, produce_s, info, started_at)
        print()
        print(block)
        if args.output != "-":
            write_doc(Path(args.output), block, MARK_BEGIN, MARK_END, "# Benchmarks\n")
            print(f"\nwritten to {args.output}")
        print(f"total {time.monotonic() - total:.0f}s")
        return 0 if results and all(r.ok for r in results) else 1
    finally:
        cleanup(args, data, store, groups)


if __name__ == "__main__":
    sys.exit(main())
