"""Connector configs: the three file formats, secrets, validation and the client kwargs."""

from __future__ import annotations

import json
import logging
import pickle
import ssl
from pathlib import Path

import pytest
from support.certs import make_certificates

from conductor.config import ConnectorConfig, Secret, load_config, parse_config, read_raw
from conductor.errors import ConfigError

ES_CLASS = "com.datamountaineer.streamreactor.connect.elastic8.ElasticSinkConnector"
CASSANDRA_SOURCE = "io.lenses.streamreactor.connect.cassandra.source.CassandraSourceConnector"
FILE_PROVIDER = "org.apache.kafka.common.config.provider.FileConfigProvider"
VAULT_PROVIDER = "io.lenses.connect.secrets.providers.VaultSecretProvider"
KCQL = (
    "INSERT INTO temperatures_ SELECT * FROM temperatures.aggregated "
    "PK sensor_id WITHINDEXSUFFIX=_{YYYY-MM-dd}"
)
ES_SINK = {
    "name": "es-sink",
    "connector.class": ES_CLASS,
    "tasks.max": "3",
    "topics": "temperatures.aggregated",
    "connect.elastic.hosts": "127.0.0.1",
    "connect.elastic.port": "19200",
    "connect.elastic.kcql": KCQL,
    "connect.elastic.error.policy": "RETRY",
    "connect.elastic.max.retries": "5",
    "connect.elastic.retry.interval": "2000",
    "connect.elastic.batch.size": "500",
    "key.converter": "org.apache.kafka.connect.storage.StringConverter",
    "value.converter": "org.apache.kafka.connect.json.JsonConverter",
    "value.converter.schemas.enable": "false",
}
ES_PROPERTIES = """\
# Stream-Reactor Elasticsearch sink, as run by connect-standalone
name=es-sink
connector.class=com.datamountaineer.streamreactor.connect.elastic8.ElasticSinkConnector
tasks.max=3
topics=temperatures.aggregated
connect.elastic.hosts=127.0.0.1
connect.elastic.port=19200
connect.elastic.kcql=INSERT INTO temperatures_ SELECT * FROM temperatures.aggregated \\
    PK sensor_id WITHINDEXSUFFIX=_{YYYY-MM-dd}
connect.elastic.error.policy=RETRY
connect.elastic.max.retries=5
connect.elastic.retry.interval=2000
connect.elastic.batch.size=500
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
value.converter.schemas.enable=false
"""
ES_YAML = f"""\
name: es-sink
config:
  connector.class: {ES_CLASS}
  tasks.max: 3
  topics: temperatures.aggregated
  connect.elastic.hosts: 127.0.0.1
  connect.elastic.port: 19200
  connect.elastic.kcql: "{KCQL}"
  connect.elastic.error.policy: RETRY
  connect.elastic.max.retries: 5
  connect.elastic.retry.interval: 2000
  connect.elastic.batch.size: 500
  key.converter: org.apache.kafka.connect.storage.StringConverter
  value.converter: org.apache.kafka.connect.json.JsonConverter
  value.converter.schemas.enable: false
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(raw: dict[str, str], environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, source="test.properties", environ=environ or {})
    assert info.value.source == "test.properties"
    return info.value.problems


def es(**changes: str | None) -> dict[str, str]:
    raw = {**ES_SINK, **{key.replace("_", "."): value for key, value in changes.items()}}
    return {key: value for key, value in raw.items() if value is not None}


# -- formats -------------------------------------------------------------------------------


def rest_json() -> str:
    config = {k: v for k, v in ES_SINK.items() if k != "name"}
    config.update({"tasks.max": 3, "connect.elastic.port": 19200, "value.converter.schemas.enable": False})
    return json.dumps({"name": "es-sink", "config": config})


@pytest.mark.parametrize(
    ("filename", "text"),
    [
        ("es.properties", ES_PROPERTIES),
        ("es.json", rest_json()),
        ("flat.json", json.dumps(ES_SINK)),
        ("es.yaml", ES_YAML),
        ("flat.yml", "\n".join(f"{k}: {json.dumps(v)}" for k, v in ES_SINK.items())),
    ],
)
def test_a_stream_reactor_es_config_reads_the_same_in_every_format(
    tmp_path: Path, filename: str, text: str
) -> None:
    config = load_config(write(tmp_path, filename, text), environ={})
    assert config.source == str(tmp_path / filename)
    assert (config.name, config.group_id, config.sink) == (
        "es-sink",
        "connect-es-sink",
        "elasticsearch",
    )
    assert config.connector_class == ES_CLASS
    assert (config.topics, config.topics_regex, config.tasks_max) == (
        ("temperatures.aggregated",),
        None,
        3,
    )
    assert config.kcql == KCQL
    errors = config.errors
    assert (errors.policy, errors.max_retries, errors.retry_interval_ms) == ("RETRY", 5, 2000)
    assert (errors.tolerance, errors.dead_letter) == ("none", None)
    assert config.elastic is not None and config.cassandra is None
    assert config.elastic.hosts == ("http://127.0.0.1:19200",)
    assert (
        config.elastic.batch_size,
        config.elastic.write_timeout_ms,
        config.elastic.pk_separator,
    ) == (500, 300_000, "-")
    assert config.kafka.bootstrap_servers == ("localhost:9092",)
    assert config.worker.linger_ms == 500 and config.worker.static_membership is True
    assert config.worker.batch_max_records == 500
    assert (config.notices, config.warnings) == ((), ())
    assert isinstance(config, ConnectorConfig)


def test_properties_follow_java_util_properties() -> None:
    from conductor.config.readers import parse_properties

    text = (
        "  # comment\n"
        "! another comment \\\n"
        "plain=value\n"
        "colon: value two  \n"
        "spaced   value three\n"
        "key\\ with\\ spaces = a\\tb\\nc\n"
        "unicode=caf\\u00e9 \\u0041\n"
        "escaped\\=key=x\\:y\\\\z\n"
        "multi = first, \\\n"
        "        second, \\\r\n"
        "\t third\r\n"
        "twoslashes=a\\\\\n"
        "next=b\n"
        "empty\n"
        "equals==x\n"
        "last=at the end\\"
    )
    entries, warnings = parse_properties(text)
    assert entries == {
        "plain": "value",
        "colon": "value two  ",
        "spaced": "value three",
        "key with spaces": "a\tb\nc",
        "unicode": "café A",
        "escaped=key": "x:y\\z",
        "multi": "first, second, third",
        "twoslashes": "a\\",
        "next": "b",
        "empty": "",
        "equals": "=x",
        "last": "at the end",
    }
    assert warnings == []


def test_properties_errors_and_duplicates_carry_line_numbers(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.properties", "name=x\n\nbroken=\\u12G4\n")
    with pytest.raises(ConfigError) as info:
        read_raw(bad)
    assert info.value.problems == ["line 3: malformed \\uxxxx escape"]
    assert info.value.source == str(bad)
    dup = write(tmp_path, "dup.properties", ES_PROPERTIES + "tasks.max=4\n")
    config = load_config(dup, environ={})
    assert config.tasks_max == 4
    assert config.warnings == ("duplicate key 'tasks.max' at lines 4 and 17; the last one wins",)


def test_json_and_yaml_values_are_kept_as_written(tmp_path: Path) -> None:
    yaml_raw = read_raw(
        write(tmp_path, "c.yaml", "a: 010\nb: yes\nc: 1.50\nd: ~\ne: [x, 2]\nf:\n  g: true\n")
    )
    assert yaml_raw == {"a": "010", "b": "yes", "c": "1.50", "e": "x,2", "f.g": "true"}
    json_raw = read_raw(write(tmp_path, "c.json", '{"a": 1.50, "b": true, "c": null, "d": ["x", 2]}'))
    assert json_raw == {"a": "1.50", "b": "true", "d": "x,2"}


@pytest.mark.parametrize(
    ("filename", "text", "problem"),
    [
        (
            "c.ini",
            "name=x",
            "unknown config file extension '.ini' (expected one of .properties, .json, .yaml, .yml)",
        ),
        (
            "c.json",
            '{"name": "x",\n "tasks.max": }',
            "invalid JSON at line 2, column 15: Expecting value",
        ),
        (
            "c.yaml",
            "name: x\nconfig: [a\n",
            "invalid YAML at line 3, column 1: expected ',' or ']', but got '<stream end>'",
        ),
        ("c.yaml", "- a\n- b\n", "expected an object of settings, found list"),
        ("c.yml", "", "expected an object of settings, found an empty file"),
        (
            "c.json",
            '{"name": "a", "config": {"name": "b"}}',
            "name: 'a' outside 'config' differs from 'b' inside it",
        ),
    ],
)
def test_unreadable_files_give_a_clear_error(tmp_path: Path, filename: str, text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, filename, text))
    assert info.value.problems == [problem]


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.properties")


def test_overrides_apply_on_top_of_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "es.properties", ES_PROPERTIES + "bootstrap.servers=kafka1:9092\n")
    config = load_config(
        path, overrides={"bootstrap.servers": "127.0.0.1:19092", "tasks.max": "2"}, environ={}
    )
    assert (config.kafka.bootstrap_servers, config.tasks_max) == (("127.0.0.1:19092",), 2)


# -- secrets -------------------------------------------------------------------------------


def test_secret_hides_its_value() -> None:
    secret = Secret("hunter2")
    assert (str(secret), repr(secret), f"{secret}", "%s" % (secret,)) == (  # noqa: UP031 - the % operator is what is tested
        "******",
        "'******'",
        "******",
        "******",
    )
    assert secret.reveal() == "hunter2"
    assert secret == Secret("hunter2") and secret != Secret("other") and secret != "hunter2"
    assert pickle.loads(pickle.dumps(secret)).reveal() == "hunter2"
    with pytest.raises(AttributeError):
        secret._value = "x"  # type: ignore[misc]


def test_env_and_file_references_resolve_and_stay_hidden(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = write(
        tmp_path,
        "secrets.properties",
        "es.user=elastic\nes.password=s3cr3t-file\nkafka.pw=k@fka-pw\n",
    )
    raw = es(
        connect_elastic_hosts="${env:ES_HOST}",
        connect_elastic_use_http_username=f"${{file:{secrets}:es.user}}",
        connect_elastic_use_http_password=f"${{file:{secrets}:es.password}}",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_jaas_config="org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="conductor" password="${{file:{secrets}:kafka.pw}}";',
        bootstrap_servers="${env:KAFKA}",
        connect_elastic_batchsize="9",
    )
    caplog.set_level(logging.DEBUG, logger="conductor.config")
    config = parse_config(raw, environ={"ES_HOST": "es-secret-host", "KAFKA": "kafka-secret:9092"})
    assert config.elastic is not None
    assert config.elastic.hosts == ("http://es-secret-host:19200",)
    credentials = config.elastic.credentials
    assert credentials is not None and credentials.username == "elastic"
    assert isinstance(credentials.password, Secret) and credentials.password.reveal() == "s3cr3t-file"
    assert isinstance(config.raw["connect.elastic.hosts"], Secret)
    kafka = config.kafka.consumer_kwargs()
    assert kafka["bootstrap_servers"] == ["kafka-secret:9092"]
    sasl = (kafka["sasl_mechanism"], kafka["sasl_plain_username"], kafka["sasl_plain_password"])
    assert sasl == ("PLAIN", "conductor", "k@fka-pw")
    assert config.elastic.client_kwargs()["basic_auth"] == ("elastic", "s3cr3t-file")
    shown = " ".join(
        [
            repr(config),
            str(config),
            repr(config.raw),
            json.dumps(config.describe()),
            " ".join(config.warnings),
        ]
    )
    for value in ("s3cr3t-file", "k@fka-pw", "es-secret-host", "kafka-secret", 'conductor"'):
        assert value not in shown
    assert config.describe()["connect.elastic.use.http.password"] == "******"
    assert config.describe()["sasl.jaas.config"] == "******"
    assert (
        "unknown key 'connect.elastic.batchsize'; did you mean 'connect.elastic.batch.size'?"
        in config.warnings
    )


def test_password_keys_are_secret_without_a_reference() -> None:
    config = parse_config(
        es(
            connect_elastic_use_http_username="elastic",
            connect_elastic_use_http_password="plain-pw",
            ssl_truststore_password="ts-pw",
        ),
        environ={},
    )
    assert config.elastic is not None and config.elastic.credentials is not None
    assert config.elastic.credentials.password == Secret("plain-pw")
    assert config.raw["ssl.truststore.password"] == Secret("ts-pw")
    assert "plain-pw" not in repr(config) and "ts-pw" not in str(config.describe())
    assert config.describe()["name"] == "es-sink"


def test_unresolved_references_name_the_key_and_the_reference(tmp_path: Path) -> None:
    secrets = write(tmp_path, "s.properties", "other=the-secret-value\n")
    problems = problems_of(
        es(
            name="${env:CONNECTOR_NAME}",
            connect_elastic_use_http_password=f"${{file:{secrets}:es.password}}",
            ssl_key_password=f"${{file:{tmp_path}/missing.properties:k}}",
            connect_elastic_use_http_username="${vault:secret/es:user}",
        )
    )
    assert problems == [
        "name: cannot resolve ${env:CONNECTOR_NAME}: environment variable 'CONNECTOR_NAME' is not set",
        f"connect.elastic.use.http.password: cannot resolve ${{file:{secrets}:es.password}}: "
        f"key 'es.password' not found in {secrets}",
        f"ssl.key.password: cannot resolve ${{file:{tmp_path}/missing.properties:k}}: "
        f"file {tmp_path}/missing.properties not found",
        "connect.elastic.use.http.username: cannot resolve ${vault:secret/es:user}: "
        "unknown config provider 'vault' (known: directory, env, file)",
    ]
    assert "the-secret-value" not in " ".join(problems)


def test_declared_config_providers_and_the_directory_provider(tmp_path: Path) -> None:
    (tmp_path / "es_password").write_text("from-a-dir\n")
    secrets = write(tmp_path, "s.properties", "user=elastic\n")
    raw = es(
        config_providers="secrets,vault,dir",
        **{
            "config.providers.secrets.class": FILE_PROVIDER,
            "config.providers.vault.class": VAULT_PROVIDER,
            "config.providers.vault.param.vault.addr": "http://vault:8200",
            "config.providers.dir.class": FILE_PROVIDER.replace("File", "Directory"),
            "connect.elastic.use.http.username": f"${{secrets:{secrets}:user}}",
            "connect.elastic.use.http.password": f"${{dir:{tmp_path}:es_password}}",
        },
    )
    config = parse_config(raw, environ={})
    credentials = config.elastic.credentials if config.elastic else None
    assert credentials is not None and credentials.username == "elastic"
    assert credentials.password.reveal() == "from-a-dir"
    assert config.warnings == ()
    raw["ssl.keystore.password"] = "${vault:secret/es:ks}"
    assert problems_of(raw) == [
        "ssl.keystore.password: cannot resolve ${vault:secret/es:ks}: config provider 'vault' "
        f"({VAULT_PROVIDER}) is not supported; conductor "
        "supports EnvVarConfigProvider, FileConfigProvider and DirectoryConfigProvider"
    ]


def test_a_secret_never_appears_in_a_problem() -> None:
    problems = problems_of(
        es(tasks_max="${env:TASKS}", connect_elastic_port="${env:PORT}"),
        {"TASKS": "x9", "PORT": "p0rt"},
    )
    assert problems == [
        "tasks.max: expected an integer >= 1, got ******",
        "connect.elastic.port: expected an integer from 1 to 65535, got ******",
    ]


# -- validation ----------------------------------------------------------------------------


def test_every_problem_is_listed_at_once() -> None:
    raw = es(
        name=None,
        tasks_max="three",
        topics_regex="temperatures\\..*",
        connect_elastic_kcql=None,
        connect_elastic_error_policy="RETRYY",
        connect_elastic_batch_size="0",
        connect_elastic_protocol="ftp",
        errors_tolerance="some",
        errors_log_enable="yes",
        conductor_worker_heartbeat_timeout_s="soon",
    )
    problems = problems_of(raw)
    assert problems == [
        "name: required, but missing",
        "topics, topics.regex: set exactly one of them, not both",
        "tasks.max: expected an integer >= 1, got 'three'",
        "connect.elastic.kcql: required for the elasticsearch sink, but missing",
        "connect.elastic.error.policy: expected one of NOOP, THROW, RETRY, got 'RETRYY'",
        "errors.tolerance: expected one of none, all, got 'some'",
        "errors.log.enable: expected true or false, got 'yes'",
        "connect.elastic.protocol: expected one of http, https, got 'ftp'",
        "connect.elastic.batch.size: expected an integer >= 1, got '0'",
        "conductor.worker.heartbeat.timeout.s: expected a number >= 1.0, got 'soon'",
    ]
    with pytest.raises(ConfigError) as info:
        parse_config(raw, source="es.properties", environ={})
    assert str(info.value).startswith("es.properties: 10 problem(s)\n  - name: required, but missing\n")


def test_topics_or_a_valid_regex_is_required() -> None:
    assert problems_of(es(topics=" , ")) == ["topics: required (or topics.regex), but missing"]
    assert problems_of(es(topics=None, topics_regex="temp[")) == [
        "topics.regex: not a valid regular expression (unterminated character set at position 4)"
    ]
    config = parse_config(es(topics=None, topics_regex="temperatures\\..*"), environ={})
    assert (config.topics, config.topics_regex) == ((), "temperatures\\..*")
    assert parse_config(es(topics=" a, b ,,c "), environ={}).topics == ("a", "b", "c")


def test_values_are_stripped_and_empty_means_default() -> None:
    config = parse_config(
        es(tasks_max="  2 ", connect_elastic_batch_size="", connect_elastic_error_policy=" noop "),
        environ={},
    )
    assert (config.tasks_max, config.errors.policy) == (2, "NOOP")
    assert config.elastic is not None and config.elastic.batch_size == 4000
    assert config.describe()["connect.elastic.batch.size"] == "4000"


def test_unknown_keys_warn_with_the_closest_known_key() -> None:
    config = parse_config(
        es(connect_elastic_batchsize="10", my_own_key="1"), source="es.properties", environ={}
    )
    assert config.warnings == (
        "unknown key 'connect.elastic.batchsize'; did you mean 'connect.elastic.batch.size'?",
        "unknown key 'my.own.key'",
    )


def test_worker_client_and_provider_keys_are_known() -> None:
    raw = es(
        config_providers="file",
        **{
            "config.providers.file.class": FILE_PROVIDER,
            "consumer.override.max.poll.records": "100",
            "producer.override.acks": "all",
            "value.converter.schema.registry.url": "http://sr:8081",
            "errors.deadletterqueue.topic.name": "es-sink-dlq",
            "errors.tolerance": "all",
            "connect.progress.enabled": "false",
            "connect.elastic.tableprefix": "dev_",
        },
    )
    config = parse_config(raw, environ={})
    assert config.warnings == ()
    assert config.errors.dead_letter is not None
    assert (config.errors.dead_letter.topic, config.errors.tolerance, config.worker.progress) == (
        "es-sink-dlq",
        "all",
        False,
    )
    assert config.kafka.consumer["max_poll_records"] == 100
    assert config.notices == (
        "value.converter.schema.registry.url has no effect here: value.converter is "
        "org.apache.kafka.connect.json.JsonConverter, which reads no schema.registry.url",
        "connect.elastic.tableprefix has no effect here: Stream-Reactor hands it to its HTTP client as a "
        "URL path prefix, which that client drops; index names come from the KCQL target",
        "producer.override.acks has no effect here: conductor sets acks itself: the dead-letter producer "
        "waits for all replicas",
    )


def test_keys_conductor_cannot_honour_are_refused_or_reported() -> None:
    """Going on would write other data than Kafka Connect: refused. Nothing else is lost: reported."""
    # transforms used to be refused here; Single Message Transforms run now (tests/conductor/test_transforms.py)
    schema_type = "org.apache.kafka.connect.transforms.SetSchemaMetadata$Value"
    problems = problems_of(
        es(
            transforms="schema",
            value_converter="io.apicurio.registry.utils.converter.AvroConverter",
            **{"transforms.schema.type": schema_type},
        )
    )
    assert problems[0].startswith(
        f"transforms.schema.type: {schema_type} is not supported: it names schemas, which schemaless JSON "
        "has none of; conductor has: InsertField$Key, InsertField$Value,"
    )
    assert problems[1:] == [
        "value.converter: io.apicurio.registry.utils.converter.AvroConverter is not supported; conductor reads "
        "JsonConverter (with or without schemas.enable), StringConverter, and with a Schema Registry "
        "io.confluent.connect.avro.AvroConverter, io.confluent.connect.protobuf.ProtobufConverter, "
        "io.confluent.connect.json.JsonSchemaConverter",
    ]
    config = parse_config(
        es(
            errors_deadletterqueue_topic_name="dlq",
            **{"consumer.override.group.id": "mine", "consumer.override.fancy.thing": "1"},
        ),
        environ={},
    )
    assert config.errors.dead_letter is None
    assert config.notices == (
        "errors.deadletterqueue.topic.name has no effect here: errors.tolerance is none, so a record that "
        "cannot be decoded stops the task and none is sent to the dead-letter topic (Kafka Connect would "
        "copy it there first, again at every restart)",
        "consumer.override.fancy.thing has no effect here: conductor's Kafka consumer has no such setting",
        "consumer.override.group.id has no effect here: conductor sets group.id itself: the group is "
        "connect-<name>, as Kafka Connect's",
    )
    assert config.warnings == ()
    assert problems_of(
        es(errors_deadletterqueue_topic_name="temperatures.aggregated", errors_tolerance="all")
    ) == [
        "errors.deadletterqueue.topic.name: 'temperatures.aggregated' is also in topics; failed records would loop"
    ]


@pytest.mark.parametrize(
    ("converters", "problem"),
    [
        ({"value.converter": "org.apache.kafka.connect.converters.ByteArrayConverter"},
         "value.converter: org.apache.kafka.connect.converters.ByteArrayConverter gives raw bytes, which no "
         "sink can write as a document or a row"),
    ],
)  # fmt: skip
def test_converters_that_would_give_other_data_are_refused(converters: dict, problem: str) -> None:
    assert problems_of(es(**{key.replace(".", "_"): value for key, value in converters.items()})) == [problem]


@pytest.mark.parametrize(
    ("converters", "value_schemas", "key_schemas"),
    [
        ({"value.converter": "org.apache.kafka.connect.json.JsonConverter", "value.converter.schemas.enable": None},
         True, False),  # JsonConverter's default is schemas.enable=true
        ({"key.converter": "org.apache.kafka.connect.json.JsonConverter", "key.converter.schemas.enable": "true"},
         False, True),
        ({"value.converter.schemas.enable": "true", "key.converter": None, "key.converter.schemas.enable": "true"},
         True, True),
        ({"value.converter": "org.apache.kafka.connect.json.JsonConverter", "value.converter.schemas.enable": "false"},
         False, False),
    ],
)  # fmt: skip
def test_jsonconverter_with_schemas_reads_the_envelope(
    converters: dict, value_schemas: bool, key_schemas: bool
):
    """schemas.enable=true used to be refused; the envelope is read now (tests/conductor/test_connectjson.py)."""
    config = parse_config(
        es(**{key.replace(".", "_"): value for key, value in converters.items()}), environ={}
    )
    formats = (config.value_converter.format, config.key_converter.format)
    assert formats == tuple("connect-json" if on else "json" for on in (value_schemas, key_schemas))


def test_converters_conductor_reads_as_kafka_connect_would() -> None:
    for value_converter in ("org.apache.kafka.connect.storage.StringConverter", None):
        config = parse_config(
            es(value_converter=value_converter, value_converter_schemas_enable=None, key_converter=None),
            environ={},
        )
        assert (config.notices, config.warnings) == ((), ())
    bytes_key = parse_config(
        es(key_converter="org.apache.kafka.connect.converters.ByteArrayConverter"), environ={}
    )
    assert bytes_key.notices == ()
    string_value = parse_config(
        es(value_converter="org.apache.kafka.connect.storage.StringConverter"), environ={}
    )
    assert string_value.notices == (
        "value.converter.schemas.enable has no effect here: value.converter is not JsonConverter",
    )


@pytest.mark.parametrize(
    ("connector_class", "sink"),
    [
        (ES_CLASS, "elasticsearch"),
        ("io.lenses.streamreactor.connect.elastic8.Elastic8SinkConnector", "elasticsearch"),
        ("io.lenses.streamreactor.connect.cassandra.sink.CassandraSinkConnector", "cassandra"),
        ("com.datamountaineer.streamreactor.connect.cassandra.sink.CassandraSinkConnector", "cassandra"),
    ],
)
def test_the_sink_follows_connector_class(connector_class: str, sink: str) -> None:
    raw = es(
        connector_class=connector_class,
        connect_cassandra_key_space="ks",
        connect_cassandra_kcql="INSERT INTO t SELECT * FROM a",
    )
    config = parse_config(raw, environ={})
    assert config.sink == sink
    prefix, other = (
        ("connect.cassandra.", "cassandra")
        if sink == "elasticsearch"
        else ("connect.elastic.", "elasticsearch")
    )
    assert sorted(config.notices) == sorted(
        f"{key} has no effect here: it belongs to the {other} sink, and connector.class names the {sink} sink"
        for key in raw
        if key.startswith(prefix)
    )
    assert config.kcql == (KCQL if sink == "elasticsearch" else "INSERT INTO t SELECT * FROM a")


def test_without_connector_class_the_keys_choose_the_sink() -> None:
    assert parse_config(es(connector_class=None), environ={}).sink == "elasticsearch"
    both = es(connector_class=None, connect_cassandra_key_space="ks")
    assert problems_of(both) == [
        "connector.class: missing, and both connect.elastic.* and connect.cassandra.* keys "
        "are set; set connector.class to choose the sink"
    ]
    neither = {"name": "x", "topics": "t"}
    assert problems_of(neither) == [
        "connector.class: missing, and no connect.elastic.* or connect.cassandra.* keys "
        "tell which sink to run"
    ]
    assert problems_of(es(connector_class="io.confluent.connect.jdbc.JdbcSinkConnector"))[0].startswith(
        "connector.class: io.confluent.connect.jdbc.JdbcSinkConnector is not supported"
    )
    assert problems_of(es(connector_class=CASSANDRA_SOURCE)) == [
        f"connector.class: {CASSANDRA_SOURCE} is a source connector; conductor runs sinks"
    ]


# -- sections ------------------------------------------------------------------------------


def test_kafka_python_kwargs(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path)
    raw = es(
        security_protocol="SASL_SSL",
        sasl_mechanism="scram-sha-512",
        sasl_jaas_config="org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="u" password="p\\"w";',
        **{
            "consumer.override.max.poll.records": "250",
            "consumer.override.auto.offset.reset": "latest",
            "consumer.session.timeout.ms": "10000",
            "consumer.override.session.timeout.ms": "20000",
            "consumer.override.client.id": "es-sink-consumer",
            "consumer.override.isolation.level": "read_committed",
            "consumer.override.ssl.cafile": str(certs.ca),
            "consumer.override.ssl.endpoint.identification.algorithm": "",
        },
    )
    kwargs = parse_config(
        raw, environ={"CONDUCTOR_KAFKA_BOOTSTRAP": "k1:9092, k2:9092"}
    ).kafka.consumer_kwargs()
    context = kwargs.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext) and context.check_hostname is False
    assert kwargs == {
        "bootstrap_servers": ["k1:9092", "k2:9092"],
        "group_id": "connect-es-sink",
        "enable_auto_commit": False,
        "auto_offset_reset": "latest",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "u",
        "sasl_plain_password": 'p"w',
        "max_poll_records": 250,
        "session_timeout_ms": 20000,
        "client_id": "es-sink-consumer",
        "isolation_level": "read_committed",
    }


def test_each_client_has_its_own_overrides_and_shares_the_connection(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path)
    raw = es(
        bootstrap_servers="k1:9092",
        security_protocol="SSL",
        **{
            "consumer.override.ssl.cafile": str(certs.ca),
            "consumer.override.request.timeout.ms": "40000",
            "consumer.override.client.id": "es-sink-consumer",
            "consumer.override.max.poll.records": "250",
            "producer.override.request.timeout.ms": "45000",
            "producer.override.compression.type": "zstd",
            "admin.override.client.id": "es-sink-admin",
        },
    )
    kafka = parse_config(raw, environ={}).kafka
    producer = kafka.producer_kwargs()
    assert isinstance(producer.pop("ssl_context"), ssl.SSLContext)
    assert producer == {
        "bootstrap_servers": ["k1:9092"],
        "security_protocol": "SSL",
        "request_timeout_ms": 45000,
        "compression_type": "zstd",
    }
    admin = kafka.admin_kwargs()
    assert isinstance(admin.pop("ssl_context"), ssl.SSLContext)
    assert admin == {
        "bootstrap_servers": ["k1:9092"],
        "security_protocol": "SSL",
        "client_id": "es-sink-admin",
    }


def test_worker_batch_size_per_sink() -> None:
    """Elasticsearch: connect.elastic.batch.size (one bulk). Cassandra: not its batch.size,
    which bounds an unlogged batch statement; conductor.batch.max.records overrides both."""
    assert parse_config(es(), environ={}).worker.batch_max_records == 500
    cassandra = parse_config(CASSANDRA_SINK, environ={})
    assert cassandra.worker.batch_max_records == 2000 and cassandra.cassandra.batch_size == 100
    override = {"conductor.batch.max.records": "300"}
    assert parse_config(es(**override), environ={}).worker.batch_max_records == 300
    assert parse_config({**CASSANDRA_SINK, **override}, environ={}).worker.batch_max_records == 300


def test_sasl_needs_credentials_in_the_jaas_config() -> None:
    raw = es(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_jaas_config="oops secret-ish",
    )
    problems = problems_of(raw)
    assert problems == [
        'sasl.jaas.config: sasl.mechanism PLAIN needs username="..." password="..." in the JAAS config'
    ]


def test_elasticsearch_client_kwargs(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path)
    raw = es(
        connect_elastic_hosts="es1, https://es2.example.com:9243, http://es3, [::1]:9201",
        connect_elastic_protocol="https",
        connect_elastic_write_timeout="30000",
        connect_elastic_use_http_username="elastic",
        connect_elastic_use_http_password="changeme",
        ssl_cafile=str(certs.ca),
        ssl_endpoint_identification_algorithm="",
    )
    elastic = parse_config(raw, environ={}).elastic
    assert elastic is not None
    assert elastic.hosts == (
        "https://es1:19200",
        "https://es2.example.com:9243",
        "http://es3:19200",
        "https://[::1]:9201",
    )
    assert elastic.write_timeout_ms == 30_000
    kwargs = elastic.client_kwargs()
    context = kwargs.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext) and context.check_hostname is False
    assert kwargs == {"basic_auth": ("elastic", "changeme")}
    plain = parse_config(es(connect_elastic_hosts=None, connect_elastic_port=None), environ={}).elastic
    assert plain is not None and plain.hosts == ("http://localhost:9200",) and plain.client_kwargs() == {}


def test_a_client_certificate_with_an_encrypted_key_uses_its_password(tmp_path: Path) -> None:
    """ssl.key.password reaches the client: the key loads with it, and not without it."""
    certs = make_certificates(tmp_path)
    tls = {
        "connect_elastic_protocol": "https",
        "ssl_cafile": str(certs.ca),
        "ssl_certfile": str(certs.cert),
        "ssl_keyfile": str(certs.key),
    }
    elastic = parse_config(es(**tls, ssl_key_password=certs.password), environ={}).elastic
    assert elastic is not None and isinstance(elastic.client_kwargs()["ssl_context"], ssl.SSLContext)
    # Stream-Reactor takes the key password from ssl.keystore.password
    elastic = parse_config(es(**tls, ssl_keystore_password=certs.password), environ={}).elastic
    assert elastic is not None and isinstance(elastic.client_kwargs()["ssl_context"], ssl.SSLContext)
    wrong = parse_config(es(**tls, ssl_key_password="not-it"), environ={}).elastic
    with pytest.raises(ssl.SSLError):
        wrong.client_kwargs()


def test_java_keystores_are_read_at_load() -> None:
    """A JKS or PKCS12 store is read when the config loads (tests/conductor/test_keystores.py
    reads real ones): one that cannot be read stops it there, named by its key."""
    https = {"connect_elastic_protocol": "https"}
    assert problems_of(
        es(**https, ssl_truststore_location="/etc/es/truststore.jks", ssl_keystore_location="/etc/es/ks.p12")
    ) == [
        "ssl.truststore.location: cannot read /etc/es/truststore.jks: No such file or directory",
        "ssl.keystore.location: cannot read /etc/es/ks.p12: No such file or directory",
    ]
    with_pem = parse_config(
        es(**https, ssl_truststore_location="/etc/es/truststore.jks", ssl_cafile="/etc/es/ca.pem"), environ={}
    )
    assert with_pem.elastic is not None and with_pem.elastic.tls.cafile == "/etc/es/ca.pem"
    pem_store = parse_config(es(**https, ssl_truststore_location="/etc/es/ca.crt"), environ={})
    assert pem_store.elastic is not None and pem_store.elastic.tls.cafile == "/etc/es/ca.crt"
    plain_http = parse_config(es(ssl_truststore_location="/etc/es/truststore.jks"), environ={})
    assert plain_http.notices == (
        "ssl.truststore.location has no effect here: no Elasticsearch host uses https, "
        "and security.protocol is PLAINTEXT, without SSL",
    )


def test_the_bare_ssl_keys_serve_kafka_and_elasticsearch_and_the_prefixed_ones_set_them_apart() -> None:
    """One file holds what Kafka Connect splits between the worker and the connector."""
    tls = {"connect_elastic_protocol": "https", "security_protocol": "SSL"}
    shared = parse_config(es(**tls, ssl_truststore_location="/etc/ca.pem"), environ={})
    assert shared.kafka.security.tls.cafile == "/etc/ca.pem"
    assert shared.elastic is not None and shared.elastic.tls.cafile == "/etc/ca.pem"
    assert shared.notices == ()
    apart = parse_config(
        es(**tls, ssl_truststore_location="/etc/es.pem", consumer_ssl_truststore_location="/etc/kafka.pem"),
        environ={},
    )
    assert apart.kafka.security.tls.cafile == "/etc/kafka.pem"
    assert apart.elastic is not None and apart.elastic.tls.cafile == "/etc/es.pem"
    kafka_only = parse_config(es(security_protocol="SSL", ssl_truststore_location="/etc/ca.pem"), environ={})
    assert kafka_only.kafka.security.tls.cafile == "/etc/ca.pem" and kafka_only.notices == ()
    cassandra = parse_config(
        {**CASSANDRA_SINK, "ssl.truststore.location": "/etc/ca.pem", "connect.cassandra.ssl.enabled": "true"},
        environ={},
    )
    assert cassandra.notices == (
        "ssl.truststore.location has no effect here: security.protocol is PLAINTEXT, without SSL, and it "
        "belongs to the elasticsearch sink, and connector.class names the cassandra sink",
    )


def test_the_producer_and_admin_use_the_consumers_security_unless_their_own_keys_are_given() -> None:
    sasl = {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "ssl_truststore_location": "/etc/ca.pem",
        "sasl.jaas.config": 'org.apache.kafka.common.security.scram.ScramLoginModule required username="c" password="p";',
    }
    same = parse_config(es(**sasl), environ={}).kafka
    assert same.producer_security is None and same.admin_security is None
    assert list(same.securities()) == ["consumer"]
    own = {
        "producer.sasl.jaas.config": 'org.apache.kafka.common.security.plain.PlainLoginModule required username="w" password="q";',
        "producer.sasl.mechanism": "PLAIN",
    }
    config = parse_config({**es(**sasl), **own}, environ={})
    kafka = config.kafka
    assert kafka.producer_security is not None and kafka.admin_security is None
    assert (
        kafka.producer_security.sasl_mechanism == "PLAIN" and kafka.producer_security.protocol == "SASL_SSL"
    )
    assert (
        kafka.producer_security.credentials is not None
        and kafka.producer_security.credentials.username == "w"
    )
    assert kafka.producer_security.tls.cafile == "/etc/ca.pem"  # the bare key, as for the consumer
    assert kafka.security.credentials is not None and kafka.security.credentials.username == "c"
    assert list(kafka.securities()) == ["consumer", "producer"]
    assert config.notices == ()
    assert "q" not in repr(kafka) and "p;" not in repr(kafka)


CASSANDRA_SINK = {
    "name": "cassandra-sink",
    "connector.class": "io.lenses.streamreactor.connect.cassandra.sink.CassandraSinkConnector",
    "topics": "temperatures.aggregated",
    "connect.cassandra.contact.points": "127.0.0.1, 127.0.0.2",
    "connect.cassandra.port": "19042",
    "connect.cassandra.key.space": "demo",
    "connect.cassandra.kcql": "INSERT INTO readings SELECT * FROM temperatures.aggregated",
    "connect.cassandra.username": "cassandra",
    "connect.cassandra.password": "cassandra-pw",
    "connect.cassandra.consistency.level": "local_quorum",
    "read.timeout.ms": "20000",
}


def test_cassandra_settings() -> None:
    config = parse_config(CASSANDRA_SINK, environ={})
    c = config.cassandra
    assert config.sink == "cassandra" and config.elastic is None and c is not None
    assert (c.contact_points, c.port, c.keyspace) == (("127.0.0.1", "127.0.0.2"), 19042, "demo")
    assert c.credentials is not None and c.credentials.username == "cassandra"
    assert c.credentials.password == Secret("cassandra-pw") and "cassandra-pw" not in repr(config)
    assert (c.consistency_level, c.default_value, c.batch_size, c.max_in_flight) == (
        "LOCAL_QUORUM",
        "UNSET",
        100,
        128,
    )
    assert (c.connect_timeout_s, c.request_timeout_s) == (5.0, 20.0)
    errors = config.errors
    assert (errors.policy, errors.max_retries, errors.retry_interval_ms) == ("THROW", 20, 60_000)
    assert (config.notices, config.warnings) == ((), ())
    raw = {
        **CASSANDRA_SINK,
        "connect.cassandra.key.space": "",
        "connect.cassandra.delete.enabled": "true",
        "connect.cassandra.ssl.enabled": "true",
        "connect.cassandra.trust.store.path": "/etc/c/ts.jks",
        "connect.cassandra.default.value": "nothing",
    }
    assert problems_of(raw) == [
        "connect.cassandra.key.space: required for the cassandra sink, but missing",
        "connect.cassandra.trust.store.path: cannot read /etc/c/ts.jks: No such file or directory",
        "connect.cassandra.delete.statement: required when connect.cassandra.delete.enabled is true, but missing",
        "connect.cassandra.default.value: expected one of NULL, UNSET, got 'nothing'",
    ]


def test_cassandra_write_concurrency_from_either_key() -> None:
    threads = parse_config({**CASSANDRA_SINK, "connect.cassandra.threadpool.size": "16"}, environ={})
    assert threads.cassandra is not None and threads.cassandra.max_in_flight == 16
    ours = parse_config({**CASSANDRA_SINK, "conductor.cassandra.max.in.flight": "64"}, environ={})
    assert ours.cassandra is not None and ours.cassandra.max_in_flight == 64
    assert problems_of(
        {
            **CASSANDRA_SINK,
            "connect.cassandra.threadpool.size": "16",
            "conductor.cassandra.max.in.flight": "64",
        }
    ) == [
        "connect.cassandra.threadpool.size and conductor.cassandra.max.in.flight both set the write concurrency "
        "(16 and 64); keep one"
    ]


def test_worker_settings() -> None:
    raw = es(
        conductor_batch_max_bytes="1000000",
        conductor_linger_ms="0",
        conductor_worker_rss_limit_mb="0",
        conductor_drain_timeout_s="2.5",
        conductor_restart_max="0",
        conductor_index_suffix_clock="WallClock",
        conductor_static_membership="FALSE",
    )
    config = parse_config(raw, environ={})
    worker = config.worker
    assert (worker.batch_max_bytes, worker.linger_ms, worker.rss_limit_mb) == (1_000_000, 0, 0)
    assert (worker.drain_timeout_s, worker.restart_max) == (2.5, 0)
    assert (worker.static_membership, worker.heartbeat_timeout_s, worker.progress) == (False, 60.0, True)
    assert config.elastic is not None and config.elastic.suffix_clock == "wallclock"
    assert config.elastic.max_bytes == 1_000_000
    assert problems_of(es(conductor_restart_backoff_initial_s="10", conductor_restart_backoff_max_s="5")) == [
        "conductor.restart.backoff.max.s: must be >= conductor.restart.backoff.initial.s (5.0 < 10.0)"
    ]


def test_describe_lists_every_setting_with_defaults() -> None:
    described = parse_config(es(), environ={}).describe()
    assert described["name"] == "es-sink"
    assert described["connect.elastic.write.timeout"] == "300000"
    assert described["conductor.restart.max"] == "10"
    assert described["bootstrap.servers"] == "localhost:9092"
    assert list(described) == sorted(described)


def test_pem_text_inside_the_config_is_refused_naming_the_file_key() -> None:
    assert problems_of(es(ssl_keystore_key="-----BEGIN PRIVATE KEY-----")) == [
        "ssl.keystore.key: PEM text inside the config is not supported yet: give a PEM file in "
        "ssl.keystore.location"
    ]
