"""key.converter and value.converter with a Schema Registry, read as Kafka Connect's Confluent
converters take their settings: the registry's URL and credentials, the settings that change what
is read, and those that only matter when records are written."""

from __future__ import annotations

import pytest

from conductor.config import Secret, parse_config
from conductor.errors import ConfigError

SINK = {
    "name": "es-sink",
    "connector.class": "io.lenses.streamreactor.connect.elastic8.ElasticSinkConnector",
    "topics": "readings",
    "connect.elastic.hosts": "localhost",
    "connect.elastic.kcql": "INSERT INTO readings SELECT * FROM readings",
}
AVRO = "io.confluent.connect.avro.AvroConverter"
PROTOBUF = "io.confluent.connect.protobuf.ProtobufConverter"
JSON_SCHEMA = "io.confluent.connect.json.JsonSchemaConverter"


def parse(**settings: str):
    return parse_config({**SINK, **settings}, environ={})


def problems(**settings: str) -> list[str]:
    with pytest.raises(ConfigError) as refused:
        parse(**settings)
    return refused.value.problems


def test_each_registry_converter_names_its_format_and_registry():
    for converter, format in ((AVRO, "avro"), (PROTOBUF, "protobuf"), (JSON_SCHEMA, "json-schema")):
        config = parse(
            **{
                "value.converter": converter,
                "value.converter.schema.registry.url": "http://registry:8081",
                "key.converter": converter,
                "key.converter.schema.registry.url": "http://keys:8081/",
            }
        )
        assert (config.value_converter.format, config.value_converter.registry_url) == (
            format,
            "http://registry:8081",
        )
        assert (config.key_converter.format, config.key_converter.registry_url) == (
            format,
            "http://keys:8081/",
        )
        assert config.value_converter.registry_user_info is None
        assert config.value_converter.converter == converter  # as dead-letter headers name it
    plain = parse()
    assert (plain.value_converter.format, plain.key_converter.format) == ("json", "json")


def test_defaults_and_options_that_change_what_is_read():
    config = parse(
        **{
            "value.converter": PROTOBUF,
            "value.converter.schema.registry.url": "http://r:8081",
            "value.converter.int.for.enums": "true",
        }
    )
    assert dict(config.value_converter.options) == {
        "wrapper.for.nullables": False,
        "int.for.enums": True,
        "generate.index.for.unions": True,
    }
    assert problems(
        **{
            "value.converter": AVRO,
            "value.converter.schema.registry.url": "http://r:8081",
            "value.converter.enhanced.avro.schema.support": "maybe",
        }
    ) == ["value.converter.enhanced.avro.schema.support: expected true or false, got 'maybe'"]


def test_basic_auth_from_user_info_or_from_the_url():
    config = parse(
        **{
            "value.converter": AVRO,
            "value.converter.schema.registry.url": "https://r:8081",
            "value.converter.basic.auth.credentials.source": "USER_INFO",
            "value.converter.basic.auth.user.info": "alice:s3cret",
        }
    )
    assert config.value_converter.registry_user_info == Secret("alice:s3cret")
    assert "s3cret" not in repr(config)
    # Confluent's newer spelling of the same setting.
    newer = parse(
        **{
            "value.converter": AVRO,
            "value.converter.schema.registry.url": "https://r:8081",
            "value.converter.schema.registry.basic.auth.user.info": "bob:pw",
        }
    )
    assert newer.value_converter.registry_user_info == Secret("bob:pw")
    from_url = parse(
        **{
            "value.converter": AVRO,
            "value.converter.schema.registry.url": "https://carol:p%40ss@r:8081/apis/ccompat/v7",
            "value.converter.basic.auth.credentials.source": "URL",
        }
    )
    # The password leaves the URL (which logs and states name) for the credentials.
    assert from_url.value_converter.registry_url == "https://r:8081/apis/ccompat/v7"
    assert from_url.value_converter.registry_user_info == Secret("carol:p@ss")


def test_what_cannot_work_is_refused_and_names_the_key():
    assert problems(**{"value.converter": AVRO}) == [
        "value.converter.schema.registry.url: required for io.confluent.connect.avro.AvroConverter, but missing"
    ]
    assert problems(
        **{
            "value.converter": AVRO,
            "value.converter.schema.registry.url": "http://r:8081",
            "value.converter.basic.auth.credentials.source": "SASL_INHERIT",
        }
    ) == [
        "value.converter.basic.auth.credentials.source: SASL_INHERIT is not supported; give the registry's "
        "user and password in basic.auth.user.info (USER_INFO)"
    ]
    assert problems(
        **{
            "key.converter": JSON_SCHEMA,
            "key.converter.schema.registry.url": "registry:8081",
            "key.converter.basic.auth.user.info": "no-colon",
        }
    ) == [
        "key.converter.schema.registry.url: expected an http:// or https:// URL, got 'registry:8081'",
        "key.converter.basic.auth.user.info: expected user:password, got no ':'",
    ]


def test_writer_settings_are_notices_and_unknown_ones_warnings():
    config = parse(
        **{
            "value.converter": AVRO,
            "value.converter.schema.registry.url": "http://a:8081,http://b:8081",
            "value.converter.auto.register.schemas": "false",
            "value.converter.value.subject.name.strategy": "io.confluent.kafka.serializers.subject.RecordNameStrategy",
            "value.converter.schemas.enable": "true",
            "value.converter.enhanced.avro.schema.suport": "true",
        }
    )
    assert config.value_converter.registry_url == "http://a:8081"
    assert config.notices == (
        "value.converter.schema.registry.url has no effect here: conductor asks the first registry only, "
        "http://a:8081",
        "value.converter.auto.register.schemas has no effect here: it matters when records are written; avro "
        "records are read the same without it",
        "value.converter.schemas.enable has no effect here: it matters when records are written; avro records "
        "are read the same without it",
        "value.converter.value.subject.name.strategy has no effect here: it matters when records are written; "
        "avro records are read the same without it",
    )
    assert config.warnings == (
        "unknown key 'value.converter.enhanced.avro.schema.suport': io.confluent.connect.avro.AvroConverter has "
        "no setting 'enhanced.avro.schema.suport'",
    )
