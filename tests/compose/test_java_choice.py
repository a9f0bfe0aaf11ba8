"""compose/local runs each server on the lowest installed Java its version supports, or on the one
named for it, and says what it saw when none fits.

The JDKs here are folders with a `release` file and a bin/java that is a two-line shell script
printing a version, as `java -version` does: enough for the finder, which starts no JVM."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys
from importlib.machinery import SourceFileLoader
from pathlib import Path

import pytest

COMPOSE = Path(__file__).resolve().parents[2] / "compose"
LAUNCHER = COMPOSE / "local"


def _load_launcher():
    loader = SourceFileLoader("compose_local", str(LAUNCHER))
    spec = importlib.util.spec_from_loader("compose_local", loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["compose_local"] = module  # dataclasses look their module up
    loader.exec_module(module)
    return module


local = _load_launcher()
servers = sys.modules["servers"]  # the compose/servers.py that compose/local imported


def fake_jdk(root: Path, name: str, version: str, release: bool = True) -> Path:
    home = root / name
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2026-04-21' >&2\n")
    java.chmod(0o755)
    if release:
        (home / "release").write_text(f'IMPLEMENTOR="Test"\nJAVA_VERSION="{version}"\n')
    return home


def server(name: str, version: str):
    """A server of compose/servers.py at another version, with the Java range of that version."""
    return dataclasses.replace(servers.SERVERS[name], version=version, java=servers.java_range(name, version))


@pytest.fixture
def jdks(tmp_path: Path) -> Path:
    root = tmp_path / "jvm"
    for name, version in [
        ("temurin-25", "25.0.3"),
        ("zulu-11", "11.0.27"),
        ("openjdk-21", "21.0.7"),
        ("java-17-openjdk", "17.0.15"),
    ]:
        fake_jdk(root, name, version)
    return root


def find(server, jdks: Path, **environ: str):
    """find_java with only the fake JDKs in view: no PATH java, no JAVA_HOME unless given."""
    return local.find_java(server, environ={"PATH": "/nonexistent", **environ}, jdk_globs=(f"{jdks}/*",))


@pytest.mark.parametrize(
    ("name", "version", "major"),
    [
        ("kafka", "4.1.1", 17),
        ("cassandra", "5.0.6", 17),
        ("elasticsearch", "8.19.4", 17),
        ("elasticsearch", "9.5.3", 21),
        ("schema-registry", "3.0.9", 17),
        ("schema-registry", "3.3.0", 21),
        ("opensearch", "2.19.6", 11),
        ("opensearch", "3.6.0", 21),
    ],
)
def test_each_server_gets_the_lowest_java_in_its_range(
    jdks: Path, name: str, version: str, major: int
) -> None:
    java = find(server(name, version), jdks)
    assert java.major == major
    assert java.origin == f"{jdks}/*"


def test_opensearch_2_is_never_given_a_java_without_the_security_manager(tmp_path: Path) -> None:
    """Java 24 removed the Security Manager that OpenSearch 2.x turns on: 25 alone does not fit."""
    root = tmp_path / "jvm"
    fake_jdk(root, "temurin-25", "25.0.3")
    with pytest.raises(local.LauncherError) as error:
        find(server("opensearch", "2.19.6"), root)
    message = str(error.value)
    assert "find Java for opensearch: opensearch 2.19.6 needs Java 11 to 21" in message
    assert f"seen: {root}/temurin-25 (Java 25.0.3, {root}/*)" in message
    assert "CONDUCTOR_OPENSEARCH_JAVA_HOME" in message


def test_no_fitting_java_lists_every_java_seen_with_its_version(tmp_path: Path) -> None:
    root = tmp_path / "jvm"
    fake_jdk(root, "java-17-openjdk", "17.0.15")
    fake_jdk(root, "java-11-openjdk", "11.0.27")
    on_path = fake_jdk(tmp_path, "path-jdk", "1.8.0_392")
    with pytest.raises(local.LauncherError) as error:
        find(server("elasticsearch", "9.5.3"), root, PATH=str(on_path / "bin"))
    message = str(error.value)
    assert "elasticsearch 9.5.3 needs Java 21 or newer; none of the Java installations found fits" in message
    assert f"seen: {on_path} (Java 1.8.0_392, `java` on PATH)" in message
    assert f"seen: {root}/java-11-openjdk (Java 11.0.27, {root}/*)" in message
    assert f"seen: {root}/java-17-openjdk (Java 17.0.15, {root}/*)" in message
    assert "openjdk-21-jdk-headless" in message


def test_no_java_at_all_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(local.LauncherError) as error:
        find(server("kafka", "4.1.1"), tmp_path / "nothing")
    assert "seen: no Java at all ($JAVA_HOME, `java` on PATH" in str(error.value)


def test_the_servers_own_variable_wins_even_over_a_lower_fitting_java(jdks: Path) -> None:
    java = find(server("kafka", "4.1.1"), jdks, CONDUCTOR_KAFKA_JAVA_HOME=str(jdks / "temurin-25"))
    assert (java.home, java.major, java.origin) == (
        str(jdks / "temurin-25"),
        25,
        "$CONDUCTOR_KAFKA_JAVA_HOME",
    )


def test_the_schema_registrys_variable_still_names_its_java(jdks: Path) -> None:
    java = find(
        server("schema-registry", "3.0.9"), jdks, CONDUCTOR_SCHEMA_REGISTRY_JAVA_HOME=str(jdks / "openjdk-21")
    )
    assert java.major == 21


def test_the_servers_own_variable_must_fit(jdks: Path) -> None:
    with pytest.raises(local.LauncherError) as error:
        find(server("cassandra", "5.0.6"), jdks, CONDUCTOR_CASSANDRA_JAVA_HOME=str(jdks / "temurin-25"))
    assert "cassandra 5.0.6 needs Java 17, but CONDUCTOR_CASSANDRA_JAVA_HOME is" in str(error.value)
    assert "(Java 25.0.3, $CONDUCTOR_CASSANDRA_JAVA_HOME)" in str(error.value)


def test_a_variable_naming_no_java_says_so(tmp_path: Path, jdks: Path) -> None:
    with pytest.raises(local.LauncherError) as error:
        find(server("kafka", "4.1.1"), jdks, CONDUCTOR_KAFKA_JAVA_HOME=str(tmp_path / "typo"))
    assert f"CONDUCTOR_KAFKA_JAVA_HOME={tmp_path / 'typo'} has no bin/java" in str(error.value)


def test_conductor_java_home_serves_the_servers_it_fits_and_is_passed_over_for_the_others(
    jdks: Path, capsys
) -> None:
    general = {"CONDUCTOR_JAVA_HOME": str(jdks / "temurin-25")}
    assert find(server("kafka", "4.1.1"), jdks, **general).major == 25
    cassandra = find(server("cassandra", "5.0.6"), jdks, **general)
    assert cassandra.major == 17
    assert "cassandra 5.0.6 needs Java 17; CONDUCTOR_JAVA_HOME is" in capsys.readouterr().out


def test_java_home_and_path_are_candidates_like_the_jdk_folders(tmp_path: Path) -> None:
    """Lowest fitting version wins wherever it was found; among equal versions, $JAVA_HOME first."""
    root = tmp_path / "jvm"
    fake_jdk(root, "temurin-25", "25.0.3")
    home = fake_jdk(tmp_path, "home-jdk", "21.0.7")
    path_jdk = fake_jdk(tmp_path, "path-jdk", "21.0.1")
    fake_jdk(root, "same-21", "21.0.7")
    java = find(server("elasticsearch", "9.5.3"), root, JAVA_HOME=str(home), PATH=str(path_jdk / "bin"))
    assert (java.home, java.origin) == (str(home), "$JAVA_HOME")


def test_a_java_on_path_through_a_link_counts_as_its_jdk(tmp_path: Path) -> None:
    """/usr/bin/java -> /etc/alternatives/java -> /usr/lib/jvm/<jdk>/bin/java: the JDK is the home."""
    jdk = fake_jdk(tmp_path / "jvm", "java-17-openjdk", "17.0.15")
    links = tmp_path / "usr-bin"
    links.mkdir()
    (links / "java").symlink_to(jdk / "bin" / "java")
    java = find(server("kafka", "4.1.1"), tmp_path / "none", PATH=str(links))
    assert (java.home, java.origin) == (str(jdk), "`java` on PATH")


def test_a_linked_jdk_folder_is_seen_once(tmp_path: Path) -> None:
    """Debian's java-1.17.0-openjdk-amd64 is a link to java-17-openjdk-amd64."""
    root = tmp_path / "jvm"
    fake_jdk(root, "java-17-openjdk-amd64", "17.0.15")
    (root / "java-1.17.0-openjdk-amd64").symlink_to(root / "java-17-openjdk-amd64")
    with pytest.raises(local.LauncherError) as error:
        find(server("elasticsearch", "9.5.3"), root)
    assert str(error.value).count("seen:") == 1


