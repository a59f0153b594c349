"""One chaos run: real validators in network namespaces, faults from a seeded schedule, and the
invariant checker watching throughout; a summary (the JSON ``make chaos`` prints) at the end."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc

from learnchain.consensus.crypto import compute_address
from learnchain.consensus.messages import Block
from learnchain.consensus.params import Genesis
from learnchain.node.home.files import read_genesis, read_key
from learnchain.node.localnet.cluster import LocalCluster, LocalNode
from learnchain.proto import learnchain_pb2 as pb
from tests.chaos.checker import InvariantChecker, compute_missed_streaks, compute_rss_growth
from tests.chaos.faults import Fault, FaultKind, compute_schedule
from tests.chaos.network import ChaosNetwork, LinkShape, find_missing
from tests.disk import fill_disk

# libfaketime with a fixed offset from the start: its runtime-changeable mode breaks sleeps
# when only the wall clock is faked, and skewing the monotonic clock mid-run is no real fault.
FAKETIME_LIBRARIES = sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))
DISK_MB = 256  # each node's home is a tmpfs this big (so that the disk-full fault can fill it)
POLL_SECONDS = 1.0
WARM_UP_HEIGHT = 3


class ChaosUnavailable(RuntimeError):
    """This machine cannot run the chaos bed (not root, a tool missing)."""


@dataclasses.dataclass(frozen=True)
class ChaosSpec:
    """What to run."""

    validators: int = 4
    seconds: float = 180.0
    seed: int = 0
    kinds: tuple[FaultKind, ...] = tuple(FaultKind)
    progress_bound: float = 90.0
    memory_limit_mb: float = 1536.0
    settle_seconds: float = 120.0  # after the last fault, for every node to catch up
    workdir: Path | None = None  # kept (logs, homes) when given; else a temporary directory


def find_unavailable(kinds: tuple[FaultKind, ...]) -> str | None:
    """Why this machine cannot run these faults, or None."""
    missing = find_missing()
    if missing is not None:
        return missing
    if FaultKind.CLOCK_SKEW in kinds and not FAKETIME_LIBRARIES:
        return "libfaketime is missing (Debian: faketime)"
    return None


def mount_tmpfs(home: Path, megabytes: int) -> None:
    """Put ``home`` (with what it holds) on a tmpfs of its own."""
    saved = home.with_name(home.name + ".saved")
    home.rename(saved)
    home.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(home)], check=True
    )
    for item in saved.iterdir():
        shutil.move(str(item), home / item.name)
    saved.rmdir()


def compute_ring_cuts(order: tuple[int, ...]) -> set[tuple[int, int]]:
    """Every link between nodes that are not neighbours on the ring ``order``."""
    n = len(order)
    neighbours = {frozenset((order[k], order[(k + 1) % n])) for k in range(n)}
    return {(a, b) for a in order for b in order if a < b and frozenset((a, b)) not in neighbours}


class ChaosRun:
    """Injects a schedule's faults into a cluster in a chaos network, and heals them."""

    def __init__(
        self,
        spec: ChaosSpec,
        net: ChaosNetwork,
        cluster: LocalCluster,
        say: Callable[[str], None] = print,
    ) -> None:
        self.spec = spec
        self.say = say
        self.net = net
        self.cluster = cluster
        self.byzantine = spec.validators - 1
        self.checker = InvariantChecker(spec.progress_bound, spec.memory_limit_mb)
        self.may_be_down: set[int] = set()  # killed, or with a full disk
        self.fillers: dict[int, Path] = {}
        self.injected: Counter[str] = Counter()
        self.restored: list[str] = []  # what the bed did to bring validators back

    # --- one look ------------------------------------------------------------------------------

    def poll(self) -> None:
        """Heights, memory and unexpected exits of every node, into the checker."""
        heights: dict[int, int | None] = {}
        memory: dict[int, float] = {}
        for i in range(self.spec.validators):
            node = self.cluster[i]
            if node.process is not None and node.process.poll() is not None:
                if i in self.may_be_down:
                    node.process = None
                else:
                    self.checker.unexpected_exit(i, node.process.returncode, node.log_tail())
                    node.process = None
                    node.start()
            if node.process is None:
                heights[i] = None
                continue
            memory[i] = node.rss_mb()
            status = node.status(timeout=1)
            heights[i] = None if status is None else int(status.height)
        self.checker.watch(time.monotonic(), heights, memory)

    def wait(self, seconds: float) -> None:
        """Keep looking for ``seconds``."""
        deadline = time.monotonic() + seconds
        while True:
            self.poll()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(POLL_SECONDS, left))

    # --- faults --------------------------------------------------------------------------------

    def restart(self, i: int, **settings: str) -> None:
        """Stop node ``i``, change its config.toml, start it again."""
        node = self.cluster[i]
        node.stop()
        for key, value in settings.items():
            node.configure(key, value)
        node.start()

    def inject(self, fault: Fault) -> None:
        """Begin ``fault``."""
        self.injected[fault.kind.value] += 1
        kind, nodes = fault.kind, fault.nodes
        first = self.cluster[nodes[0]]
        if kind == FaultKind.KILL:
            self.may_be_down.add(nodes[0])
            first.kill()
        elif kind == FaultKind.PAUSE:
            first.pause()
        elif kind == FaultKind.PARTITION:
            rest = set(range(self.spec.validators)) - set(nodes)
            if fault.detail == "ring":
                self.net.cut(compute_ring_cuts(nodes))
            else:
                self.net.partition([set(nodes), rest])
        elif kind == FaultKind.LOSS:
            for i in nodes:
                self.net.shape(i, LinkShape(loss=fault.amount))
        elif kind == FaultKind.DELAY:
            for i in nodes:
                self.net.shape(i, LinkShape(delay_ms=fault.amount, jitter_ms=fault.amount / 4))
        elif kind == FaultKind.DISK_FULL:
            self.may_be_down.add(nodes[0])
            self.fillers[nodes[0]] = fill_disk(first.home)
        elif kind == FaultKind.CLOCK_SKEW:
            first.stop()
            first.environment = {
                "LD_PRELOAD": str(FAKETIME_LIBRARIES[0]),
                "FAKETIME": f"{int(fault.amount):+d}",  # seconds
            }
            first.start()
        elif kind == FaultKind.POISON:
            self.restart(nodes[0], attack="label_flip")
        elif kind == FaultKind.WITHHOLD:
            self.restart(nodes[0], byzantine="withhold")
        elif kind == FaultKind.EQUIVOCATE:
            address = self.get_validator_address(nodes[0])
            self.checker.equivocators = frozenset({address})
            # A non-validator's votes count for nothing: there is no equivocation to catch.
            self.checker.expect_evidence = self.is_active_validator(address)
            if not self.checker.expect_evidence:
                self.say(f"  node{nodes[0]} is not an active validator: no evidence due")
            self.restart(nodes[0], byzantine="equivocate")

    def heal(self, fault: Fault) -> None:
        """End ``fault``: everything as before it."""
        kind, nodes = fault.kind, fault.nodes
        first = self.cluster[nodes[0]]
        if kind == FaultKind.KILL:
            first.start()
            self.may_be_down.discard(nodes[0])
        elif kind == FaultKind.PAUSE:
            first.resume()
        elif kind in (FaultKind.PARTITION, FaultKind.LOSS, FaultKind.DELAY):
            self.net.heal()
        elif kind == FaultKind.DISK_FULL:
            self.fillers.pop(nodes[0]).unlink()
            if not first.is_running():
                first.process = None
                first.start()
            self.may_be_down.discard(nodes[0])
        elif kind == FaultKind.CLOCK_SKEW:
            first.stop()
            first.environment = {}
            first.start()
        elif kind == FaultKind.POISON:
            self.restart(nodes[0], attack="")
        elif kind in (FaultKind.WITHHOLD, FaultKind.EQUIVOCATE):
            self.restart(nodes[0], byzantine="")
        self.checker.healed(time.monotonic(), f"{kind.value} on {nodes}")
        if kind != FaultKind.EQUIVOCATE:  # an equivocator stays jailed: it was slashed for it
            self.restore_validators()

    @functools.cached_property
    def genesis(self) -> Genesis:
        """The chain's genesis (the same in every home)."""
        return read_genesis(self.cluster[0].home).genesis

    def restore_validators(self) -> None:
        """As an operator would: bring back a validator that left the set, so that later faults
        still hit a full validator set: top up a bond that forfeited deposits (a poisoned
        update's, §3.5-3.6) took below ``min_stake``, and unjail one jailed for missed blocks
        once its term is over."""
        for i in range(self.spec.validators):
            for j in [k for k in range(self.spec.validators) if k != i] + [i]:  # any that answers
                with contextlib.suppress(grpc.RpcError):
                    self.restore_validator(i, self.cluster[j])
                    break

    def restore_validator(self, i: int, via: LocalNode) -> None:
        """Top up and unjail node ``i`` through ``via`` as needed (grpc.RpcError when ``via``
        does not answer)."""
        address = self.get_validator_address(i)
        bond = via.query.GetAccount(pb.AccountRequest(address=address), timeout=2).bond
        height = via.query.Status(pb.StatusRequest(), timeout=2).height
        min_stake = self.genesis.params.min_stake
        if bond.bonded < min_stake:
            stake = next(
                (
                    v.stake
                    for v in self.genesis.validators
                    if compute_address(v.public_key) == address
                ),
                min_stake,
            )
            self.send_tx(i, via, "stake", str(stake - bond.bonded))
            self.restored.append(f"node{i} topped up from {bond.bonded}")
        if bond.jailed and height >= bond.jailed_until:
            self.send_tx(i, via, "unjail")
            self.restored.append(f"node{i} unjailed")

    def send_tx(self, i: int, via: LocalNode, *command: str) -> None:
        """``learnchain tx COMMAND`` signed by node ``i``'s validator key, sent to ``via``."""
        result = subprocess.run(
            [
                *(sys.executable, "-m", "learnchain", "tx", *command, "--from", "validator"),
                *("--home", str(self.cluster[i].home), "--node", via.address, "--no-wait"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        answer = (result.stdout or result.stderr).strip().splitlines()[-1:] or [""]
        self.say(f"  node{i}: tx {' '.join(command)}: {answer[0]}")

    def is_active_validator(self, address: bytes) -> bool:
        """Whether ``address`` is in the active validator set, as the first node to answer says
        (True when none answers: then evidence is due, as it would be)."""
        for i in range(self.spec.validators):
            with contextlib.suppress(grpc.RpcError):
                response = self.cluster[i].query.Validators(pb.ValidatorsRequest(), timeout=2)
                return any(bytes(v.address) == address for v in response.validators.validators)
        return True

    def get_validator_address(self, i: int) -> bytes:
        """Node ``i``'s validator address, read from its key file (it may be restarting)."""
        return read_key(self.cluster[i].home).address

    # --- the end -------------------------------------------------------------------------------

    def settle(self) -> int:
        """Wait until every node has the highest height seen so far; that height."""
        target = self.checker.highest
        deadline = time.monotonic() + self.spec.settle_seconds
        while time.monotonic() < deadline:
            self.poll()
            if all(self.cluster[i].height() >= target for i in range(self.spec.validators)):
                break
            time.sleep(POLL_SECONDS)
        return target

    def read_chains(self, height: int) -> dict[int, list[Block]]:
        """Blocks 1..``height`` of every node (as many as it has)."""
        chains: dict[int, list[Block]] = {}
        for i in range(self.spec.validators):
            node = self.cluster[i]
            top = min(height, node.height())
            chains[i] = [node.block(h) for h in range(1, top + 1)]
        return chains

    def make_scorer(self) -> Callable[[bytes], float | None]:
        """A model's accuracy on the held-out digits no validator trains on (None when no node
        holds it any more)."""
        from safetensors.torch import load

        from learnchain.ml.data import load_digits_pool
        from learnchain.ml.tasks import get_task
        from learnchain.ml.training import evaluate_state
        from learnchain.node.home.files import read_genesis

        task_config = read_genesis(self.cluster[0].home).task
        task = get_task(task_config)
        _, test = load_digits_pool(task_config.seed)

        def score(model_hash: bytes) -> float | None:
            for i in range(self.spec.validators):
                with contextlib.suppress(grpc.RpcError):
                    data = self.cluster[i].fetch_model(model_hash)
                    return float(evaluate_state(task, load(data), test).accuracy)
            return None

        return score


@contextlib.contextmanager
def chaos_cluster(spec: ChaosSpec, root: Path) -> Iterator[tuple[ChaosNetwork, LocalCluster]]:
    """A chaos network and a cluster of validators in it, homes on their own tmpfs each."""
    with ChaosNetwork(spec.validators) as net:
        cluster = LocalCluster(
            root / "net",
            spec.validators,
            "--create-empty-blocks",
            *("--plateau-rounds", "0"),
            *("--vote-relay-from", str(spec.validators)),
            *("--seed", str(spec.seed)),
            starting_ip=net.address(0),
            launcher=net.launcher,
        )
        mounted = []
        try:
            cluster.configure_all("retain_models", "100000")
            for i in range(spec.validators):
                mount_tmpfs(cluster[i].home, DISK_MB)
                mounted.append(cluster[i].home)
            yield net, cluster
        finally:
            cluster.close()
            for home in mounted:
                subprocess.run(["umount", "-l", str(home)], check=False)


def run_chaos(spec: ChaosSpec, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run ``spec``; the summary (``violations`` must be empty)."""
    unavailable = find_unavailable(spec.kinds)
    if unavailable is not None:
        raise ChaosUnavailable(unavailable)
    with contextlib.ExitStack() as stack:
        root = spec.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        net, cluster = stack.enter_context(chaos_cluster(spec, root))
        run = ChaosRun(spec, net, cluster, say)
        schedule = compute_schedule(
            spec.seed, spec.seconds, spec.validators, list(spec.kinds), run.byzantine
        )
        say(f"chaos: {spec.validators} validators in {root}, seed {spec.seed}, schedule:")
        for fault in schedule:
            say("  " + fault.describe())
        cluster.start_all()
        cluster.wait_for(range(spec.validators), WARM_UP_HEIGHT, timeout=300)
        start = time.monotonic()
        for fault in schedule:
            run.wait(max(0.0, start + fault.at - time.monotonic()))
            say(f"  at {time.monotonic() - start:7.1f}s: {fault.kind.value} on nodes {fault.nodes}")
            run.inject(fault)
            run.wait(fault.seconds)
            run.heal(fault)
        run.wait(max(0.0, start + spec.seconds - time.monotonic()))
        height = run.settle()
        chains = run.read_chains(height)
        run.checker.check_chains(chains, run.make_scorer())
        blocks = chains[0]
        updates = sum(
            1
            for before, after in itertools.pairwise(blocks)
            if before.header.model_hash != after.header.model_hash
        )
        checker = run.checker
        addresses = {run.get_validator_address(i): i for i in range(spec.validators)}
        streaks = compute_missed_streaks(blocks, addresses)
        growth = compute_rss_growth(checker.rss_by_minute, after=10)
        return {
            "seed": spec.seed,
            "validators": spec.validators,
            "seconds": round(time.monotonic() - start, 1),
            "faults": dict(sorted(run.injected.items())),
            "violations": checker.violations,
            "longest_stall_after_heal_s": round(checker.longest_stall, 1),
            "heights": height,
            "model_updates": updates,
            "evidence": checker.evidence_seen,
            # downtime jails a validator at downtime_jail_blocks (50) commits in a row without it
            "restored": run.restored,
            "longest_missed_streak": {str(i): streaks[a] for a, i in addresses.items()},
            "max_rss_mb": {str(i): round(m) for i, m in sorted(checker.max_rss_mb.items())},
            "rss_mb_by_minute": {
                str(i): {str(m): round(mb) for m, mb in sorted(by_minute.items())}
                for i, by_minute in sorted(checker.rss_by_minute.items())
            },
            "rss_growth_after_minute_10_mb": None if growth is None else round(growth),
        }
    raise AssertionError("unreachable")
