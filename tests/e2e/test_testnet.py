"""A four-validator testnet of real processes on loopback, driven through the CLI and gRPC."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from learnchain.node.localnet.cluster import LocalCluster, run_learnchain
from learnchain.node.telemetry.logs import read_text_fields
from learnchain.proto import learnchain_pb2 as pb
from tests.e2e import EMPTY_BLOCKS

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    root = tmp_path_factory.mktemp("e2e") / "net"
    with LocalCluster(root, 4, "--partition", "dirichlet:0.5", *EMPTY_BLOCKS) as net:
        net.start_all()
        net.wait_for([0, 1, 2, 3], 8)
        yield net


def test_every_node_reports_the_same_block_at_every_height(cluster: LocalCluster) -> None:
    top = min(cluster[i].height() for i in range(4))
    for height in range(1, top + 1):
        assert len({cluster[i].block_hash(height) for i in range(4)}) == 1, height
    shown = run_learnchain(
        "query", "block", str(top), "--node", cluster[2].address, "--output", "json"
    )
    block = json.loads(shown.stdout)
    assert block["hash"] == cluster[0].block_hash(top).hex()
    assert {"height", "time", "hash", "proposer", "model_hash", "txs"} <= set(block)


def test_blocks_carry_a_bft_time_that_follows_the_clock(cluster: LocalCluster) -> None:
    top = min(cluster[i].height() for i in range(4))
    times = [cluster[0].block(h).header.time_ms for h in range(1, top + 1)]
    assert times == sorted(times) and len(set(times)) == len(times), "strictly increasing"
    assert abs(times[-1] / 1000 - time.time()) < 120, "close to the validators' clocks"


def test_status_has_the_contract_fields(cluster: LocalCluster) -> None:
    shown = run_learnchain("query", "status", "--home", str(cluster[1].home), "--output", "json")
    status = json.loads(shown.stdout)
    assert {
        "chain_id",
        "node_id",
        "height",
        "latest_block_hash",
        "model_hash",
        "peers",
        "syncing",
    } <= set(status)
    assert status["peers"] == 3


def test_validators_lists_the_four_with_their_stakes(cluster: LocalCluster) -> None:
    shown = json.loads(
        run_learnchain(
            "query", "validators", "--node", cluster[0].address, "--output", "json"
        ).stdout
    )
    assert len(shown["validators"]) == 4
    assert all(v["stake"] == 1000 for v in shown["validators"])


def test_the_model_is_trained_and_exported_with_the_chains_hash(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    history = json.loads(
        run_learnchain("query", "history", "--node", cluster[0].address, "--output", "json").stdout
    )
    assert any(e["model_updated"] for e in history["entries"])
    out = tmp_path / "model.safetensors"
    exported = run_learnchain(
        "model",
        "export",
        "--node",
        cluster[3].address,
        "--output-file",
        str(out),
        "--output",
        "json",
    )
    assert exported.returncode == 0, exported.stderr
    payload = json.loads(exported.stdout)
    from safetensors.torch import load_file

    from learnchain.ml.codec import compute_weights_hash
    from learnchain.ml.tasks import TaskConfig, get_task

    state = load_file(out)
    assert compute_weights_hash(state).hex() == payload["model_hash"]
    model = get_task(TaskConfig()).build_model()
    model.load_state_dict(state)


def test_validators_appraise_each_contribution_in_their_precommits(cluster: LocalCluster) -> None:
    top = min(cluster[i].height() for i in range(4))
    appraised = 0
    for height in range(1, top):
        block = cluster[0].block(height)
        if not block.contributions:
            continue
        commit = cluster[0].block(height + 1).last_commit
        assert commit is not None
        reports = [s.values for s in commit.signatures if s.values]
        assert all(len(values) == len(block.contributions) for values in reports), height
        appraised += len(reports) >= 3
    assert appraised >= 1, "more than half of the stake appraised some aggregate"


def test_a_transfer_from_the_faucet_is_committed(cluster: LocalCluster) -> None:
    recipient = "ab" * 20
    sent = run_learnchain(
        "tx",
        "transfer",
        recipient,
        "25",
        "--from",
        str(cluster.root / "faucet_key.json"),
        "--node",
        cluster[1].address,
        "--output",
        "json",
    )
    assert sent.returncode == 0, sent.stderr
    account = json.loads(
        run_learnchain(
            "query", "account", recipient, "--node", cluster[2].address, "--output", "json"
        ).stdout
    )
    assert account["balance"] == 25


PEER_METHODS = ["Hello", "SubmitTx"]
QUERY_METHODS = [
    "GetBlock",
    "Validators",
    "GetAccount",
    "History",
]  # and Status, Genesis: no fields
STREAMS = [("Peer", "FetchWeights"), ("Peer", "GetBlocks"), ("Query", "Model")]


def test_garbage_and_oversized_calls_to_every_method_leave_the_node_running(
    cluster: LocalCluster,
) -> None:
    channel = grpc.insecure_channel(cluster[0].address)
    payloads = [
        os.urandom(200),
        b"\x0a\xff\xff\xff\xff\x0f" + os.urandom(50),
        os.urandom(9 * 1024 * 1024),
    ]
    calls = [(f"/learnchain.v1.Peer/{m}", False) for m in PEER_METHODS]
    calls += [(f"/learnchain.v1.Query/{m}", False) for m in QUERY_METHODS]
    calls += [(f"/learnchain.v1.{s}/{m}", True) for s, m in STREAMS]
    refused = 0
    for path, streaming in calls:
        for payload in payloads:
            method = (channel.unary_stream if streaming else channel.unary_unary)(path)
            try:
                result = method(payload, timeout=10)
                if streaming:
                    list(result)
            except grpc.RpcError as error:
                assert error.code() in (
                    grpc.StatusCode.INVALID_ARGUMENT,
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    grpc.StatusCode.NOT_FOUND,
                ), (path, error.code())
                refused += 1
    assert refused >= len(calls) * 2
    before = cluster[0].height()
    cluster.wait_for([0, 1, 2, 3], before + 3)
    assert cluster[0].is_running()


def test_bad_gossip_streams_are_refused_and_leave_the_node_running(cluster: LocalCluster) -> None:
    channel = grpc.insecure_channel(cluster[0].address)
    gossip = channel.stream_unary("/learnchain.v1.Peer/Gossip")
    bad_streams = [
        [os.urandom(200)],
        [os.urandom(9 * 1024 * 1024)],
        [pb.Envelope().SerializeToString()],
        [pb.Envelope(vote=pb.Vote(), weights=b"weights beside a vote").SerializeToString()],
        [pb.Envelope(votes=pb.VoteBatch()).SerializeToString()],
        [pb.Envelope(votes=pb.VoteBatch(votes=[pb.Vote(vote_type=7)])).SerializeToString()],
        [pb.Envelope(votes=pb.VoteBatch(votes=[pb.Vote()] * 1025)).SerializeToString()],
        [
            pb.Envelope(
                contribution=pb.ContributionAnnouncement(), weights=bytes(2 * 1024 * 1024)
            ).SerializeToString()
        ],
    ]
    for stream in bad_streams:
        with pytest.raises(grpc.RpcError) as raised:
            gossip(iter(stream), timeout=10)
        assert raised.value.code() in (
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        ), raised.value.details()
    before = cluster[0].height()
    cluster.wait_for([0, 1, 2, 3], before + 3)
    assert cluster[0].is_running()


def test_genesis_hash_is_the_sha256_of_the_homes_genesis(cluster: LocalCluster) -> None:
    import hashlib

    shown = run_learnchain(
        "query", "genesis-hash", "--node", cluster[2].address, "--output", "json"
    )
    expected = hashlib.sha256((cluster[0].home / "genesis.json").read_bytes()).hexdigest()
    assert json.loads(shown.stdout) == {"genesis_hash": expected}


def scrape(cluster: LocalCluster, i: int) -> dict[str, float]:
    """Node ``i``'s metrics: ``name{labels}`` -> value."""
    import urllib.request

    with urllib.request.urlopen(cluster[i].metrics_url, timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, number = line.rpartition(" ")
            samples[name] = float(number)
    return samples


def test_every_validator_serves_cometbft_style_metrics_by_default(cluster: LocalCluster) -> None:
    chain = '{chain_id="learnchain-testnet"}'
    metrics = scrape(cluster, 1)
    assert metrics[f"learnchain_consensus_height{chain}"] >= 8
    assert metrics[f"learnchain_consensus_validators{chain}"] == 4
    assert metrics[f"learnchain_consensus_validators_power{chain}"] == 4000
    assert metrics[f"learnchain_consensus_validator_power{chain}"] == 1000
    assert metrics[f"learnchain_consensus_block_size_bytes{chain}"] > 0
    assert metrics['learnchain_p2p_peers{chain_id="learnchain-testnet",direction="outbound"}'] == 3
    assert metrics['learnchain_p2p_peers{chain_id="learnchain-testnet",direction="inbound"}'] == 3
    assert metrics[f"learnchain_mempool_size{chain}"] >= 0
    assert metrics["learnchain_process_resident_memory_bytes"] > 0


WORK = ("train", "evaluate", "check")


def test_the_learning_round_is_measured(cluster: LocalCluster) -> None:
    metrics = scrape(cluster, 2)
    labels = 'chain_id="learnchain-testnet"'
    shown = "\n".join(name for name in metrics if "learning" in name and "bucket" not in name)
    assert any("work_seconds" in name for name in metrics), shown
    works = [f'learnchain_learning_work_seconds_count{{{labels},work="{w}"}}' for w in WORK]
    assert all(metrics.get(name, 0) > 0 for name in works), shown
    assert metrics[f'learnchain_learning_weights_bytes_total{{{labels},direction="received"}}'] > 0
    assert metrics[f'learnchain_learning_updates_total{{{labels},result="approved"}}'] > 0
    assert metrics[f"learnchain_learning_model_updates_total{{{labels}}}"] > 0
    assert 0 < metrics[f"learnchain_learning_chain_score{{{labels}}}"] <= 1
    assert 0 < metrics[f"learnchain_learning_model_score{{{labels}}}"] <= 1
    sent = sum(
        scrape(cluster, i).get(
            f'learnchain_learning_weights_bytes_total{{{labels},direction="sent"}}', 0
        )
        for i in range(4)
    )
    assert sent > 0


def test_every_honest_aggregate_is_verified_by_every_other_validator(cluster: LocalCluster) -> None:
    """§3.7 across separate processes: each validator re-computes each aggregate it votes on
    from the listed contributions (server momentum included) and gets the proposer's weights."""
    labels = 'chain_id="learnchain-testnet"'
    for i in range(4):
        metrics = scrape(cluster, i)
        assert metrics[f'learnchain_learning_updates_total{{{labels},result="approved"}}'] > 0
        assert (
            metrics.get(f'learnchain_learning_updates_total{{{labels},result="unverified"}}', 0)
            == 0
        )


def test_a_killed_validator_is_not_missed_and_catches_up_when_restarted(
    cluster: LocalCluster,
) -> None:
    cluster[3].kill()
    before = max(cluster[i].height() for i in range(3))
    cluster.wait_for([0, 1, 2], before + 5)
    cluster[3].start()
    target = max(cluster[i].height() for i in range(3)) + 3
    cluster.wait_for([0, 1, 2, 3], target)
    top = min(cluster[i].height() for i in range(4))
    assert cluster[3].block_hash(top) == cluster[0].block_hash(top)
    # It votes again: a later commit carries its signature.
    address = json.loads(
        run_learnchain("keys", "show", "--home", str(cluster[3].home), "--output", "json").stdout
    )["address"]
    # A commit needs three of the four, so a restarted node's precommits can come too late for
    # a few of them while two cores are busy: it must be in one within a generous wait.
    deadline = time.monotonic() + 120
    height = top
    while True:
        height += 1
        cluster.wait_for([0], height)
        block = json.loads(
            run_learnchain(
                "query", "block", str(height), "--node", cluster[0].address, "--output", "json"
            ).stdout
        )
        if address in block["signers"]:
            break
        assert time.monotonic() < deadline, f"no commit from {top + 1} to {height} has {address}"
    # Every other node logged it going down and coming back.
    peer = f"peer={cluster[3].address}"
    for i in range(3):
        lines = cluster[i].log_path.read_text().splitlines()
        assert any("peer down" in line and peer in line for line in lines), i
        assert any("peer up" in line and peer in line for line in lines), i


def test_every_committed_height_has_one_info_line_with_its_fields(cluster: LocalCluster) -> None:
    lines = [
        line for line in cluster[1].log_path.read_text().splitlines() if "committed block" in line
    ]
    heights = [int(read_text_fields(line)["height"]) for line in lines]
    assert heights == sorted(set(heights)), "one line per height"
    assert heights[-1] >= cluster[1].height() - 1
    fields = read_text_fields(lines[-1])
    assert {"round", "hash", "proposer", "model", "signers"} <= set(fields)
    assert lines[-1][:4].isdigit() and "Z [info" in lines[-1], "ISO-8601 UTC time first"


def test_all_validators_killed_and_restarted_continue_from_the_last_height(
    cluster: LocalCluster,
) -> None:
    heights = [cluster[i].height() for i in range(4)]
    for i in range(4):
        cluster[i].kill()
    cluster.start_all()
    cluster.wait_for([0, 1, 2, 3], max(heights) + 3)
    for i in range(4):
        assert cluster[i].block_hash(max(heights)) == cluster[0].block_hash(max(heights))
