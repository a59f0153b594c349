"""Hosts of their own for real nodes: one network namespace each, on one bridge, with links
that can be slowed, made lossy or cut.

Each host ``i`` is a namespace with one interface (``eth0``, address ``SUBNET.(i+1)``) whose other
end sits on a bridge in the host's own namespace; the bridge has ``SUBNET.254``, so the test
process reaches every node directly (its own traffic is never faulted). What crosses the bridge
passes one iptables chain of this network's own, where faults become rules:

- a partition drops packets from one host's port to another's (``physdev`` match);
- loss drops a share of a host's outgoing packets (``statistic`` match);
- delay and jitter hold a host's outgoing packets in NFQUEUE ``1 + i``, which the delayer
  process (``tests.chaos.delay``) releases on time: ``tc netem`` does this in the kernel, and
  this project's CI kernel has no ``sch_netem``;
- a rate limit is a token bucket (``tc tbf``) on the host's interface.

Needs root, iproute2 and iptables; ``find_missing`` says what is missing so that callers can
skip.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from tests.chaos.delay import compute_applied_path, write_control

BRIDGE_HOST = 254  # the test process's own address on the bridge
TBF_LATENCY_MS = 400  # how long tbf may queue a packet before dropping it
DELAYER_ANSWER_SECONDS = 10


@dataclasses.dataclass
class LinkShape:
    """How one host's outgoing link behaves."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0  # the share of packets dropped, 0..1
    rate_mbit: float = 0.0  # 0: unlimited


_INSTANCES = itertools.count()


class NetworkError(RuntimeError):
    """A command that sets up or changes the network failed."""


