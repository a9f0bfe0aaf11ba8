"""Trust and key stores as Kafka Connect names them (JKS, PKCS12, PEM), read at config load into
what Python's ssl module takes: the certificates to trust as PEM text (for
``load_verify_locations(cadata=...)``) and a certificate chain with its private key (for
``load_cert_chain``, which reads only files: `load_key_entry` hands it an in-memory file).

JKS, Java's own format, is read here: Sun's key protector (a SHA-1 keystream) and the store's
SHA-1 integrity check. PKCS12 is read by `cryptography`. Each store is loaded once into a
throwaway SSLContext when read, so whatever OpenSSL would refuse in a worker is refused at load.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import ssl
import struct
import tempfile
from dataclasses import dataclass, field

from conductor.config.secrets import Secret
from conductor.errors import ConductorError

STORE_TYPES = ("JKS", "PKCS12", "PEM")
JKS_MAGIC = 0xFEEDFEED
JCEKS_MAGIC = 0xCECECECE
JKS_WHITENER = b"Mighty Aphrodite"  # what Java's JavaKeyStore mixes into its integrity digest
SUN_KEY_PROTECTOR = bytes.fromhex("2b060104012a02110101")  # OID 1.3.6.1.4.1.42.2.17.1.1, DER
PRIVATE_KEY_TAG, TRUSTED_CERT_TAG = 1, 2


class StoreError(ConductorError):
    """A store that cannot be used. ``about`` names the setting to blame besides the location:
    "store" (its password), "key" (the key's password) or "type" (the store type given)."""

    def __init__(self, reason: str, about: str | None = None) -> None:
        self.reason = reason
        self.about = about
        super().__init__(reason)


@dataclass(frozen=True)
class PrivateKeyEntry:
    """A certificate chain (ours first) and its private key, read from a keystore: both PEM."""

    alias: str
    chain: str = field(repr=False)
    key: Secret = field(repr=False)  # PKCS8, unencrypted: never shown


def detect(data: bytes) -> str | None:
    """What a store holds by its content: JKS, JCEKS, PKCS12 (a DER sequence), PEM, or None."""
    if data[:4] == JKS_MAGIC.to_bytes(4, "big"):
        return "JKS"
    if data[:4] == JCEKS_MAGIC.to_bytes(4, "big"):
        return "JCEKS"
    if b"-----BEGIN " in data[:65536]:
        return "PEM"
    if data[:1] == b"\x30":
        return "PKCS12"
    return None


def store_type(data: bytes, declared: str | None) -> str:
    """The type to read ``data`` as. JKS and PKCS12 stand for each other, as in Java since 9
    (keystore.type.compat): the content decides; PEM must be PEM, and a binary store not PEM."""
    found = detect(data)
    if found == "JCEKS":
        raise StoreError(
            "a JCEKS keystore, which conductor does not read: convert it with "
            "`keytool -importkeystore -deststoretype PKCS12`"
        )
    if found is None:
        raise StoreError("not a JKS, PKCS12 or PEM store")
    if declared == "PEM" and found != "PEM":
        what = "a JKS store" if found == "JKS" else "binary (PKCS12 or DER)"
        raise StoreError(f"{what}, not PEM text", about="type")
    if declared is not None and declared != "PEM" and found == "PEM":
        raise StoreError(f"PEM text, not a {declared} store", about="type")
    return found


# -- reading -----------------------------------------------------------------------------------


def read_truststore(data: bytes, kind: str, password: str | None) -> str:
    """The certificates to trust, as PEM text: a JKS store's trusted certificates and the first
    certificate of each key entry (as Java's trust manager takes them); every certificate of a
    PKCS12 store. Without a password, a JKS store's integrity is not checked (as in Java)."""
    if kind == "JKS":
        store = _read_jks(data, password)
        certificates = list(store.trusted.values()) + [chain[0] for _, chain in store.keys.values() if chain]
    else:
        _, _, certificates = _read_pkcs12(data, [password])
    if not certificates:
        raise StoreError("no certificate in it")
    pem = "".join(ssl.DER_cert_to_PEM_cert(der) for der in certificates)
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=pem)
    except ssl.SSLError as error:
        raise StoreError(f"a certificate in it cannot be read ({error.reason or error})") from None
    return pem


