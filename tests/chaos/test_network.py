"""The chaos network's hosts reach one another; a delay, a partition and a heal do what they say
on real sockets; closing leaves nothing behind (needs root: ``make chaos``)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.chaos.network import ChaosNetwork, LinkShape, find_missing

pytestmark = pytest.mark.chaos

PORT = 9555
ECHO_SERVER = f"""
import socket
server = socket.create_server(("0.0.0.0", {PORT}))
while True:
    connection, _ = server.accept()
    with connection:
        connection.sendall(connection.recv(16))
"""
ROUND_TRIP = f"""
import socket, sys, time
start = time.monotonic()
try:
    with socket.create_connection((sys.argv[1], {PORT}), timeout=3) as c:
        c.sendall(b"ping")
        assert c.recv(16) == b"ping"
except OSError as error:
    print("unreachable", error)
else:
    print(time.monotonic() - start)
"""


@pytest.fixture
def net() -> Iterator[ChaosNetwork]:
    missing = find_missing()
    if missing is not None:
        pytest.skip(missing)
    with ChaosNetwork(3) as network:
        server = subprocess.Popen([*network.launcher(1), sys.executable, "-c", ECHO_SERVER])
        time.sleep(0.5)
        try:
            yield network
        finally:
            server.kill()
            server.wait()


def round_trip(network: ChaosNetwork, source: int, target: int) -> float | None:
    """Seconds for a TCP connect, send and echo from host ``source`` to ``target``; None when
    it cannot reach it."""
    command = [*network.launcher(source), sys.executable, "-c", ROUND_TRIP]
    result = subprocess.run(
        [*command, network.address(target)], capture_output=True, text=True, timeout=30
    )
    answer = result.stdout.strip()
    return None if answer.startswith("unreachable") else float(answer)


def test_hosts_reach_each_other_quickly_until_delayed(net: ChaosNetwork) -> None:
    fast = round_trip(net, 0, 1)
    assert fast is not None and fast < 0.1
    net.shape(0, LinkShape(delay_ms=60))
    net.shape(1, LinkShape(delay_ms=60))
    slow = round_trip(net, 0, 1)
    # a connect and an echo: two round trips of 120 ms each
    assert slow is not None and slow >= 0.24


def test_a_partition_cuts_only_the_links_across_it_and_a_heal_restores_them(
    net: ChaosNetwork,
) -> None:
    net.partition([{0}, {1, 2}])
    assert round_trip(net, 0, 1) is None
    assert round_trip(net, 2, 1) is not None
    net.heal()
    assert round_trip(net, 0, 1) is not None


def test_closing_removes_the_namespaces_the_links_and_the_rules(net: ChaosNetwork) -> None:
    names = [net.namespace(i) for i in range(net.hosts)]
    net.close()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(name in listed for name in names)
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert f"{net.name}v" not in links and f"{net.name}br" not in links
    rules = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True).stdout
    assert f"LCX{net.tag}" not in rules