def test_without_a_release_file_the_version_comes_from_java_version(tmp_path: Path) -> None:
    root = tmp_path / "jvm"
    fake_jdk(root, "unpacked-jdk", "21.0.2", release=False)
    java = find(server("elasticsearch", "9.5.3"), root)
    assert (java.version, java.major) == ("21.0.2", 21)


@pytest.mark.parametrize(
    ("version", "major"),
    [("17.0.15", 17), ("25.0.3", 25), ("1.8.0_392", 8), ("21", 21), ("26-ea", 26), ("", 0)],
)
def test_java_major_versions(version: str, major: int) -> None:
    assert local.java_major(version) == major


def test_on_this_machine_each_server_has_a_java_that_fits() -> None:
    """`compose/local java` on the machine's own JDKs: Elasticsearch 9 and OpenSearch 3 need 21+,
    which CI must have besides Java 17."""
    environ = {**os.environ, "CONDUCTOR_ELASTICSEARCH_VERSION": "9.5.3"}
    for variable in [key for key in environ if key.endswith("JAVA_HOME") and key.startswith("CONDUCTOR_")]:
        del environ[variable]
    result = subprocess.run(
        [sys.executable, str(LAUNCHER), "java"], capture_output=True, text=True, env=environ, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "Java 21 or newer" in lines["elasticsearch"] and "9.5.3" in lines["elasticsearch"]
    assert set(lines) == {"kafka", "elasticsearch", "cassandra", "schema-registry", "opensearch"}
