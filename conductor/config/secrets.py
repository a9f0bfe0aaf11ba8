"""Secrets: the `Secret` wrapper and Kafka Connect's config-provider references.

A value may hold ``${env:VAR}``, ``${file:/path/x.properties:key}`` or
``${directory:/run/secrets:name}`` anywhere inside it, as Kafka Connect's EnvVarConfigProvider,
FileConfigProvider and DirectoryConfigProvider resolve them.  Aliases declared with
``config.providers=a`` and ``config.providers.a.class=...FileConfigProvider`` work too.
A value that came from a reference, and the value of a password key, is kept as a `Secret`.
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from conductor.errors import ConfigError

MASK = "******"

# Kafka's ConfigTransformer pattern: ${provider:[path:]key}
REFERENCE = re.compile(r"\$\{([^}]*?):(?:([^}]*?):)?([^}]*?)\}")

PROVIDER_CLASSES = {
    "org.apache.kafka.common.config.provider.EnvVarConfigProvider": "env",
    "org.apache.kafka.common.config.provider.FileConfigProvider": "file",
    "org.apache.kafka.common.config.provider.DirectoryConfigProvider": "directory",
}
DEFAULT_ALIASES = {"env": "env", "file": "file", "directory": "directory"}


class Secret:
    """A string that shows as '******' in str, repr, format and logs; `reveal()` gives it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        return self._value

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Secret is immutable")

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return repr(MASK)

    def __format__(self, spec: str) -> str:
        return format(MASK, spec)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        return (Secret, (self._value,))


SECRET_WORDS = ("password", "secret", "jaas.config", "user.info", "api.key", "token")


def is_secret_key(key: str) -> bool:
    """Password keys (``*.password``, ``ssl.*password*``), JAAS configs, ``*secret*`` keys, and
    credentials by other names (a registry's ``basic.auth.user.info``, API keys, tokens)."""
    lowered = key.lower()
    return any(word in lowered for word in SECRET_WORDS)


def reveal(value: str | Secret) -> str:
    return value.reveal() if isinstance(value, Secret) else value


def shown(value: str | Secret) -> str:
    """How a value may appear in a message: quoted, or masked when secret."""
    return MASK if isinstance(value, Secret) else repr(value)


class Resolver:
    """Resolves the references in one config's values; collects one problem per failure.

    `read_properties` reads a ``.properties`` file for the file provider (passed in to keep
    this module free of the readers).
    """

    def __init__(
        self,
        raw: Mapping[str, str],
        environ: Mapping[str, str],
        read_properties: Callable[[Path], dict[str, str]],
    ) -> None:
        self.environ = environ
        self.read_properties = read_properties
        self.aliases = dict(DEFAULT_ALIASES)
        self.unsupported: dict[str, str] = {}
        for alias in (a.strip() for a in raw.get("config.providers", "").split(",")):
            class_name = raw.get(f"config.providers.{alias}.class", "").strip()
            if alias and class_name in PROVIDER_CLASSES:
                self.aliases[alias] = PROVIDER_CLASSES[class_name]
            elif alias and class_name:
                self.unsupported[alias] = class_name
        self.files: dict[str, dict[str, str] | str] = {}

    def resolve(self, key: str, value: str) -> tuple[str | Secret, list[str]]:
        """The value with its references replaced, and the problems met (never the secret)."""
        if key.startswith("config.providers") or REFERENCE.search(value) is None:
            return (Secret(value) if is_secret_key(key) else value), []
        problems: list[str] = []

        def substitute(match: re.Match[str]) -> str:
            found = self.lookup(match.group(1).strip(), match.group(2), match.group(3))
            if isinstance(found, _Failure):
                problems.append(f"{key}: cannot resolve {match.group(0)}: {found.reason}")
                return ""
            return found

        return Secret(REFERENCE.sub(substitute, value).strip()), problems

    def lookup(self, alias: str, path: str | None, name: str) -> str | _Failure:
        if alias in self.unsupported:
            return _Failure(
                f"config provider {alias!r} ({self.unsupported[alias]}) is not supported; "
                "conductor supports EnvVarConfigProvider, FileConfigProvider and "
                "DirectoryConfigProvider"
            )
        provider = self.aliases.get(alias)
        if provider == "env":
            if name not in self.environ:
                return _Failure(f"environment variable {name!r} is not set")
            return self.environ[name]
        if provider == "file":
            return self.from_file(path, name)
        if provider == "directory":
            return self.from_directory(path, name)
        known = ", ".join(sorted(self.aliases))
        return _Failure(f"unknown config provider {alias!r} (known: {known})")

    def from_file(self, path: str | None, name: str) -> str | _Failure:
        if not path:
            return _Failure("the file provider needs ${file:/path/to/file.properties:key}")
        if path not in self.files:
            try:
                self.files[path] = self.read_properties(Path(path))
            except FileNotFoundError:
                self.files[path] = f"file {path} not found"
            except (OSError, ConfigError) as err:
                self.files[path] = f"file {path} could not be read ({_reason(err)})"
        entries = self.files[path]
        if isinstance(entries, str):
            return _Failure(entries)
        if name not in entries:
            return _Failure(f"key {name!r} not found in {path}")
        return entries[name]

    def from_directory(self, path: str | None, name: str) -> str | _Failure:
        if not path:
            return _Failure("the directory provider needs ${directory:/path/to/dir:file}")
        if os.path.basename(name) != name or name in ("", ".", ".."):
            return _Failure(f"{name!r} is not a file name")
        try:
            return (Path(path) / name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return _Failure(f"file {name!r} not found in {path}")
        except (OSError, UnicodeDecodeError) as err:
            return _Failure(f"file {name!r} in {path} could not be read ({_reason(err)})")


class _Failure:
    """Why a reference did not resolve (a distinct type: a resolved value may be any str)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _reason(err: BaseException) -> str:
    if isinstance(err, ConfigError):
        return "; ".join(err.problems)
    return getattr(err, "strerror", None) or type(err).__name__
