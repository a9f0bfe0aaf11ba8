"""Before the first Kafka client: does the broker trust us, and do we trust the broker?

kafka-python treats every failed connection as a reason to try again: a wrong password, an
untrusted certificate and a stopped broker all end as "Unable to bootstrap", with the cause only
in its log. So a worker (and `conductor validate`) first opens one connection of its own, with
the same TLS context and SASL settings, and tells the cases apart:
- no TCP answer: an outage, waited out as before (`Unreachable`);
- the TLS handshake refused or SASL refused: the config is wrong, and waiting cannot fix it
  (`KafkaRefused`, a ConfigError whose message names the setting).
"""

from __future__ import annotations

import os
import socket
import ssl
import time
from typing import Any

from conductor.config import KafkaSecurity, KafkaSettings
from conductor.errors import ConfigError

SASL_HANDSHAKE_VERSION = 1  # SaslAuthenticate frames (KIP-152), what every Kafka since 1.0 takes
HOSTNAME_MISMATCH = 62  # X509_V_ERR_HOSTNAME_MISMATCH
IP_MISMATCH = 64  # X509_V_ERR_IP_ADDRESS_MISMATCH

TRUST_KEYS = "consumer.ssl.truststore.location (or ssl.cafile)"
HOSTNAME_KEY = "ssl.endpoint.identification.algorithm"
JAAS_KEY = "sasl.jaas.config"


class Unreachable(Exception):
    """No broker answered at the TCP level: not a config problem, wait for it."""


class KafkaRefused(ConfigError):
    """The broker answered, and the TLS or SASL settings were refused."""

    def __init__(self, problem: str) -> None:
        super().__init__([problem], source="Kafka")


class _Unsure(KafkaRefused):
    """Closed without an answer: a listener of another protocol, or a broker going down."""


def check(kafka: KafkaSettings, timeout_s: float = 10.0, attempts: int = 3) -> str:
    """For each client's security (the consumer's, and the producer's or admin's where they
    differ): connect to the first bootstrap server that answers and run TLS and SASL as that
    client will. Returns a short description of what was checked; raises `KafkaRefused` or
    `Unreachable`. A connection closed without a word is tried `attempts` times, a second
    apart, before it counts as refused: a broker that is stopping does that too."""
    done = []
    for clients, security in _by_security(kafka).items():
        tries = 1
        while True:
            try:
                done.append(_check_once(kafka, security, timeout_s) + clients)
                break
            except _Unsure as unsure:
                if tries >= attempts:
                    raise _named(unsure, clients) from unsure
                tries += 1
                time.sleep(1.0)
            except KafkaRefused as refused:
                raise _named(refused, clients) from refused
    return "; ".join(done)


def _named(refused: KafkaRefused, clients: str) -> KafkaRefused:
    return KafkaRefused(refused.problems[0] + clients) if clients else refused


def _by_security(kafka: KafkaSettings) -> dict[str, KafkaSecurity]:
    securities = kafka.securities()
    if len(securities) == 1:
        return {"": kafka.security}
    return {f" (the {client}'s settings)": security for client, security in securities.items()}


def _check_once(kafka: KafkaSettings, security: KafkaSecurity, timeout_s: float) -> str:
    unreachable: list[str] = []
    for server in kafka.bootstrap_servers:
        host, _, port = server.rpartition(":")
        host = host.strip("[]")
        try:
            raw = socket.create_connection((host, int(port)), timeout=timeout_s)
        except (OSError, ValueError) as error:
            unreachable.append(f"{server}: {error}")
            continue
        with raw:
            return _check_connection(security, raw, host, server, timeout_s)
    raise Unreachable("; ".join(unreachable))


def _check_connection(
    kafka: KafkaSecurity, raw: socket.socket, host: str, server: str, timeout_s: float
) -> str:
    connection: socket.socket = raw
    done = [kafka.protocol]
    if "SSL" in kafka.protocol:
        connection = _handshake(kafka, raw, host, server)
        done.append("certificate trusted")
    if kafka.protocol.startswith("SASL"):
        _authenticate(kafka, connection, host, server, timeout_s)
        user = kafka.credentials.username if kafka.credentials else None
        done.append(f"{kafka.sasl_mechanism} accepted" + (f" for user {user!r}" if user else ""))
    elif not _answers(connection):
        raise _Unsure(
            f"Kafka at {server} closed the connection without an answer to {kafka.protocol}: "
            "does its listener want another security.protocol (SSL, SASL_SSL or SASL_PLAINTEXT)?"
        )
    return f"Kafka at {server}: " + ", ".join(done)