def read_keystore(data: bytes, kind: str, password: str | None, key_password: str | None) -> PrivateKeyEntry:
    """The one private key entry of a keystore. ``key_password`` opens the key (Kafka's
    ssl.key.password, or the store's password when not given)."""
    key_password = key_password if key_password is not None else password
    if kind == "JKS":
        store = _read_jks(data, password)
        if not store.keys:
            raise StoreError("no private key in it (only trusted certificates: a truststore?)")
        if len(store.keys) > 1:
            aliases = ", ".join(sorted(store.keys))
            raise StoreError(f"{len(store.keys)} private keys ({aliases}); keep the one to present in it")
        alias, (protected, chain) = next(iter(store.keys.items()))
        if key_password is None:
            raise StoreError("a password is needed to open its private key", about="store")
        if not chain:
            raise StoreError(f"the private key {alias!r} has no certificate")
        key_der = _recover_jks_key(protected, key_password)
    else:
        alias, key_der, chain = _read_pkcs12(data, [password, key_password])
        if key_der is None:
            raise StoreError("no private key in it (only certificates: a truststore?)")
    entry = PrivateKeyEntry(
        alias, "".join(ssl.DER_cert_to_PEM_cert(der) for der in chain), Secret(_pem("PRIVATE KEY", key_der))
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        load_key_entry(context, entry)
    except ssl.SSLError as error:
        if error.reason == "KEY_VALUES_MISMATCH":
            raise StoreError(f"the private key {alias!r} does not match its certificate") from None
        raise StoreError(f"the key entry {alias!r} cannot be used ({error.reason or error})") from None
    return entry


def load_key_entry(context: ssl.SSLContext, entry: PrivateKeyEntry) -> None:
    """``context.load_cert_chain`` for a key entry. It reads only files: an in-memory file
    (memfd, Linux), else a 0600 file in a private temporary folder, removed at once."""
    data = (entry.chain + entry.key.reveal()).encode()
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        descriptor = os.memfd_create("conductor-tls", os.MFD_CLOEXEC)
        try:
            _write_all(descriptor, data)
            context.load_cert_chain(f"/proc/self/fd/{descriptor}")
        finally:
            os.close(descriptor)
        return
    folder = tempfile.mkdtemp(prefix="conductor-tls-")  # mode 0700
    path = os.path.join(folder, "entry.pem")
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _write_all(descriptor, data)
        finally:
            os.close(descriptor)
        context.load_cert_chain(path)
    finally:
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(folder)


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]


def _pem(label: str, der: bytes) -> str:
    text = base64.b64encode(der).decode()
    lines = "\n".join(text[i : i + 64] for i in range(0, len(text), 64))
    return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----\n"


# -- PKCS12 ------------------------------------------------------------------------------------


def _read_pkcs12(data: bytes, passwords: list[str | None]) -> tuple[str, bytes | None, list[bytes]]:
    """(the key's alias, its PKCS8 DER or None, the certificates: the key's first), trying
    each distinct password in turn (the store's, then the key's)."""
    try:
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.serialization import pkcs12
    except ImportError:
        raise StoreError(
            "reading a PKCS12 store needs the Python package cryptography (pip install cryptography); "
            "or give the store as JKS or PEM"
        ) from None
    loaded = None
    for password in dict.fromkeys(passwords):
        try:
            loaded = pkcs12.load_pkcs12(data, None if password is None else password.encode())
            break
        except (ValueError, TypeError, UnsupportedAlgorithm):
            continue
    if loaded is None:
        raise StoreError("wrong password, or not a PKCS12 file", about="store")
    others = [item.certificate.public_bytes(serialization.Encoding.DER) for item in loaded.additional_certs]
    if loaded.cert is None:
        if loaded.key is not None:
            raise StoreError("its private key has no certificate")
        return "", None, others
    alias = (loaded.cert.friendly_name or b"").decode(errors="replace")
    key = None
    if loaded.key is not None:
        key = loaded.key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    return alias, key, [loaded.cert.certificate.public_bytes(serialization.Encoding.DER), *others]


# -- JKS ---------------------------------------------------------------------------------------


@dataclass
class _Jks:
    keys: dict[str, tuple[bytes, list[bytes]]]  # alias -> (the protected key, its chain as DER)
    trusted: dict[str, bytes]  # alias -> a trusted certificate, DER


