"""One shape for TLS and for credentials, read the same way by Kafka, Elasticsearch and Cassandra.

The CAs and the client certificate come from PEM files, or from JKS and PKCS12 stores read at
config load (conductor/config/keystores.py); `TlsSettings.context()` builds the one SSLContext
each client is given, in the worker process, after the fork.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

from conductor.config.keystores import PrivateKeyEntry, load_key_entry
from conductor.config.secrets import Secret


@dataclass(frozen=True)
class Credentials:
    """A user name and its password (a Secret: never shown)."""

    username: str
    password: Secret = field(repr=False)


@dataclass(frozen=True)
class TlsSettings:
    """TLS towards one server: who to trust, who we are, and whether the name is checked."""

    enabled: bool = False
    cafile: str | None = None  # the CAs to trust (PEM); None: cadata, else the system's
    certfile: str | None = None  # our certificate (PEM), for servers that ask for one
    keyfile: str | None = None  # its key, when not in certfile
    key_password: Secret | None = field(default=None, repr=False)
    check_hostname: bool = True
    cadata: str | None = field(default=None, repr=False)  # the CAs of a JKS or PKCS12 truststore, PEM
    key_entry: PrivateKeyEntry | None = None  # our certificate and key, from a JKS or PKCS12 keystore

    def context(self) -> ssl.SSLContext | None:
        """The SSLContext for a client, or None without TLS. Raises ssl.SSLError or OSError
        for a file that cannot be read or a wrong key password."""
        if not self.enabled:
            return None
        context = ssl.create_default_context(cafile=self.cafile, cadata=self.cadata)
        context.check_hostname = self.check_hostname
        if self.key_entry is not None:
            load_key_entry(context, self.key_entry)
        elif self.certfile:
            password = None if self.key_password is None else self.key_password.reveal()
            context.load_cert_chain(self.certfile, self.keyfile, password=password)
        return context
