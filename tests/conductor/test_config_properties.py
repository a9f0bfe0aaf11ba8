"""Property tests of the config loader: whatever a file or a setting holds, the loader answers
with a config or a ConfigError that lists the problems, never another exception."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conductor.config import keys as k
from conductor.config import load_config, parse_config
from conductor.errors import ConfigError

BASE = {
    "name": "fuzz",
    "connector.class": "com.datamountaineer.streamreactor.connect.elastic8.ElasticSinkConnector",
    "topics": "t",
    "connect.elastic.kcql": "INSERT INTO idx SELECT * FROM t",
    "connect.elastic.hosts": "localhost",
}
ODD_VALUES = [
    "", " ", "-1", "0", "1", "99999999999999999999", "1.5", "true", "NaN", "none", "all", "RETRY",
    "${env:NOPE}", "${file:/nonexistent:key}", "${", "}", "a,b,,c", "http://x:-1", "é", "\x00",
    "INSERT INTO x SELECT * FROM t", "SASL_SSL", "PLAIN", "/nonexistent", "earliest", "NULL",
]  # fmt: skip
setting_value = st.one_of(st.sampled_from(ODD_VALUES), st.text(max_size=30))
fuzz_settings = st.dictionaries(st.sampled_from(sorted(k.KNOWN_KEYS)), setting_value, max_size=8)
environ = {"CONDUCTOR_KAFKA_BOOTSTRAP": "localhost:9092"}


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fuzz_settings)
def test_any_value_of_any_known_key_is_read_or_refused_with_a_config_error(changes: dict[str, str]) -> None:
    try:
        parse_config({**BASE, **changes}, environ=environ)
    except ConfigError as err:
        assert err.problems and all(isinstance(p, str) and p for p in err.problems)


json_document = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from([".json", ".yaml", ".properties"]),
    st.one_of(st.text(max_size=200), json_document.map(json.dumps)),
)
def test_any_file_content_is_read_or_refused_with_a_config_error(
    tmp_path: Path, suffix: str, text: str
) -> None:
    path = tmp_path / f"connector{suffix}"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_config(path, environ=environ)
    except ConfigError as err:
        assert err.problems


@pytest.mark.parametrize("depth", [40, 3_000, 200_000])
@pytest.mark.parametrize(
    ("suffix", "opening", "closing"),
    [(".json", '{"a":', "}"), (".json", "[", "]"), (".yaml", "{a: ", "}"), (".yaml", "[", "]")],
)
def test_a_deeply_nested_document_is_a_config_error(
    tmp_path: Path, depth: int, suffix: str, opening: str, closing: str
) -> None:
    path = tmp_path / f"deep{suffix}"
    path.write_text(opening * depth + "1" + closing * depth)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=environ)
    assert len(info.value.problems) == 1
    assert "nested too deeply" in info.value.problems[0] or "expected an object" in info.value.problems[0]