def _handshake(kafka: KafkaSecurity, raw: socket.socket, host: str, server: str) -> ssl.SSLSocket:
    try:
        context = kafka.tls.context()
    except (OSError, ssl.SSLError) as error:
        tls = kafka.tls
        unreadable = [
            path for path in (tls.cafile, tls.certfile, tls.keyfile) if path and not os.access(path, os.R_OK)
        ]
        why = f"cannot read {', '.join(unreadable)}" if unreadable else str(error)
        raise KafkaRefused(
            f"the TLS settings for Kafka cannot be loaded: {why} (consumer.ssl.truststore.location, "
            "consumer.ssl.keystore.location, or ssl.cafile/certfile/keyfile)"
        ) from error
    assert context is not None
    try:
        return context.wrap_socket(raw, server_hostname=host)
    except ssl.SSLCertVerificationError as error:
        if error.verify_code in (HOSTNAME_MISMATCH, IP_MISMATCH):
            raise KafkaRefused(
                f"Kafka at {server}: the server's certificate does not name {host!r} ({error.verify_message}); "
                f"connect by a name the certificate holds, or set {HOSTNAME_KEY}= (empty) to skip the name check"
            ) from error
        raise KafkaRefused(
            f"Kafka at {server}: the server's certificate is not trusted ({error.verify_message}); "
            f"give the CA that signed it in {TRUST_KEYS}"
        ) from error
    except ssl.SSLError as error:
        raise _Unsure(
            f"Kafka at {server}: the TLS handshake failed ({error.reason or error}): is its listener TLS "
            "(security.protocol SSL or SASL_SSL), and does it want a client certificate (ssl.keystore.location)?"
        ) from error
    except OSError as error:
        raise _Unsure(
            f"Kafka at {server} closed the connection during the TLS handshake ({error}): "
            "is its listener TLS (security.protocol SSL or SASL_SSL)?"
        ) from error


def _authenticate(
    kafka: KafkaSecurity, connection: socket.socket, host: str, server: str, timeout_s: float
) -> None:
    from kafka.errors import for_code
    from kafka.net.sasl import get_sasl_mechanism
    from kafka.protocol.sasl import SaslAuthenticateRequest, SaslHandshakeRequest

    talk = _Exchange(connection, server)
    mechanism_name = kafka.sasl_mechanism or "GSSAPI"
    try:
        answer = talk.ask(SaslHandshakeRequest(mechanism=mechanism_name, version=SASL_HANDSHAKE_VERSION))
    except _Closed as error:
        raise _Unsure(
            f"Kafka at {server} did not answer a SASL handshake ({error}): does its listener want "
            f"another security.protocol than {kafka.protocol}?"
        ) from error
    if answer.error_code:
        offered = ", ".join(answer.mechanisms) or "none"
        raise KafkaRefused(
            f"Kafka at {server} does not offer sasl.mechanism {mechanism_name} (it offers: {offered})"
        )
    options: dict[str, Any] = {key: value for key, value in kafka.kwargs().items() if key.startswith("sasl_")}
    options.update(security_protocol=kafka.protocol, sasl_mechanism=mechanism_name)
    mechanism = get_sasl_mechanism(mechanism_name)(host=host, **options)
    user = kafka.credentials.username if kafka.credentials else None
    who = f"user {user!r} ({mechanism_name})" if user else mechanism_name
    while not mechanism.is_done():
        try:
            answer = talk.ask(SaslAuthenticateRequest(auth_bytes=mechanism.auth_bytes(), version=1))
        except _Closed as error:
            raise _Unsure(
                f"Kafka at {server} refused {who}: it closed the connection during authentication "
                f"(wrong user name or password in {JAAS_KEY}?)"
            ) from error
        if answer.error_code:
            reason = answer.error_message or for_code(answer.error_code).__name__
            raise KafkaRefused(f"Kafka at {server} refused {who}: {reason} (check {JAAS_KEY})")
        mechanism.receive(answer.auth_bytes)
    if not mechanism.is_authenticated():
        raise KafkaRefused(
            f"Kafka at {server} did not prove it knows the password of {who}: a wrong password, "
            f"or another server than the one meant (check {JAAS_KEY})"
        )


def _answers(connection: socket.socket) -> bool:
    """A broker answers Metadata on a listener without SASL; a SASL listener hangs up on it (it
    answers only ApiVersions before authentication), and a TLS listener answers with no Kafka."""
    from kafka.protocol.metadata.metadata import MetadataRequest

    try:
        _Exchange(connection, "").ask(MetadataRequest(topics=[], version=1))
    except _Closed:
        return False
    return True


class _Closed(Exception):
    pass


class _Exchange:
    """One request, one answer, on a blocking socket, framed by kafka-python's protocol parser."""

    def __init__(self, connection: socket.socket, server: str) -> None:
        from kafka.protocol.parser import KafkaProtocol

        self.connection = connection
        self.server = server
        self.parser = KafkaProtocol(client_id="conductor-check")

    def ask(self, request: Any) -> Any:
        from kafka.errors import KafkaError

        self.parser.send_request(request)
        self.connection.sendall(self.parser.send_bytes())
        while True:
            try:
                data = self.connection.recv(65536)
            except (ssl.SSLError, OSError) as error:
                raise _Closed(str(error)) from error
            if not data:
                raise _Closed("connection closed")
            try:
                answers = self.parser.receive_bytes(data)
            except KafkaError as error:  # a TLS alert read as a Kafka frame, say
                raise _Closed(f"an answer that is not Kafka's protocol ({error})") from error
            if answers:
                return answers[0][1]
