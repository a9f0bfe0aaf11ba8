"""One Elasticsearch or OpenSearch server, spoken to through elastic_transport directly.

Why not the elasticsearch client: it asks every server for `compatible-with=8` answers and
refuses one that does not say it is Elasticsearch, so OpenSearch cannot be reached through it.
The few calls the sink and the retention make (bulk, create index, health, resolve, close,
delete) are the same REST calls on Elasticsearch 8 and 9 and OpenSearch 2 and 3, so the
client's own transport (its node pool, TLS and timeouts) sends them as they are, for all of
them. Every answer comes back as an Answer, whatever its status; only a server that could not
be reached raises (SinkUnavailable).
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import Any

from elastic_transport import NodeConfig, Serializer, TlsError, Transport, TransportError
from elastic_transport.client_utils import basic_auth_to_header, url_to_node_config

from conductor.config import ElasticsearchSettings
from conductor.errors import ConfigError, SinkUnavailable

log = logging.getLogger(__name__)

JSON_HEADERS = {"accept": "application/json", "content-type": "application/json"}
USER_AGENT = "conductor"
SETUP_TIMEOUT_S = 10.0
DISTRIBUTION_KEY = "conductor.elastic.distribution"
NAMES = {"elasticsearch": "Elasticsearch", "opensearch": "OpenSearch"}


@dataclass(frozen=True, slots=True)
class Answer:
    """A server's answer: its HTTP status and its parsed body."""

    status: int
    body: Any
    product: str | None = None  # Elasticsearch's X-Elastic-Product header (OpenSearch sends none)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error_type(self) -> str:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return error.get("type", "") if isinstance(error, dict) else ""

    def describe(self) -> str:
        """`HTTP 400 index_closed_exception: closed`, for messages."""
        error = self.body.get("error") if isinstance(self.body, dict) else self.body
        if isinstance(error, dict):
            return f"HTTP {self.status} {error.get('type', 'error')}: {error.get('reason', '')}"
        return f"HTTP {self.status} {error}" if error else f"HTTP {self.status}"


@dataclass(frozen=True, slots=True)
class Distribution:
    """Which server answers: `elasticsearch` or `opensearch`, and its version."""

    name: str
    version: str

    def __str__(self) -> str:
        return f"{NAMES.get(self.name, self.name)} {self.version}".strip()


