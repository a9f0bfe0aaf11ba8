"""Kafka, Elasticsearch and Cassandra with security on: `CONDUCTOR_SECURE=1 compose/local up`.

- Elasticsearch: x-pack security, TLS on HTTP, a basic-auth superuser from the file realm, API keys.
  API keys live in the .security index, whose mapping needs four analysis parts of the
  analysis-common module, which the integ-test-zip lacks and Maven Central does not publish:
  compose/elasticsearch/security-analysis is a small plugin with them, compiled at the first secure
  start (the JDK's javac) into a hard-linked copy of the installation, <cache>/elasticsearch-<version>-secure.
- Kafka: a SASL_SSL listener with SCRAM-SHA-512 and PLAIN, and an SSL listener that requires a
  client certificate signed by the CA (mutual TLS; secure/client.pem and client.key, issued at each
  start). The KRaft controller stays PLAINTEXT on loopback.
- Cassandra: PasswordAuthenticator and client encryption; the default superuser cassandra/cassandra
  is replaced by a user with a random password.

A CA is generated when no secure server runs yet, a server certificate (127.0.0.1 and localhost)
at each server start, and a random password for each server at each start: a search of the logs
for them finds only real leaks. All of it lives under the run dir, in <run dir>/secure (the CA,
secrets.json with mode 0600) and the server's own run folder, <name>-secure: a secure server never
shares a folder with a plain one. Its data folder is emptied at each start, since its users are
made at start (Kafka takes SCRAM users only when its storage is formatted).

The probes and the Cassandra user need kafka-python, the cassandra-driver and cryptography: the
project's virtualenv (`make venv`); compose/local runs itself with it in secure mode.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import ipaddress
import json
import logging
import os
import secrets
import shutil
import ssl
import string
import subprocess
import sys
import zipfile
from pathlib import Path

import probes
import servers
from servers import Paths, Server

USERNAME = "conductor"
SUFFIX = "-secure"
# Modules the secure probes and set-up import (compose/local checks them before anything runs).
NEEDS = ("cryptography", "kafka", "cassandra")

_run_dir: Path | None = None


def enabled(environ=os.environ) -> bool:
    return environ.get("CONDUCTOR_SECURE", "").strip().lower() not in ("", "0", "false", "no", "off")


def configure(run_dir: Path) -> None:
    global _run_dir
    _run_dir = run_dir


def folder() -> Path:
    if _run_dir is None:
        raise RuntimeError("secure.configure(run_dir) first")
    return _run_dir / "secure"


def ca_file() -> Path:
    return folder() / "ca.pem"


def client_files() -> tuple[Path, Path]:
    """The client certificate for Kafka's mutual TLS listener and its key (PEM, 0600)."""
    return folder() / "client.pem", folder() / "client.key"


def is_secure_home(home: Path) -> bool:
    return home.name.endswith(SUFFIX)


def _password() -> str:
    # Letters and digits only: safe in a JAAS line, a CQL string, a command line and a shell export.
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(32))


# -- secrets.json ----------------------------------------------------------------------------


def _secrets_file() -> Path:
    return folder() / "secrets.json"


def load_secrets() -> dict[str, dict[str, str]]:
    try:
        return json.loads(_secrets_file().read_text())
    except (OSError, ValueError):
        return {}


