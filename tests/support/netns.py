"""conductor "hosts" on one machine: network namespaces, each with its own network stack, linked
to the root namespace's bridge by a veth pair; and Kafka and Elasticsearch bound to the bridge's
address (`CONDUCTOR_BIND_HOST=<it> compose/local up kafka elasticsearch`), the only one every
namespace reaches. tests/tasks/test_multihost.py and bench/multihost.py share it; it needs root and
iproute2's `ip`, and nothing outside the standard library.

    root namespace      bridge cnb<pid>  10.231.0.1/24   <- Kafka 39092, Elasticsearch 39200
                          |- veth cnv<pid>h1  ==  eth0 10.231.0.11 in namespace cnd<pid>-h1
                          |- veth cnv<pid>h2  ==  eth0 10.231.0.12 in namespace cnd<pid>-h2

The names carry the creating process's pid: a network left behind by a run that died is removed
by the next one. Cutting a host's link sets its root-side veth down: its packets are dropped, as
when a cable is pulled at the switch, while the host's own interface stays up.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "compose" / "local"
SUBNET = "10.231.0"  # a /24; .1 is the bridge (the servers), .11, .12, ... the hosts
_OWNED = re.compile(r"cn[bdv](\d+)")  # cnb<pid> (bridge), cnd<pid>-h<n> (namespace), cnv<pid>h<n> (veth)


class NetnsError(Exception):
    """An `ip` command that failed, with what it said."""


def unavailable() -> str | None:
    """Why network namespaces cannot be made here (a reason to skip), or None. As root on Linux,
    None: a namespace that then cannot be made (no `ip`, no kernel support) is a failure."""
    if sys.platform != "linux":
        return f"network namespaces are Linux's ({sys.platform} here)"
    if os.geteuid() != 0:
        return "network namespaces need root (`ip netns add`)"
    return None


def ip(*arguments: str, namespace: str | None = None) -> str:
    if shutil.which("ip") is None:
        raise NetnsError("no `ip` on PATH: install iproute2")
    command = ["ip", *(["-n", namespace] if namespace else []), *arguments]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise NetnsError(f"`{' '.join(command)}` exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


@dataclass(frozen=True)
class Host:
    name: str  # h1, h2, ...
    namespace: str
    veth: str  # the root namespace's end of its link
    address: str

    def command(self, argv: list[str]) -> list[str]:
        """`argv` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.namespace, *argv]


@dataclass
class Network:
    """`count` hosts on a bridge that holds `<subnet>.1`; made by create(), gone after remove()."""

    count: int
    subnet: str = SUBNET
    owner: int = field(default_factory=os.getpid)
    hosts: list[Host] = field(init=False)

    def __post_init__(self) -> None:
        self.bridge = f"cnb{self.owner}"
        self.gateway = f"{self.subnet}.1"
        self.hosts = [
            Host(f"h{n}", f"cnd{self.owner}-h{n}", f"cnv{self.owner}h{n}", f"{self.subnet}.{10 + n}")
            for n in range(1, self.count + 1)
        ]

    def create(self) -> Network:
        ip("-V")  # no `ip` is said as such, before anything else
        remove_leftovers()
        holder = ip("-o", "addr", "show", "to", self.gateway).split()
        if holder:
            raise NetnsError(f"{self.gateway} is already on {holder[1]}: another run's network?")
        try:
            ip("link", "add", self.bridge, "type", "bridge")
            ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            ip("link", "set", self.bridge, "up")
            for host in self.hosts:
                ip("netns", "add", host.namespace)
                ip("link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.namespace)
                ip("link", "set", host.veth, "master", self.bridge, "up")
                ip("link", "set", "lo", "up", namespace=host.namespace)
                ip("addr", "add", f"{host.address}/24", "dev", "eth0", namespace=host.namespace)
                ip("link", "set", "eth0", "up", namespace=host.namespace)
        except BaseException:
            self.remove()
            raise
        return self

    def cut(self, host: Host) -> None:
        ip("link", "set", host.veth, "down")

    def restore(self, host: Host) -> None:
        ip("link", "set", host.veth, "up")

    def remove(self) -> None:
        """Every namespace and link of this network; what is already gone is skipped."""
        _remove_owned(self.owner)

    def __enter__(self) -> Network:
        return self.create()

    def __exit__(self, *exc_info: object) -> None:
        self.remove()


def _remove_owned(owner: int) -> None:
    # A veth's two ends go together, at once (a namespace's interfaces go some time after it).
    for name in _links():
        if name.startswith(f"cnv{owner}h"):
            subprocess.run(["ip", "link", "del", name], capture_output=True)
    for namespace in _namespaces():
        if namespace.startswith(f"cnd{owner}-"):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
    subprocess.run(["ip", "link", "del", f"cnb{owner}"], capture_output=True)


def _links() -> list[str]:
    listed = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True).stdout
    return [entry["ifname"] for entry in json.loads(listed or "[]")]


def _namespaces() -> list[str]:
    listed = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True).stdout
    return [entry["name"] for entry in json.loads(listed or "[]")]


def remove_leftovers() -> None:
    """Networks whose creator is gone (a run killed before its clean-up)."""
    owners = {int(found.group(1)) for name in _links() + _namespaces() if (found := _OWNED.match(name))}
    for owner in owners:
        if not Path(f"/proc/{owner}").exists():
            _remove_owned(owner)


# -- the servers on the bridge's address -------------------------------------------------------


def _launcher(gateway: str, *arguments: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "CONDUCTOR_SECURE"}
    environment["CONDUCTOR_BIND_HOST"] = gateway
    return subprocess.run(
        [sys.executable, str(LAUNCHER), *arguments], capture_output=True, text=True, env=environment
    )


@contextmanager
def bound_servers(gateway: str) -> Iterator[dict[str, str]]:
    """Kafka and Elasticsearch bound to `gateway` (which must be up): what `compose/local env`
    says of them. Started if they do not answer, and then stopped at the end; left running if
    they already did."""
    started = _launcher(gateway, "status").returncode != 0
    if started:
        up = _launcher(gateway, "up", "kafka", "elasticsearch")
        if up.returncode != 0:
            _launcher(gateway, "down")
            raise NetnsError(
                f"CONDUCTOR_BIND_HOST={gateway} compose/local up failed:\n{up.stdout}{up.stderr}"
            )
    try:
        yield json.loads(_launcher(gateway, "env", "--json").stdout)
    finally:
        if started:
            _launcher(gateway, "down")