class _Bytes:
    """Java's DataInputStream over a store's bytes; reading past the end is a StoreError."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, size: int) -> bytes:
        if self.at + size > len(self.data):
            raise StoreError(f"damaged: it ends at byte {len(self.data)}, inside an entry")
        chunk = self.data[self.at : self.at + size]
        self.at += size
        return chunk

    def u32(self) -> int:
        value: int = struct.unpack(">I", self.take(4))[0]
        return value

    def utf(self) -> str:
        (size,) = struct.unpack(">H", self.take(2))
        return self.take(size).decode("utf-8", errors="replace")  # Java's modified UTF-8, near enough

    def certificate(self, version: int) -> bytes:
        if version == 2:
            kind = self.utf()
            if kind != "X.509":
                raise StoreError(f"damaged: a certificate of type {kind!r}, not X.509")
        return self.take(self.u32())


def _jks_password(password: str) -> bytes:
    return password.encode("utf-16-be")  # Java's chars, two bytes each


def _read_jks(data: bytes, password: str | None) -> _Jks:
    """The entries of a JKS store; with a password, its integrity digest is checked."""
    source = _Bytes(data)
    if source.u32() != JKS_MAGIC:
        raise StoreError("not a JKS keystore")
    version = source.u32()
    if version not in (1, 2):
        raise StoreError(f"damaged: JKS version {version}, not 1 or 2")
    store = _Jks({}, {})
    for _ in range(source.u32()):
        tag = source.u32()
        alias = source.utf()
        source.take(8)  # the entry's date
        if tag == PRIVATE_KEY_TAG:
            protected = source.take(source.u32())
            store.keys[alias] = (protected, [source.certificate(version) for _ in range(source.u32())])
        elif tag == TRUSTED_CERT_TAG:
            store.trusted[alias] = source.certificate(version)
        else:
            raise StoreError(
                f"damaged: entry {alias!r} has tag {tag}, neither a key (1) nor a certificate (2)"
            )
    digest = source.take(20)
    if source.at != len(data):
        raise StoreError(f"damaged: {len(data) - source.at} bytes after its integrity digest")
    if password is not None:
        expected = hashlib.sha1(_jks_password(password) + JKS_WHITENER + data[: source.at - 20]).digest()
        if not hmac.compare_digest(expected, digest):
            raise StoreError(
                "wrong keystore password, or the file was changed (its integrity check failed)", about="store"
            )
    return store


def _recover_jks_key(protected: bytes, password: str) -> bytes:
    """The PKCS8 DER of a key protected by Sun's key protector: EncryptedPrivateKeyInfo whose
    data is salt (20) + key XOR keystream + SHA-1(password + key) (20); the keystream is
    SHA-1(password + previous), starting from the salt."""
    algorithm, encrypted = _encrypted_private_key_info(protected)
    if algorithm != SUN_KEY_PROTECTOR:
        raise StoreError("its private key is not protected the JKS way (Sun's key protector)")
    if len(encrypted) < 40:
        raise StoreError("damaged: its protected private key is too short")
    salt, body, check = encrypted[:20], encrypted[20:-20], encrypted[-20:]
    secret = _jks_password(password)
    stream, digest = bytearray(), salt
    while len(stream) < len(body):
        digest = hashlib.sha1(secret + digest).digest()
        stream += digest
    mixed = int.from_bytes(body, "big") ^ int.from_bytes(stream[: len(body)], "big")
    plain = mixed.to_bytes(len(body), "big")
    if not hmac.compare_digest(hashlib.sha1(secret + plain).digest(), check):
        raise StoreError("wrong key password: it does not open the private key", about="key")
    return plain


def _der(data: bytes, at: int, tag: int) -> tuple[int, int]:
    """(start, end) of the content of the DER element with ``tag`` at ``at``."""
    if at + 2 > len(data) or data[at] != tag:
        raise StoreError("damaged: its protected private key is not DER")
    size, at = data[at + 1], at + 2
    if size & 0x80:
        count = size & 0x7F
        if not 0 < count <= 4 or at + count > len(data):
            raise StoreError("damaged: its protected private key is not DER")
        size, at = int.from_bytes(data[at : at + count], "big"), at + count
    if at + size > len(data):
        raise StoreError("damaged: its protected private key is not DER")
    return at, at + size


def _encrypted_private_key_info(data: bytes) -> tuple[bytes, bytes]:
    """(the algorithm's OID, DER content, and the encrypted data) of an EncryptedPrivateKeyInfo:
    SEQUENCE { SEQUENCE { OID, parameters }, OCTET STRING }."""
    start, _ = _der(data, 0, 0x30)
    algorithm_start, algorithm_end = _der(data, start, 0x30)
    oid_start, oid_end = _der(data, algorithm_start, 0x06)
    encrypted_start, encrypted_end = _der(data, algorithm_end, 0x04)
    return data[oid_start:oid_end], data[encrypted_start:encrypted_end]