def _write_private(path: Path, data: bytes) -> None:
    """Written with mode 0600 from the start (never readable by others, even for a moment)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
    temporary.replace(path)


def _save_secret(name: str, **values: str) -> None:
    stored = load_secrets()
    stored[name] = values
    _write_private(_secrets_file(), (json.dumps(stored, indent=2) + "\n").encode())


def secret(name: str) -> dict[str, str]:
    found = load_secrets().get(name)
    if not found:
        raise probes.ProbeFailed(
            f"no credentials for {name} in {_secrets_file()} (not started in secure mode?)"
        )
    return found


def redact(text: str) -> str:
    """text with every password of secrets.json replaced by ***."""
    for values in load_secrets().values():
        for key, value in values.items():
            if "password" in key and value:
                text = text.replace(value, "***")
    return text


# -- certificates ----------------------------------------------------------------------------


def new_ca() -> None:
    """A fresh CA (key 0600) for the servers started from now on."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "conductor compose/local CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(
        folder() / "ca.key",
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    ca_file().write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    ca_file().chmod(0o644)


def _server_certificate(common_name: str, client_only: bool = False):
    """(key, certificate, CA certificate) for 127.0.0.1 and localhost, signed by the CA; with
    `client_only`, a certificate a client presents (clientAuth, no key encipherment)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not (ca_file().exists() and (folder() / "ca.key").exists()):
        new_ca()
    ca_key = serialization.load_pem_private_key((folder() / "ca.key").read_bytes(), password=None)
    ca = x509.load_pem_x509_certificate(ca_file().read_bytes())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=not client_only,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH]
                if client_only
                else [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, certificate, ca


def _write_pem(target: Path, common_name: str) -> None:
    """target/server.key (0600), target/server.crt and target/ca.pem."""
    from cryptography.hazmat.primitives import serialization

    key, certificate, ca = _server_certificate(common_name)
    target.mkdir(parents=True, exist_ok=True)
    _write_private(
        target / "server.key",
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    (target / "server.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (target / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))


def _write_client_certificate() -> None:
    """secure/client.pem and client.key (both 0600): what a client presents to Kafka's mutual TLS
    listener."""
    from cryptography.hazmat.primitives import serialization

    key, certificate, _ = _server_certificate(f"{USERNAME}-client", client_only=True)
    certfile, keyfile = client_files()
    _write_private(certfile, certificate.public_bytes(serialization.Encoding.PEM))
    _write_private(
        keyfile,
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def _write_pkcs12(target: Path, common_name: str, password: str) -> Path:
    """A PKCS12 keystore (AES-256, as Java 17 reads it) with the key, its certificate and the CA."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    key, certificate, ca = _server_certificate(common_name)
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(10000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password.encode())
    )
    store = target / "server.p12"
    _write_private(
        store, pkcs12.serialize_key_and_certificates(common_name.encode(), key, certificate, [ca], encryption)
    )
    return store


def client_context(with_ca: bool = True) -> ssl.SSLContext:
    """A client's TLS context that trusts the CA of the run dir (the system's CAs when not)."""
    if with_ca and not ca_file().exists():
        raise probes.ProbeFailed(f"no CA at {ca_file()}: no secure server was started here")
    return ssl.create_default_context(cafile=str(ca_file()) if with_ca else None)


def _quiet(*loggers: str) -> None:
    """The clients log every refused connection while a server starts; the probe says it once."""
    for name in loggers:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def _fresh_data(paths: Paths) -> None:
    shutil.rmtree(paths.data, ignore_errors=True)
    paths.data.mkdir(parents=True)


# -- Elasticsearch -----------------------------------------------------------------------------

_ES_CERTS = "secure-certs"  # under the config folder: Elasticsearch reads TLS files only from there


def _es_prepare(server: Server, paths: Paths) -> None:
    servers._search_prepare(server, paths)
    _fresh_data(paths)
    config = paths.home / "config"
    _write_pem(config / _ES_CERTS, "elasticsearch")
    password = _password()
    # The file realm, as bin/elasticsearch-users writes it, without a JVM and without the password
    # on a command line: the user with its PBKDF2 hash, and its role.
    _write_private(config / "users", f"{USERNAME}:{_es_password_hash(password)}\n".encode())
    _write_private(config / "users_roles", f"superuser:{USERNAME}\n".encode())
    _save_secret(server.name, username=USERNAME, password=password)


def _es_password_hash(password: str, iterations: int = 10000) -> str:
    """Elasticsearch's {PBKDF2} hash: PBKDF2-HMAC-SHA512, a 32-byte salt, a 256-bit key."""
    salt = os.urandom(32)
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, dklen=32)
    return f"{{PBKDF2}}{iterations}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


_ES_PLUGIN = servers.COMPOSE_DIR / "elasticsearch" / "security-analysis"
_ES_PLUGIN_NAME = "conductor-security-analysis"


def secure_es_home(install: Path) -> Path:
    """The copy of the installation that secure mode runs: the plain one stays as it is."""
    return install.with_name(install.name + SUFFIX)


def _es_plugin_stamp() -> str:
    digest = hashlib.sha256()
    for source in sorted(_ES_PLUGIN.iterdir()):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:16]


