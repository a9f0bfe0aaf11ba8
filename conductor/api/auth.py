"""Who may call the REST server: Basic users (Kafka Connect's PropertyFileLoginModule file) or a
bearer token, compared in constant time. Off until one is configured; then every endpoint asks
for it, except /health (for probes) and, when conductor.rest.open.reads says so, the reading
(GET) ones. What changes anything (pause, resume, stop, restart, offsets) always asks."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

OPEN_PATHS = frozenset({"/health"})
READS = frozenset({"GET", "HEAD"})
CHALLENGE = 'Basic realm="conductor", charset="UTF-8"'


class Guard:
    def __init__(self, users: Mapping[str, str], token: str | None, open_reads: bool) -> None:
        self.users = {user.encode(): password.encode() for user, password in users.items()}
        self.token = token.encode() if token is not None else None
        self.open_reads = open_reads

    def allows(self, method: str, path: str, authorization: str | None) -> bool:
        if path.rstrip("/") in OPEN_PATHS or (self.open_reads and method in READS):
            return True
        return self.authenticated(authorization or "")

    def authenticated(self, authorization: str) -> bool:
        scheme, _, credentials = authorization.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and self.token is not None:
            return hmac.compare_digest(credentials.strip().encode(), self.token)
        if scheme == "basic" and self.users:
            try:
                user, _, password = base64.b64decode(credentials.strip(), validate=True).partition(b":")
            except (binascii.Error, ValueError):
                return False
            expected = self.users.get(user)
            # Compared even for an unknown user, so the time taken does not say which users exist.
            matches = hmac.compare_digest(password, expected if expected is not None else b"\0" * 32)
            return matches and expected is not None
        return False
