"""Kafka and Elasticsearch bound to another address than loopback, for clients on other hosts
(or in other network namespaces, as tests/tasks/test_multihost.py runs them):
`CONDUCTOR_BIND_HOST=10.231.0.1 compose/local up kafka elasticsearch`.

Kafka names its listener's address in the metadata it gives clients, so a client elsewhere reaches a
broker only at an address the broker both listens on and advertises: 127.0.0.1 is every host's own.
These servers listen (every port, Kafka's controller and Elasticsearch's transport too) and
advertise on CONDUCTOR_BIND_HOST only, which must be one of this machine's addresses already
(`ip addr add`; compose/local does not make it). They run from their own run folders
(<name>-hosts) on ports 20000 above the plain ones unless set (Kafka 39092, its controller 39093,
Elasticsearch 39200, its transport 39300), so that plain, secure and bound servers run at once.
One bound variant at a time: its run folders do not depend on the address. No security (the secure
variant stays on loopback), and no Cassandra.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket

import servers
from secure import port_variable
from servers import Paths, Server

VARIABLE = "CONDUCTOR_BIND_HOST"
SUFFIX = "-hosts"
# Above the secure variant's 10000: 39092, 39093, 39200, 39300.
PORT_OFFSET = 20000


def bind_host(environ=os.environ) -> str | None:
    """The address CONDUCTOR_BIND_HOST names; None when unset (the plain or secure servers)."""
    return environ.get(VARIABLE, "").strip() or None


def is_hosts_home(home) -> bool:
    return home.name.endswith(SUFFIX)


def address_problem(host: str) -> str | None:
    """Why the servers cannot listen on `host`, or None: an IPv4 address of this machine."""
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return f"{VARIABLE}={host} is not an IPv4 address"
    with socket.socket() as sock:
        try:
            sock.bind((host, 0))
        except OSError as error:
            return (
                f"{host} is not an address of this machine ({error.strerror}): add it first, "
                f"e.g. `ip addr add {host}/24 dev <interface>`"
            )
    return None


def _variant(server: Server, host: str, **changes) -> Server:
    """The server bound to `host`, on its plain ports + PORT_OFFSET (a port variable that is set,
    CONDUCTOR_KAFKA_PORT, ..., is taken as it is)."""
    ports = {
        role: port if os.environ.get(port_variable(server, role)) else port + PORT_OFFSET
        for role, port in server.ports.items()
    }
    return dataclasses.replace(server, host=host, home_name=server.run_name + SUFFIX, ports=ports, **changes)


def _kafka_prepare(server: Server, paths: Paths) -> None:
    """The plain server.properties with the host in place of 127.0.0.1: the listeners, the
    advertised listener and the controller's quorum address."""
    servers._kafka_prepare(server, paths)
    config = paths.home / "server.properties"
    config.write_text(config.read_text().replace("127.0.0.1", server.host))


def hosts_servers(host: str) -> dict[str, Server]:
    return {
        "kafka": _variant(servers.KAFKA, host, prepare=_kafka_prepare),
        "elasticsearch": _variant(servers.ELASTICSEARCH, host),
    }


def connection_settings(host: str) -> dict[str, str]:
    """What a client of the bound servers needs, under the names the plain servers' use."""
    chosen = hosts_servers(host)
    return {
        "CONDUCTOR_KAFKA_BOOTSTRAP": f"{host}:{chosen['kafka'].port}",
        "CONDUCTOR_ELASTICSEARCH_URL": f"http://{host}:{chosen['elasticsearch'].port}",
    }
