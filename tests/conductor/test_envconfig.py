"""A connector config from CONNECTOR_* and CONNECT_* variables, as cp-kafka-connect names them."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from conductor import exitcodes
from conductor.cli import main
from conductor.config import Secret, parse_config
from conductor.config import keys as k
from conductor.envconfig import (
    CONNECTOR_PREFIX,
    SOURCE,
    WORKER_PREFIX,
    config_from_env,
    property_name,
    variable_name,
)
from conductor.errors import ConfigError

ES_ENV = {
    "CONNECTOR_NAME": "es-sink",
    "CONNECTOR_CONNECTOR_CLASS": "io.lenses.streamreactor.connect.elastic8.ElasticSinkConnector",
    "CONNECTOR_TASKS_MAX": "3",
    "CONNECTOR_TOPICS": "temperatures",
    "CONNECTOR_CONNECT_ELASTIC_HOSTS": "elasticsearch",
    "CONNECTOR_CONNECT_ELASTIC_PORT": "9200",
    "CONNECTOR_CONNECT_ELASTIC_KCQL": "INSERT INTO readings SELECT * FROM temperatures PK sensor_id",
    "CONNECTOR_CONNECT_ELASTIC_ERROR_POLICY": "RETRY",
    "CONNECTOR_CONDUCTOR_REST_ALLOW_UNAUTHENTICATED": "true",  # a container's listener: on 0.0.0.0
    "CONNECT_BOOTSTRAP_SERVERS": "kafka:9094",
    "CONNECT_VALUE_CONVERTER": "org.apache.kafka.connect.json.JsonConverter",
    "CONNECT_VALUE_CONVERTER_SCHEMAS_ENABLE": "false",
    "CONNECT_CONSUMER_MAX_POLL_RECORDS": "500",
    "CONNECT_LISTENERS": "http://0.0.0.0:8083",
    "CONNECT_LOG4J_ROOT_LOGLEVEL": "INFO",  # cp-kafka-connect's log4j, not config
    "CONNECT_LOG4J_LOGGERS": "org.reflections=ERROR",
    "PATH": "/usr/bin",
    "HOSTNAME": "conductor-1",
}


@pytest.mark.parametrize(
    ("variable", "key"),
    [
        ("CONNECT_BOOTSTRAP_SERVERS", "bootstrap.servers"),
        ("CONNECT_VALUE_CONVERTER_SCHEMA_REGISTRY_URL", "value.converter.schema.registry.url"),
        ("CONNECT_CONSUMER_OVERRIDE_ISOLATION_LEVEL", "consumer.override.isolation.level"),
        # dub's own examples: two underscores are an underscore, three a dash
        ("CONNECT_WITH__UNDERSCORE", "with_underscore"),
        ("CONNECT_WITH___DASH", "with-dash"),
        ("CONNECT_A_B__C___D_E", "a.b_c-d.e"),
        ("CONNECT_listeners", "listeners"),
    ],
)
def test_worker_variables_are_named_as_cp_kafka_connect_names_them(variable: str, key: str) -> None:
    assert property_name(variable, WORKER_PREFIX) == key


@pytest.mark.parametrize(
    ("variable", "key"),
    [
        ("CONNECTOR_NAME", "name"),
        ("CONNECTOR_CONNECTOR_CLASS", "connector.class"),
        ("CONNECTOR_CONNECT_ELASTIC_HOSTS", "connect.elastic.hosts"),
        ("CONNECTOR_CONNECT_CASSANDRA_DELETE_STRUCT__FLDS", "connect.cassandra.delete.struct_flds"),
        ("CONNECTOR_TRANSFORMS_ROUTE_TYPE", "transforms.route.type"),
    ],
)
def test_connector_variables_take_the_same_rule_after_their_prefix(variable: str, key: str) -> None:
    assert property_name(variable, CONNECTOR_PREFIX) == key


@pytest.mark.parametrize("key", sorted(k.KNOWN_KEYS))
def test_every_known_key_can_be_spelled_as_a_variable(key: str) -> None:
    assert property_name(variable_name(key, CONNECTOR_PREFIX), CONNECTOR_PREFIX) == key


def test_a_whole_elasticsearch_sink_from_the_environment() -> None:
    raw = config_from_env(ES_ENV)
    assert raw == {
        "name": "es-sink",
        "connector.class": ES_ENV["CONNECTOR_CONNECTOR_CLASS"],
        "tasks.max": "3",
        "topics": "temperatures",
        "connect.elastic.hosts": "elasticsearch",
        "connect.elastic.port": "9200",
        "connect.elastic.kcql": ES_ENV["CONNECTOR_CONNECT_ELASTIC_KCQL"],
        "connect.elastic.error.policy": "RETRY",
        "conductor.rest.allow.unauthenticated": "true",
        "bootstrap.servers": "kafka:9094",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
        "consumer.max.poll.records": "500",
        "listeners": "http://0.0.0.0:8083",
    }
    config = parse_config(raw, source=SOURCE, environ=ES_ENV)
    assert config.kafka.bootstrap_servers == ("kafka:9094",)
    assert config.kafka.group_id == "connect-es-sink"
    assert config.kafka.consumer["max_poll_records"] == 500
    assert config.elastic is not None and config.elastic.hosts == ("http://elasticsearch:9200",)
    assert config.errors.policy == "RETRY"
    assert (config.rest.host, config.rest.port) == ("0.0.0.0", 8083)
    assert config.warnings == ()


def test_a_connector_key_wins_over_the_same_worker_key_as_in_kafka_connect() -> None:
    environ = {
        **ES_ENV,
        "CONNECT_KEY_CONVERTER": "org.apache.kafka.connect.json.JsonConverter",
        "CONNECTOR_KEY_CONVERTER": "org.apache.kafka.connect.storage.StringConverter",
    }
    assert config_from_env(environ)["key.converter"] == "org.apache.kafka.connect.storage.StringConverter"


def test_secrets_still_come_from_files_named_in_the_variables(tmp_path: Path) -> None:
    secrets = tmp_path / "es.properties"
    secrets.write_text("password=s3cr3t\n")
    environ = {
        **ES_ENV,
        "CONNECTOR_CONNECT_ELASTIC_USE_HTTP_USERNAME": "conductor",
        "CONNECTOR_CONNECT_ELASTIC_USE_HTTP_PASSWORD": f"${{file:{secrets}:password}}",
    }
    config = parse_config(config_from_env(environ), source=SOURCE, environ=environ)
    assert config.elastic is not None and config.elastic.credentials is not None
    assert config.elastic.credentials.password == Secret("s3cr3t")
    assert "s3cr3t" not in repr(config)


def test_without_a_connector_variable_it_says_how_to_give_one() -> None:
    with pytest.raises(ConfigError) as raised:
        config_from_env({"CONNECT_BOOTSTRAP_SERVERS": "kafka:9094", "PATH": "/usr/bin"})
    assert raised.value.source == SOURCE
    assert raised.value.problems == [
        "no CONNECTOR_* variable is set: give the connector's keys as CONNECTOR_NAME, "
        "CONNECTOR_CONNECTOR_CLASS, CONNECTOR_TOPICS, CONNECTOR_CONNECT_ELASTIC_HOSTS, ..."
    ]


def test_a_stream_reactor_key_under_the_worker_prefix_names_the_variable_to_write() -> None:
    environ = {**ES_ENV, "CONNECT_ELASTIC_BATCH_SIZE": "500", "CONNECT_CASSANDRA_KEY_SPACE": "iot"}
    with pytest.raises(ConfigError) as raised:
        config_from_env(environ)
    assert raised.value.problems == [
        "CONNECT_CASSANDRA_KEY_SPACE sets 'cassandra.key.space'; for 'connect.cassandra.key.space' "
        "write CONNECTOR_CONNECT_CASSANDRA_KEY_SPACE",
        "CONNECT_ELASTIC_BATCH_SIZE sets 'elastic.batch.size'; for 'connect.elastic.batch.size' "
        "write CONNECTOR_CONNECT_ELASTIC_BATCH_SIZE",
    ]


def test_two_variables_that_spell_one_key_are_refused_rather_than_one_chosen() -> None:
    with pytest.raises(ConfigError) as raised:
        config_from_env({**ES_ENV, "CONNECTOR_name": "other"})
    assert raised.value.problems == ["CONNECTOR_NAME, CONNECTOR_name: each sets 'name'; keep one"]


def test_start_reads_env_config_and_a_config_error_exits_2_with_the_reason() -> None:
    environ = {key: value for key, value in ES_ENV.items() if key != "CONNECTOR_TOPICS"}
    for arguments, extra in ((["--config", "env:"], {}), ([], {"CONDUCTOR_CONFIG": "env:"})):
        result = CliRunner().invoke(main, ["start", *arguments], env={**environ, **extra})
        assert result.exit_code == exitcodes.CONFIG_ERROR, result.output
        assert f"{SOURCE}: 1 problem(s)" in result.output
        assert "topics: required (or topics.regex), but missing" in result.output


def test_start_names_a_config_file_that_is_not_there(tmp_path: Path) -> None:
    missing = tmp_path / "connector.properties"
    result = CliRunner().invoke(main, ["start"], env={"CONDUCTOR_CONFIG": str(missing)})
    assert result.exit_code == exitcodes.CONFIG_ERROR
    assert f"config file {missing} not found" in result.output
