"""Mutual TLS (``testnet --tls``): the validators reach each other and commit; a client without
a certificate from the network's authority cannot even connect; the CLI reaches a node with
``--home``; a joiner certified with ``learnchain tls issue`` follows the chain."""

from __future__ import annotations

import json
import time
from pathlib import Path

import grpc
import pytest

from learnchain.consensus.crypto import PrivateKey
from learnchain.consensus.types import ChainId
from learnchain.node.home.tls import (
    NAME_OVERRIDE,
    create_authority,
    issue_node_files,
    read_tls_files,
)
from learnchain.node.localnet.cluster import LocalCluster, check_learnchain, run_learnchain
from learnchain.node.p2p.peer_auth import make_hello
from learnchain.proto import learnchain_pb2_grpc as pb_grpc
from tests.e2e import EMPTY_BLOCKS

pytestmark = pytest.mark.e2e

JOINER = 3


def hello_code(channel: grpc.Channel) -> str:
    request = make_hello(PrivateKey.generate(), ChainId("x"), "")
    try:
        pb_grpc.PeerStub(channel).Hello(request, timeout=5)
    except grpc.RpcError as error:
        return str(error.code().name)
    return "OK"


def test_a_tls_testnet_commits_and_refuses_clients_without_a_certificate(tmp_path: Path) -> None:
    with LocalCluster(tmp_path / "net", 3, *EMPTY_BLOCKS, "--tls", spare_ports=1) as cluster:
        cluster.start_all()
        cluster.wait_for([0, 1, 2], 3)

        with grpc.insecure_channel(cluster[0].address) as plain:
            assert hello_code(plain) == "UNAVAILABLE"
        stranger = tmp_path / "stranger"
        create_authority(stranger / "ca", "another network")
        issue_node_files(stranger / "ca", stranger, PrivateKey.generate().address)
        credentials = read_tls_files(stranger).channel_credentials()
        with grpc.secure_channel(cluster[0].address, credentials, options=[NAME_OVERRIDE]) as ch:
            assert hello_code(ch) == "UNAVAILABLE"

        shown = run_learnchain(
            "query", "status", "--home", str(cluster[0].home), "--output", "json"
        )
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["height"] >= 3
        refused = run_learnchain("query", "status", "--node", cluster[0].address)
        assert refused.returncode == 1
        assert "cannot reach" in refused.stderr

        joiner = cluster[JOINER]
        genesis = cluster[0].home / "genesis.json"  # --genesis-from would need a certificate
        check_learnchain(
            "init",
            *("--home", str(joiner.home), "--moniker", "joiner", "--genesis", str(genesis)),
            *("--peers", ",".join(cluster[i].address for i in range(3))),
            *("--listen", joiner.address),
        )
        check_learnchain(
            "tls", "issue", "--ca", str(tmp_path / "net" / "tls_ca"), "--home", str(joiner.home)
        )
        joiner.configure("create_empty_blocks", "true")
        joiner.start()
        cluster.wait_for([JOINER], cluster[0].height() + 2)
        deadline = time.monotonic() + 60  # "syncing" flips on during each catch-up probe
        while (status := joiner.status()) is None or status.syncing:
            assert time.monotonic() < deadline, joiner.log_tail()
            time.sleep(0.2)
