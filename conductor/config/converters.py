"""Kafka Connect's `key.converter` and `value.converter`, with their prefixed settings, read into
ConverterSettings: the format of each side of a record, and where its schemas are kept.

A converter that would give Kafka Connect other data than conductor reads is refused, with what
to set instead; a converter setting conductor does not read is a notice (it only matters when
writing) or, unknown, a warning.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from conductor.config import keys as k
from conductor.config.secrets import Secret, reveal
from conductor.config.settings import ConverterSettings
from conductor.config.values import Reader

AVRO_CONVERTER = "io.confluent.connect.avro.AvroConverter"
PROTOBUF_CONVERTER = "io.confluent.connect.protobuf.ProtobufConverter"
JSON_SCHEMA_CONVERTER = "io.confluent.connect.json.JsonSchemaConverter"
REGISTERED = {AVRO_CONVERTER: "avro", PROTOBUF_CONVERTER: "protobuf", JSON_SCHEMA_CONVERTER: "json-schema"}

REGISTRY_KEYS = (
    "schema.registry.url",
    "basic.auth.credentials.source",
    "basic.auth.user.info",
    "schema.registry.basic.auth.user.info",
)
# Each format's settings that change what it reads, with Confluent's defaults (conductor/formats).
OPTIONS: dict[str, dict[str, bool]] = {
    "avro": {"enhanced.avro.schema.support": False},
    "protobuf": {"wrapper.for.nullables": False, "int.for.enums": False, "generate.index.for.unions": True},
    "json-schema": {"json.fail.invalid.schema": False},
}
# Settings for writing records or for Connect's schema objects: reading is the same without them.
WRITER_OPTIONS = frozenset(
    {
        "auto.register.schemas", "use.latest.version", "latest.compatibility.strict", "normalize.schemas",
        "use.schema.id", "key.subject.name.strategy", "value.subject.name.strategy", "schemas.cache.config",
        "connect.meta.data", "scrub.invalid.names", "avro.reflection.allow.null", "avro.use.logical.type.converters",
        "connect.avro.contexts.enabled", "context.name.strategy", "max.schemas.per.subject",
        "json.oneof.for.nullables", "json.write.dates.iso8601", "reference.subject.name.strategy",
        "skip.known.types", "optional.for.nullables",
    }
)  # fmt: skip


def converter_settings(r: Reader, side: str) -> ConverterSettings:
    """`{side}.converter` and its `{side}.converter.*` settings (side: "key" or "value")."""
    key = f"{side}.converter"
    prefix = key + "."
    converter = r.string(key)
    given = sorted(name for name in r.values if name.startswith(prefix) and r.given(name))
    if converter in REGISTERED:
        return _registered(r, side, converter, given)
    for name in given:
        if name != prefix + "schemas.enable":
            r.no_effect(
                name, f"{key} is {converter or 'not set'}, which reads no {name.removeprefix(prefix)}"
            )
    schemas = r.boolean(prefix + "schemas.enable")
    if converter == k.JSON_CONVERTER or (converter is None and schemas):
        return ConverterSettings("connect-json" if schemas is not False else "json")
    named = ConverterSettings(converter=converter) if converter else ConverterSettings()
    if converter == k.BYTES_CONVERTER and side == "value":
        r.problems.append(
            f"{key}: {converter} gives raw bytes, which no sink can write as a document or a row"
        )
    elif converter not in (None, k.STRING_CONVERTER, k.BYTES_CONVERTER):
        r.problems.append(
            f"{key}: {converter} is not supported; conductor reads JsonConverter (with or without "
            f"schemas.enable), StringConverter, and with a Schema Registry {', '.join(REGISTERED)}"
        )
    elif converter is not None and r.given(prefix + "schemas.enable"):
        r.no_effect(prefix + "schemas.enable", f"{key} is not JsonConverter")
    return named


def _registered(r: Reader, side: str, converter: str, given: list[str]) -> ConverterSettings:
    prefix = f"{side}.converter."
    format = REGISTERED[converter]
    url = r.required(prefix + "schema.registry.url", why=f" for {r.string(prefix[:-1])}")
    urls = [part.strip() for part in url.split(",") if part.strip()]
    if len(urls) > 1:
        r.no_effect(prefix + "schema.registry.url", f"conductor asks the first registry only, {urls[0]}")
    url = urls[0] if urls else ""
    if url and urlsplit(url).scheme not in ("http", "https"):
        r.problem(prefix + "schema.registry.url", url, "an http:// or https:// URL")
    url, user_info = _credentials(r, prefix, url)
    options: dict[str, Any] = {}
    for name, default in OPTIONS[format].items():
        options[name] = r.boolean(prefix + name, default=default)
    for name in given:
        setting = name.removeprefix(prefix)
        if setting in REGISTRY_KEYS or setting in OPTIONS[format]:
            continue
        if setting == "schemas.enable" or setting in WRITER_OPTIONS:
            r.no_effect(
                name, f"it matters when records are written; {format} records are read the same without it"
            )
        else:
            r.warnings.append(f"unknown key {name!r}: {r.string(prefix[:-1])} has no setting {setting!r}")
    return ConverterSettings(format, url, user_info, MappingProxyType(options), converter)


def _credentials(r: Reader, prefix: str, url: str) -> tuple[str, Secret | None]:
    """Basic auth for the registry, as Confluent's clients take it: `basic.auth.user.info` when
    the credentials source is USER_INFO (or not set), the URL's user:password when it is URL."""
    source = r.choice(prefix + "basic.auth.credentials.source", ("USER_INFO", "URL", "SASL_INHERIT"))
    user_info = r.secret((prefix + "basic.auth.user.info", prefix + "schema.registry.basic.auth.user.info"))
    parts = urlsplit(url)
    if source == "SASL_INHERIT":
        r.problems.append(
            f"{prefix}basic.auth.credentials.source: SASL_INHERIT is not supported; "
            "give the registry's user and password in basic.auth.user.info (USER_INFO)"
        )
    if parts.username is not None:  # keep the password out of the URL that logs and states name
        netloc = parts.hostname or ""
        netloc += f":{parts.port}" if parts.port else ""
        url = urlunsplit(parts._replace(netloc=netloc))
        if source == "URL" or (source is None and user_info is None):
            return url, Secret(f"{unquote(parts.username)}:{unquote(parts.password or '')}")
    if source == "URL" and user_info is not None:
        r.no_effect(prefix + "basic.auth.user.info", "basic.auth.credentials.source is URL")
        return url, None
    if user_info is not None and ":" not in reveal(user_info):
        r.problems.append(f"{prefix}basic.auth.user.info: expected user:password, got no ':'")
    return url, user_info
