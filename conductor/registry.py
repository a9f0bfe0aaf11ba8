"""A Confluent Schema Registry client: the schema behind an id, fetched once and kept.

Schema ids never change what they name, so a schema fetched once is kept for the life of the
worker: a registry that is down does not stop records whose schemas are known. The calls are
those of the registry's documented REST API (Confluent's, and Apicurio's /apis/ccompat/v7).
"""

from __future__ import annotations

import base64
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

import orjson

from conductor.config.secrets import Secret, reveal
from conductor.errors import ConductorError, RecordError

ACCEPT = "application/vnd.schemaregistry.v1+json, application/json"
NOT_FOUND_CODES = (40403, 40401, 40402)  # schema, subject, version not found


@dataclass(frozen=True)
class RegisteredSchema:
    id: int
    schema_type: str  # AVRO, PROTOBUF or JSON
    text: str
    references: tuple[dict, ...] = ()


class UnknownSchema(RecordError):
    """The record names a schema id the registry does not have: that record's problem."""


class RegistryUnavailable(ConductorError):
    """The registry could not be asked: wait for it, as for a store."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SchemaRegistry:
    def __init__(self, url: str, user_info: str | Secret | None = None, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._auth = None
        if user_info is not None:
            token = base64.b64encode(reveal(user_info).encode()).decode()
            self._auth = f"Basic {token}"
        self._schemas: dict[int, RegisteredSchema] = {}
        self._versions: dict[tuple[str, int], RegisteredSchema] = {}
        self._lock = threading.Lock()

    def schema(self, schema_id: int) -> RegisteredSchema:
        """The schema of `schema_id`; UnknownSchema if the registry has none such,
        RegistryUnavailable if it cannot answer now."""
        known = self._schemas.get(schema_id)
        if known is not None:
            return known
        with self._lock:
            known = self._schemas.get(schema_id)
            if known is None:
                answer = self._get(f"/schemas/ids/{schema_id}", f"schema id {schema_id}")
                known = RegisteredSchema(
                    schema_id,
                    answer.get("schemaType") or "AVRO",  # the API leaves it out for Avro
                    answer["schema"],
                    tuple(answer.get("references") or ()),
                )
                self._schemas[schema_id] = known
        return known

    def version(self, subject: object, version: object) -> RegisteredSchema:
        """A schema another one references, by subject and version (kept, as ids are)."""
        if not isinstance(subject, str) or not isinstance(version, int) or isinstance(version, bool):
            raise UnknownSchema(f"a schema reference names subject {subject!r} version {version!r}")
        known = self._versions.get((subject, version))
        if known is None:
            quoted = urllib.parse.quote(subject, safe="")
            answer = self._get(
                f"/subjects/{quoted}/versions/{version}", f"subject {subject!r} version {version}"
            )
            known = RegisteredSchema(
                int(answer.get("id") or 0),
                answer.get("schemaType") or "AVRO",
                answer["schema"],
                tuple(answer.get("references") or ()),
            )
            self._versions[(subject, version)] = known
        return known

    def _get(self, path: str, what: str) -> dict:
        request = urllib.request.Request(self.url + path, headers={"Accept": ACCEPT})
        if self._auth is not None:
            request.add_header("Authorization", self._auth)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            detail = _error_body(error)
            if error.code == 404 and detail.get("error_code") in NOT_FOUND_CODES + (None,):
                raise UnknownSchema(
                    f"the Schema Registry at {self.url} has no {what}: {detail.get('message') or error.reason}"
                ) from None
            if error.code in (401, 403):
                raise RegistryUnavailable(
                    f"the Schema Registry at {self.url} refused the credentials "
                    f"(HTTP {error.code}): check basic.auth.user.info"
                ) from None
            raise RegistryUnavailable(
                f"the Schema Registry at {self.url} answered HTTP {error.code} for {what}: "
                f"{detail.get('message') or error.reason}"
            ) from None
        except (OSError, urllib.error.URLError) as error:
            raise RegistryUnavailable(
                f"the Schema Registry at {self.url} cannot be reached: {error}"
            ) from None
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise RegistryUnavailable(
                f"the Schema Registry at {self.url} answered no JSON for {what}"
            ) from None
        if not isinstance(answer, dict) or not isinstance(answer.get("schema"), str):
            raise RegistryUnavailable(f"the Schema Registry at {self.url} answered {body[:200]!r} for {what}")
        return answer


def _error_body(error: urllib.error.HTTPError) -> dict:
    try:
        body = orjson.loads(error.read() or b"{}")
    except (orjson.JSONDecodeError, OSError):
        return {}
    return body if isinstance(body, dict) else {}