def _es_build_command(server: Server, paths: Paths, java: str) -> list[str] | None:
    """Build the secure copy of the installation unless it is built from these plugin sources."""
    marker = secure_es_home(paths.install) / ".complete"
    if marker.exists() and marker.read_text().strip() == _es_plugin_stamp():
        return None
    target = str(secure_es_home(paths.install))
    return [sys.executable, str(Path(__file__).resolve()), "build-es-home", str(paths.install), target, java]


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def build_es_home(install: Path, home: Path, java: str) -> None:
    """A copy of `install` (hard links: no space taken) with the plugin of compose/elasticsearch/
    security-analysis compiled into plugins/. Files of the copy are never written in place: a
    hard-linked file is the plain installation's too."""
    javac = Path(java).parent / "javac"
    if not javac.exists():
        raise SystemExit(
            f"no javac beside {java}: the secure Elasticsearch needs a JDK, not a JRE, to compile its "
            f"analysis plugin (e.g. `apt-get install openjdk-17-jdk-headless`)"
        )
    staging = home.with_name(f"{home.name}.staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(install, staging, symlinks=True, copy_function=_link_or_copy)
    (staging / ".complete").unlink()  # hard-linked: written anew below, never in place
    plugin = staging / "plugins" / _ES_PLUGIN_NAME
    classes = staging / ".plugin-classes"
    plugin.mkdir(parents=True)
    classes.mkdir()
    lib = install / "lib"
    classpath = [
        next(iter(sorted(lib.glob(pattern))))
        for pattern in (
            "elasticsearch-plugin-api-*.jar",
            "elasticsearch-plugin-analysis-api-*.jar",
            "lucene-core-*.jar",
            "lucene-analysis-common-*.jar",
        )
    ]
    compiled = subprocess.run(
        [
            str(javac),
            "--release",
            "17",
            "-d",
            str(classes),
            "-cp",
            os.pathsep.join(map(str, classpath)),
            *map(str, sorted(_ES_PLUGIN.glob("*.java"))),
        ],
        capture_output=True,
        text=True,
    )
    if compiled.returncode != 0:
        raise SystemExit(f"javac failed:\n{compiled.stdout}{compiled.stderr}")
    with zipfile.ZipFile(plugin / f"{_ES_PLUGIN_NAME}.jar", "w") as jar:
        for item in sorted(classes.rglob("*.class")):
            jar.write(item, item.relative_to(classes).as_posix())
    shutil.rmtree(classes)
    shutil.copyfile(_ES_PLUGIN / "named_components.json", plugin / "named_components.json")
    version = install.name.rsplit("-", 1)[-1]
    (plugin / "stable-plugin-descriptor.properties").write_text(
        "description=The analysis parts the .security index needs (compose/elasticsearch/security-analysis)\n"
        f"version=1.0\nname={_ES_PLUGIN_NAME}\njava.version=17\nelasticsearch.version={version}\n"
    )
    (staging / ".complete").write_text(_es_plugin_stamp() + "\n")
    shutil.rmtree(home, ignore_errors=True)
    try:
        staging.rename(home)
    except OSError:  # another start built it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    print(f"built {home} with the plugin {_ES_PLUGIN_NAME}")


def _es_command(server: Server, paths: Paths, java: str) -> list[str]:
    plain_launcher = str(paths.install / "bin" / "elasticsearch")
    secure_launcher = str(secure_es_home(paths.install) / "bin" / "elasticsearch")
    command = [
        secure_launcher if argument == plain_launcher else argument
        for argument in servers._search_command(server, paths, java)
        if not argument.startswith("-Expack.security.enabled=")
    ]
    settings = {
        "xpack.security.enabled": "true",
        "xpack.security.http.ssl.enabled": "true",
        "xpack.security.http.ssl.key": f"{_ES_CERTS}/server.key",
        "xpack.security.http.ssl.certificate": f"{_ES_CERTS}/server.crt",
        "xpack.security.http.ssl.certificate_authorities": f"{_ES_CERTS}/ca.pem",
        "xpack.security.authc.api_key.enabled": "true",
        # Not used by a single node, but Elasticsearch warns at each start when it is off.
        "xpack.security.transport.ssl.enabled": "true",
        "xpack.security.transport.ssl.verification_mode": "certificate",
        "xpack.security.transport.ssl.key": f"{_ES_CERTS}/server.key",
        "xpack.security.transport.ssl.certificate": f"{_ES_CERTS}/server.crt",
        "xpack.security.transport.ssl.certificate_authorities": f"{_ES_CERTS}/ca.pem",
    }
    return command + [f"-E{key}={value}" for key, value in settings.items()]


def elasticsearch_url(server: Server) -> str:
    return f"https://127.0.0.1:{server.port}"


def _basic(name: str) -> dict[str, str]:
    found = secret(name)
    token = base64.b64encode(f"{found['username']}:{found['password']}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _es_probe(server: Server) -> str:
    return probes.search_server(
        elasticsearch_url(server), "elasticsearch", context=client_context(), headers=_basic(server.name)
    )


# -- Kafka -------------------------------------------------------------------------------------


def _kafka_prepare(server: Server, paths: Paths) -> None:
    _fresh_data(paths)
    password = _password()
    store_password = _password()
    store = _write_pkcs12(paths.home / "tls", "kafka", store_password)
    _write_client_certificate()
    rendered = paths.home / "server.properties"
    text = (servers.COMPOSE_DIR / "kafka" / "server-secure.properties").read_text()
    values = {
        "port": server.port,
        "mtls_port": server.ports["mtls"],
        "controller_port": server.ports["controller"],
        "data_dir": paths.data,
        "keystore": store,
        "keystore_password": store_password,
        "truststore": ca_file(),
        "username": USERNAME,
        "password": password,
    }
    _write_private(
        rendered, string.Template(text).substitute({k: str(v) for k, v in values.items()}).encode()
    )
    servers._render("kafka/log4j2.properties", paths.home / "log4j2.properties", log_dir=paths.logs)
    _save_secret(server.name, username=USERNAME, password=password)


def _scram_credential(password: str, iterations: int = 8192) -> str:
    """The SCRAM-SHA-512 user for `kafka-storage format --add-scram`, with the salted password
    (RFC 5802's Hi(), i.e. PBKDF2-HMAC-SHA-512) rather than the password: the command line, which
    any `ps` shows, never holds the password itself."""
    salt = os.urandom(24)
    salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return (
        f'SCRAM-SHA-512=[name={USERNAME},iterations={iterations},salt="{base64.b64encode(salt).decode()}",'
        f'saltedpassword="{base64.b64encode(salted).decode()}"]'
    )


def _kafka_format_command(server: Server, paths: Paths, java: str) -> list[str]:
    """Format the storage with the SCRAM-SHA-512 user (KRaft takes SCRAM users at format time)."""
    return [
        java,
        "-cp",
        str(paths.install / "lib" / "*"),
        "kafka.tools.StorageTool",
        "format",
        "--add-scram",
        _scram_credential(secret(server.name)["password"]),
        "-t",
        servers._cluster_id(),
        "-c",
        str(paths.home / "server.properties"),
    ]


def kafka_client_options(name: str = "kafka", mechanism: str = "SCRAM-SHA-512") -> dict[str, object]:
    """kafka-python's options for the secure listener."""
    found = secret(name)
    return {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": found["username"],
        "sasl_plain_password": found["password"],
        "ssl_cafile": str(ca_file()),
    }


def kafka_mtls_options() -> dict[str, object]:
    """kafka-python's options for the mutual TLS listener: SSL, the CA, the client certificate."""
    certfile, keyfile = client_files()
    return {
        "security_protocol": "SSL",
        "ssl_cafile": str(ca_file()),
        "ssl_certfile": str(certfile),
        "ssl_keyfile": str(keyfile),
    }


def _kafka_probe(server: Server) -> str:
    """A live broker and a group coordinator, over SASL_SSL with SCRAM-SHA-512 and the CA; and
    the mutual TLS listener, with the client certificate."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    _quiet("kafka")
    bootstrap = f"127.0.0.1:{server.port}"
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="conductor-probe",
            request_timeout_ms=5000,
            bootstrap_timeout_ms=5000,
            **kafka_client_options(server.name),
        )
    except (KafkaError, OSError, ValueError) as error:
        raise probes.ProbeFailed(f"no SASL_SSL answer from Kafka at {bootstrap}: {error!r}") from error
    try:
        cluster = admin.describe_cluster()
        admin.describe_groups(["conductor-probe"])  # fails until the group coordinator is up
    except (KafkaError, OSError, ValueError) as error:
        raise probes.ProbeFailed(f"Kafka at {bootstrap} is not ready: {error!r}") from error
    finally:
        admin.close()
    brokers = cluster.get("brokers") or []
    if not brokers:
        raise probes.ProbeFailed(f"Kafka at {bootstrap} reports no live broker yet")
    answer = (
        f"broker at {brokers[0]['host']}:{brokers[0]['port']} (SASL_SSL, SCRAM-SHA-512), group coordinator"
    )
    mtls_port = server.ports.get("mtls")  # none for a Kafka started before the listener was added
    if mtls_port is None:
        return answer
    mtls = f"127.0.0.1:{mtls_port}"
    try:
        KafkaAdminClient(
            bootstrap_servers=mtls,
            client_id="conductor-probe",
            request_timeout_ms=5000,
            bootstrap_timeout_ms=5000,
            **kafka_mtls_options(),
        ).close()
    except (KafkaError, OSError, ValueError) as error:
        raise probes.ProbeFailed(f"no mutual TLS answer from Kafka at {mtls}: {error!r}") from error
    return f"{answer}; mutual TLS at {mtls}"


# -- Cassandra ---------------------------------------------------------------------------------

_DEFAULT_ROLE = ("cassandra", "cassandra")


def _cassandra_prepare(server: Server, paths: Paths) -> None:
    _fresh_data(paths)
    store_password = _password()
    store = _write_pkcs12(paths.home / "tls", "cassandra", store_password)
    base = (servers.COMPOSE_DIR / "cassandra" / "cassandra.yaml").read_text()
    extra = (servers.COMPOSE_DIR / "cassandra" / "secure.yaml").read_text()
    values = {
        "data_dir": paths.data,
        "port": server.port,
        "storage_port": server.ports["storage"],
        "keystore": store,
        "keystore_password": store_password,
    }
    text = string.Template(base + "\n" + extra).substitute({k: str(v) for k, v in values.items()})
    _write_private(paths.home / "cassandra.yaml", text.encode())
    servers._render("cassandra/logback.xml", paths.home / "logback.xml", log_dir=paths.logs)
    # Not provisioned yet: the probe replaces cassandra/cassandra with this user once it answers.
    _save_secret(server.name, username=USERNAME, password=_password(), provisioned="")


def _cassandra_command(server: Server, paths: Paths, java: str) -> list[str]:
    command = servers._cassandra_command(server, paths, java)
    main = command.index("-cp")
    # The default superuser is made at once rather than 10 s after start, to be replaced at once.
    return [*command[:main], "-Dcassandra.superuser_setup_delay_ms=0", *command[main:]]


def cassandra_session(server: Server, username: str, password: str, context: ssl.SSLContext | None = None):
    """(cluster, session) over TLS with these credentials; the caller shuts the cluster down."""
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy

    _quiet("cassandra")
    cluster = Cluster(
        ["127.0.0.1"],
        port=server.port,
        protocol_version=5,
        ssl_context=context or client_context(),
        auth_provider=PlainTextAuthProvider(username, password),
        execution_profiles={
            EXEC_PROFILE_DEFAULT: ExecutionProfile(
                load_balancing_policy=RoundRobinPolicy(), request_timeout=10
            )
        },
        connect_timeout=5,
        control_connection_timeout=5,
    )
    try:
        return cluster, cluster.connect()
    except BaseException:
        cluster.shutdown()
        raise


def _provision_cassandra(server: Server, found: dict[str, str]) -> None:
    """Make the user with the random password, then drop cassandra/cassandra (as the new user:
    Cassandra refuses to drop the role one is logged in as)."""
    cluster, session = cassandra_session(server, *_DEFAULT_ROLE)
    try:
        session.execute(
            f"CREATE ROLE IF NOT EXISTS {found['username']} "
            f"WITH SUPERUSER = true AND LOGIN = true AND PASSWORD = '{found['password']}'"
        )
    finally:
        cluster.shutdown()
    cluster, session = cassandra_session(server, found["username"], found["password"])
    try:
        session.execute(f"DROP ROLE IF EXISTS {_DEFAULT_ROLE[0]}")
    finally:
        cluster.shutdown()
    _save_secret(server.name, **{**found, "provisioned": "yes"})


def _cassandra_probe(server: Server) -> str:
    """CQL over TLS with the user; right after the first start, the user is made first."""
    found = secret(server.name)
    try:
        if not found.get("provisioned"):
            _provision_cassandra(server, found)
        cluster, session = cassandra_session(server, found["username"], found["password"])
        try:
            row = session.execute("SELECT release_version FROM system.local").one()
        finally:
            cluster.shutdown()
    except probes.ProbeFailed:
        raise
    except Exception as error:  # the driver's NoHostAvailable, AuthenticationFailed, timeouts
        raise probes.ProbeFailed(f"no CQL answer over TLS from 127.0.0.1:{server.port}: {error!r}") from error
    return f"CQL answered (Cassandra {row.release_version}, TLS, user {found['username']})"


# -- the servers and the settings a client needs ----------------------------------------------


# The secure servers listen 10000 above the plain ones (Kafka 29092, Elasticsearch 29200, Cassandra
# 29042, ...), so both can run at once: the tests of the plain servers and those of the secure ones
# in one session. A port variable that is set (CONDUCTOR_KAFKA_PORT, ...) is taken as it is.
PORT_OFFSET = 10000


def port_variable(server: Server, role: str) -> str:
    name = server.name.upper().replace("-", "_")
    return f"CONDUCTOR_{name}_{'' if role == 'port' else role.upper() + '_'}PORT"


def _variant(server: Server, own_ports: dict[str, int] | None = None, **changes) -> Server:
    """The secure server, on the plain one's ports + PORT_OFFSET; `own_ports` are roles only the
    secure one has, given as if plain (CONDUCTOR_<NAME>_<ROLE>_PORT sets them too)."""
    ports = {
        role: port if os.environ.get(port_variable(server, role)) else port + PORT_OFFSET
        for role, port in server.ports.items()
    }
    for role, port in (own_ports or {}).items():
        ports[role] = int(os.environ.get(port_variable(server, role)) or port + PORT_OFFSET)
    return dataclasses.replace(server, home_name=server.run_name + SUFFIX, ports=ports, **changes)


def secure_servers() -> dict[str, Server]:
    return {
        # The mutual TLS listener: 29094 (29093 is the controller's).
        "kafka": _variant(
            servers.KAFKA,
            {"mtls": 19094},
            prepare=_kafka_prepare,
            init_command=_kafka_format_command,
            probe=_kafka_probe,
        ),
        "elasticsearch": _variant(
            servers.ELASTICSEARCH,
            prepare=_es_prepare,
            command=_es_command,
            init_command=_es_build_command,
            probe=_es_probe,
        ),
        "cassandra": _variant(
            servers.CASSANDRA, prepare=_cassandra_prepare, command=_cassandra_command, probe=_cassandra_probe
        ),
    }


def connection_settings() -> dict[str, str]:
    """What a client of the secure servers needs, under the names the issue fixes."""
    chosen = secure_servers()
    stored = load_secrets()

    def credential(name: str, key: str) -> str:
        return stored.get(name, {}).get(key, USERNAME if key == "username" else "")

    return {
        "CONDUCTOR_CA_FILE": str(ca_file()),
        "CONDUCTOR_KAFKA_BOOTSTRAP": f"127.0.0.1:{chosen['kafka'].port}",
        "CONDUCTOR_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "CONDUCTOR_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "CONDUCTOR_KAFKA_USERNAME": credential("kafka", "username"),
        "CONDUCTOR_KAFKA_PASSWORD": credential("kafka", "password"),
        "CONDUCTOR_KAFKA_MTLS_BOOTSTRAP": f"127.0.0.1:{chosen['kafka'].ports['mtls']}",
        "CONDUCTOR_CLIENT_CERT_FILE": str(client_files()[0]),
        "CONDUCTOR_CLIENT_KEY_FILE": str(client_files()[1]),
        "CONDUCTOR_ELASTICSEARCH_URL": elasticsearch_url(chosen["elasticsearch"]),
        "CONDUCTOR_ELASTICSEARCH_USERNAME": credential("elasticsearch", "username"),
        "CONDUCTOR_ELASTICSEARCH_PASSWORD": credential("elasticsearch", "password"),
        "CONDUCTOR_CASSANDRA_HOSTS": "127.0.0.1",
        "CONDUCTOR_CASSANDRA_PORT": str(chosen["cassandra"].port),
        "CONDUCTOR_CASSANDRA_USERNAME": credential("cassandra", "username"),
        "CONDUCTOR_CASSANDRA_PASSWORD": credential("cassandra", "password"),
    }


if __name__ == "__main__":
    # compose/local runs this as the secure Elasticsearch's init command (output: its init.log).
    if sys.argv[1:2] == ["build-es-home"] and len(sys.argv) == 5:
        build_es_home(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
    else:
        raise SystemExit("usage: secure.py build-es-home INSTALL HOME JAVA")