class SearchServer:
    """The hosts of one Elasticsearch or OpenSearch cluster. Made in the process that uses it
    (the transport's connection pools do not survive a fork)."""

    def __init__(self, settings: ElasticsearchSettings, serializer: Serializer | None = None) -> None:
        self.settings = settings
        headers = {"user-agent": USER_AGENT}
        try:
            kwargs = settings.client_kwargs()
        except (OSError, ssl.SSLError) as error:
            tls = settings.tls
            files = ", ".join(
                f"{what} {path}" for what, path in (("CA", tls.cafile), ("certificate", tls.certfile)) if path
            )
            raise ConfigError(
                [f"Elasticsearch at {settings.where}: its TLS files ({files}) cannot be used: {error}"],
                "elasticsearch settings",
            ) from None
        if "basic_auth" in kwargs:
            headers["authorization"] = basic_auth_to_header(kwargs["basic_auth"])
        elif "api_key" in kwargs:
            headers["authorization"] = f"ApiKey {kwargs['api_key']}"
        context = kwargs.get("ssl_context")
        nodes = [node_config(url, headers, context) for url in settings.hosts]
        self.transport = Transport(
            nodes,
            max_retries=0,  # the worker writes again what was refused for now (tasks/sink.py)
            retry_on_status=(),
            meta_header=False,
            serializers={"application/json": serializer} if serializer is not None else None,
        )
        self.distribution: Distribution | None = None

    @property
    def where(self) -> str:
        return self.settings.where

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        timeout_s: float = SETUP_TIMEOUT_S,
        headers: dict[str, str] = JSON_HEADERS,
    ) -> Answer:
        """One request; raises SinkUnavailable when no host could be reached."""
        try:
            meta, answer = self.transport.perform_request(
                method, path, body=body, headers=headers, request_timeout=timeout_s
            )
        except TlsError as err:
            raise TlsRefused(
                f"{self.name_of_server()} at {self.where}: the TLS handshake failed: {err.message}. Check "
                f"the CA it is checked against (ssl.truststore.location or ssl.cafile), and the host name "
                f"in its certificate (ssl.endpoint.identification.algorithm)"
            ) from None
        except TransportError as err:
            raise SinkUnavailable(
                f"{self.name_of_server()} at {self.where} does not answer: {type(err).__name__}: {err.message} "
                f"({method} {path.split('?')[0]})"
            ) from None
        return Answer(meta.status, answer, meta.headers.get("x-elastic-product"))

    def name_of_server(self) -> str:
        """Elasticsearch or OpenSearch, for messages (Elasticsearch until the server says)."""
        name = self.distribution.name if self.distribution else self.settings.distribution
        return NAMES.get(name, "Elasticsearch")

    def identify(self) -> Distribution:
        """Which server this is, checked against conductor.elastic.distribution. The root
        endpoint says (`version.distribution` is "opensearch" on OpenSearch, absent on
        Elasticsearch); where it is missing (Elasticsearch's integ-test build) or forbidden,
        the local node's version and Elasticsearch's X-Elastic-Product header say it."""
        try:
            answer = self.request("GET", "/")
        except TlsRefused as refused:  # a setting to mend, not an outage to wait out
            raise ConfigError([refused.reason], "elasticsearch settings") from None
        if answer.status == 401:
            raise ConfigError(
                [
                    f"{self.where} refused the credentials (connect.elastic.use.http.username and password, "
                    f"conductor.elastic.api.key, or the user:password in connect.elastic.hosts): "
                    f"{answer.describe()}"
                ],
                "elasticsearch settings",
            )
        if answer.ok and isinstance(answer.body, dict):
            version = answer.body.get("version") or {}
            name = version.get("distribution") or "elasticsearch"
        else:
            answer = self.request("GET", "/_nodes/_local?filter_path=nodes.*.version")
            nodes = answer.body.get("nodes") if answer.ok and isinstance(answer.body, dict) else None
            version = {"number": next(iter(nodes.values()), {}).get("version", "")} if nodes else {}
            name = "elasticsearch" if answer.product == "Elasticsearch" else None
        wanted = self.settings.distribution
        if name is None:
            name = "elasticsearch" if wanted == "auto" else wanted
            if wanted == "auto":
                log.warning(
                    "%s does not say which server it is (%s); taking it for Elasticsearch (set %s=opensearch "
                    "if it is not)",
                    self.where,
                    answer.describe(),
                    DISTRIBUTION_KEY,
                )
        found = Distribution(name, str(version.get("number", "")))
        if wanted not in ("auto", found.name):
            raise ConfigError(
                [f"{DISTRIBUTION_KEY}={wanted}, but the server at {self.where} is {found}"],
                "elasticsearch settings",
            )
        self.distribution = found
        return found

    def check_health(self) -> None:
        """Raise SinkUnavailable unless the cluster answers its health request."""
        answer = self.request("GET", "/_cluster/health")
        if not answer.ok:
            raise SinkUnavailable(
                f"{self.name_of_server()} at {self.where} does not answer: {answer.describe()}"
            )

    def close(self) -> None:
        self.transport.close()


def node_config(url: str, headers: dict[str, str], context: Any) -> NodeConfig:
    """A host's node; the `authorization` header made from a user:password in its URL is kept
    unless the connector's own credentials are given."""
    node = url_to_node_config(url, use_default_ports_for_scheme=True)
    options: dict[str, Any] = {"headers": {**node.headers, **headers}}
    if context is not None:
        options["ssl_context"] = context
    return node.replace(**options)


class TlsRefused(SinkUnavailable):
    """The TLS handshake failed: an untrusted certificate, or one for another host name."""