def find_missing() -> str | None:
    """Why a chaos network cannot be built here, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "tc", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: iproute2, iptables)"
    return None


def run(*command: str) -> str:
    """Run a command; its output, or NetworkError with what it said."""
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise NetworkError(f"{' '.join(command)}: {result.stderr.strip()}")
    return result.stdout


class ChaosNetwork:
    """``hosts`` namespaces on a bridge, with faults applied by ``apply``."""

    def __init__(self, hosts: int, tag: int | None = None) -> None:
        if not 1 <= hosts <= 200:
            raise ValueError("between 1 and 200 hosts")
        self.hosts = hosts
        self.tag = (os.getpid() + next(_INSTANCES) if tag is None else tag) % 250
        self.name = f"lcx{self.tag}"
        self.subnet = f"10.213.{self.tag}"
        self.shapes = [LinkShape() for _ in range(hosts)]
        self.blocked: set[tuple[int, int]] = set()  # (from, to): packets dropped
        self._rates = [0.0] * hosts  # the rate limit each host's interface has now (0: none)
        self._scratch = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        self._control = self._scratch / "delays.json"
        self._delayer: subprocess.Popen[bytes] | None = None
        self._created: list[str] = []

    # --- names --------------------------------------------------------------------------------

    def namespace(self, i: int) -> str:
        """Host ``i``'s namespace."""
        return f"{self.name}-{i}"

    def address(self, i: int) -> str:
        """Host ``i``'s IPv4 address."""
        return f"{self.subnet}.{i + 1}"

    def launcher(self, i: int) -> tuple[str, ...]:
        """The command prefix that runs a program on host ``i``."""
        return ("ip", "netns", "exec", self.namespace(i))

    def _port(self, i: int) -> str:
        return f"{self.name}v{i}"

    @property
    def _bridge(self) -> str:
        return f"{self.name}br"

    @property
    def _chain(self) -> str:
        return f"LCX{self.tag}"

    @property
    def delayer_pid(self) -> int | None:
        """The delayer process (its CPU time is part of what a delayed link costs here)."""
        return None if self._delayer is None else self._delayer.pid

    # --- life ---------------------------------------------------------------------------------

    def create(self) -> None:
        """Build the bridge, the namespaces and the delayer."""
        run("ip", "link", "add", self._bridge, "type", "bridge")
        self._created.append("bridge")
        run("ip", "addr", "add", f"{self.subnet}.{BRIDGE_HOST}/24", "dev", self._bridge)
        run("ip", "link", "set", self._bridge, "up")
        for i in range(self.hosts):
            ns, port = self.namespace(i), self._port(i)
            run("ip", "netns", "add", ns)
            self._created.append(ns)
            run("ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
            run("ip", "link", "set", port, "master", self._bridge, "up")
            run("ip", "-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            run("ip", "-n", ns, "link", "set", "eth0", "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")
        # Bridged packets pass the host's FORWARD chain (br_netfilter), whose policy may be DROP
        # (Docker sets it): this network's own chain decides, and accepts what it does not fault.
        run("iptables", "-N", self._chain)
        self._created.append("chain")
        run("iptables", "-I", "FORWARD", "-i", self._bridge, "-o", self._bridge, "-j", self._chain)
        self._delayer = subprocess.Popen(
            [
                sys.executable,
                *("-m", "tests.chaos.delay"),
                *("--queues", str(self.hosts), "--control", str(self._control)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=(self._scratch / "delayer.log").open("wb"),
        )
        self.apply()

    def close(self) -> None:
        """Remove everything ``create`` made (also after a partial ``create``)."""
        if self._delayer is not None:
            self._delayer.terminate()
            self._delayer.wait(timeout=10)
            self._delayer = None
        for made in reversed(self._created):
            if made == "chain":
                args = ("-i", self._bridge, "-o", self._bridge, "-j", self._chain)
                subprocess.run(["iptables", "-D", "FORWARD", *args], check=False)
                subprocess.run(["iptables", "-F", self._chain], check=False)
                subprocess.run(["iptables", "-X", self._chain], check=False)
            elif made == "bridge":
                subprocess.run(["ip", "link", "del", self._bridge], check=False)
            else:  # the port first: a namespace is destroyed in the background
                port = self._port(int(made.rsplit("-", 1)[1]))
                subprocess.run(["ip", "link", "del", port], capture_output=True, check=False)
                subprocess.run(["ip", "netns", "del", made], check=False)
        self._created.clear()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> ChaosNetwork:
        try:
            self.create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    # --- faults -------------------------------------------------------------------------------

    def partition(self, groups: list[set[int]]) -> None:
        """Cut every link between hosts in different groups (hosts in no group keep theirs)."""
        where = {i: g for g, group in enumerate(groups) for i in group}
        self.blocked = {(a, b) for a in where for b in where if where[a] != where[b]}
        self.apply()

    def cut(self, pairs: set[tuple[int, int]]) -> None:
        """Cut exactly these links, both ways."""
        self.blocked = pairs | {(b, a) for a, b in pairs}
        self.apply()

    def shape(self, i: int, shape: LinkShape) -> None:
        """Host ``i``'s outgoing link behaves like ``shape``."""
        self.shapes[i] = shape
        self.apply()

    def heal(self, base: LinkShape | None = None) -> None:
        """Every link whole again, shaped as ``base`` (default: a perfect link)."""
        self.blocked = set()
        self.shapes = [dataclasses.replace(base or LinkShape()) for _ in range(self.hosts)]
        self.apply()

    def apply(self) -> None:
        """Make the kernel's rules, queues and the delayer match ``shapes`` and ``blocked``."""
        rules: list[list[str]] = []
        for a, b in sorted(self.blocked):
            rules.append(
                [
                    "-m",
                    "physdev",
                    "--physdev-in",
                    self._port(a),
                    "--physdev-out",
                    self._port(b),
                    "-j",
                    "DROP",
                ]
            )
        for i, shape in enumerate(self.shapes):
            source = ["-m", "physdev", "--physdev-in", self._port(i)]
            if shape.loss > 0:
                chance = ["-m", "statistic", "--mode", "random", "--probability", f"{shape.loss}"]
                rules.append(source + chance + ["-j", "DROP"])
            if shape.delay_ms > 0:
                queue = ["-j", "NFQUEUE", "--queue-num", str(1 + i), "--queue-bypass"]
                rules.append(source + queue)
        rules.append(["-j", "ACCEPT"])
        self._set_delays(
            json.dumps({str(1 + i): [s.delay_ms, s.jitter_ms] for i, s in enumerate(self.shapes)})
        )
        restore = ["*filter", f":{self._chain} - [0:0]"]  # with --noflush: empties this chain
        restore += [f"-A {self._chain} " + " ".join(rule) for rule in rules]
        restore.append("COMMIT")
        result = subprocess.run(
            ["iptables-restore", "--noflush"],
            input="\n".join(restore) + "\n",
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise NetworkError(f"iptables-restore: {result.stderr.strip()}")
        for i, shape in enumerate(self.shapes):
            if self._rates[i] != shape.rate_mbit:  # a tc call per host only when it changes
                self._apply_rate(i, shape.rate_mbit)
                self._rates[i] = shape.rate_mbit

    def _set_delays(self, settings: str) -> None:
        """Hand the delayer new delays and wait until they are in force."""
        applied = compute_applied_path(self._control)
        if self._control.exists() and self._control.read_text() == settings:
            return
        write_control(self._control, settings)
        deadline = time.monotonic() + DELAYER_ANSWER_SECONDS
        while self._delayer is not None and time.monotonic() < deadline:
            if applied.exists() and applied.read_text() == settings:
                return
            if self._delayer.poll() is not None:
                raise NetworkError(
                    f"the packet delayer exited ({self._delayer.returncode}): {self._delayer_log()}"
                )
            time.sleep(0.01)
        raise NetworkError(f"the packet delayer did not take up new delays: {self._delayer_log()}")

    def _delayer_log(self) -> str:
        """The end of the delayer's log (the scratch directory goes when the bed closes)."""
        log = self._scratch / "delayer.log"
        return log.read_text(errors="replace")[-2000:].strip() if log.exists() else "(no log)"

    def _apply_rate(self, i: int, rate_mbit: float) -> None:
        ns = ("ip", "netns", "exec", self.namespace(i))
        if rate_mbit <= 0:
            subprocess.run([*ns, "tc", "qdisc", "del", "dev", "eth0", "root"], capture_output=True)
            return
        # A 4 ms burst, and at least two GSO packets: tbf splits a packet larger than its burst
        # into MTU-sized ones, which would multiply the delayer's work.
        burst = max(2 * 65_536, int(rate_mbit * 1e6 / 8 / 250))
        run(
            *ns,
            *("tc", "qdisc", "replace", "dev", "eth0", "root", "tbf"),
            *("rate", f"{rate_mbit}mbit", "burst", str(burst), "latency", f"{TBF_LATENCY_MS}ms"),
        )
