"""Homes for nodes that join an existing chain, and homes for testnets in containers."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from learnchain.node.cli import main
from learnchain.node.home.files import (
    NodeConfig,
    get_advertised_address,
    read_config,
    read_genesis,
    read_key,
)
from learnchain.node.home.testnet import TestnetSpec, create_testnet


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("net") / "net"
    create_testnet(TestnetSpec(2, output, base_port=31100))
    return output


def test_init_with_a_genesis_joins_that_chain_as_a_full_node(tmp_path: Path, network: Path) -> None:
    home = tmp_path / "joiner"
    result = CliRunner().invoke(
        main,
        [
            "init",
            "--home",
            str(home),
            "--moniker",
            "joiner",
            "--genesis",
            str(network / "node0" / "genesis.json"),
            "--peers",
            "127.0.0.1:31100,127.0.0.1:31101",
            "--listen",
            "0.0.0.0:31102",
            "--external-address",
            "joiner.example:31102",
            "--shard",
            "2/3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "full node of chain learnchain-testnet" in result.output
    assert (home / "genesis.json").read_bytes() == (network / "node0" / "genesis.json").read_bytes()
    validators = {v.public_key for v in read_genesis(home).genesis.validators}
    assert read_key(home).public_key not in validators
    config = read_config(home)
    assert config.persistent_peers == ("127.0.0.1:31100", "127.0.0.1:31101")
    assert (config.data.party, config.data.parties) == (2, 3)
    assert get_advertised_address(config) == "joiner.example:31102"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--shard", "3/3"], "I must be in 0..N-1"),
        (["--shard", "x"], "--shard takes I/N"),
        (["--peers", "nohost"], "expected host:port"),
        (["--genesis-from", "127.0.0.1:1"], "not both"),
    ],
)
def test_bad_join_options_are_one_line_errors_and_create_nothing(
    tmp_path: Path, network: Path, extra: list[str], message: str
) -> None:
    home = tmp_path / "joiner"
    args = ["init", "--home", str(home), "--moniker", "j"]
    args += ["--genesis", str(network / "node0" / "genesis.json"), *extra]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0 and message in result.output
    assert "Traceback" not in result.output
    assert not (home / "config.toml").exists()


def test_a_bad_genesis_file_is_refused_and_leaves_no_home(tmp_path: Path) -> None:
    bad = tmp_path / "genesis.json"
    bad.write_text('{"chain_id": 5}')
    home = tmp_path / "joiner"
    result = CliRunner().invoke(
        main, ["init", "--home", str(home), "--moniker", "j", "--genesis", str(bad)]
    )
    assert result.exit_code == 1 and "genesis.json" in result.output
    assert not (home / "config.toml").exists() and not (home / "genesis.json").exists()


def test_container_testnets_listen_everywhere_and_advertise_hostnames(tmp_path: Path) -> None:
    create_testnet(TestnetSpec(3, tmp_path / "net", hostname_prefix="node"))
    config = read_config(tmp_path / "net" / "node1")
    assert config.listen == "0.0.0.0:26656"
    assert get_advertised_address(config) == "node1:26656"
    assert config.persistent_peers == ("node0:26656", "node2:26656")
    endpoints = [v.endpoint for v in read_genesis(tmp_path / "net" / "node0").genesis.validators]
    assert endpoints == ["node0:26656", "node1:26656", "node2:26656"]


def test_testnets_on_hosts_of_their_own_give_node_i_the_starting_ip_plus_i(
    tmp_path: Path,
) -> None:
    args = ["testnet", "--validators", "3", "--output-dir", str(tmp_path / "net")]
    result = CliRunner().invoke(main, [*args, "--starting-ip", "10.5.0.7"])
    assert result.exit_code == 0, result.output
    config = read_config(tmp_path / "net" / "node2")
    assert config.listen == "10.5.0.9:26656"
    assert config.persistent_peers == ("10.5.0.7:26656", "10.5.0.8:26656")
    refused = CliRunner().invoke(main, [*args[:4], str(tmp_path / "x"), "--starting-ip", "10.5"])
    assert refused.exit_code == 2 and "not an IPv4 address: '10.5'" in refused.output
    assert not (tmp_path / "x").exists()


def test_a_node_listening_everywhere_without_an_external_address_advertises_nothing() -> None:
    assert get_advertised_address(NodeConfig(listen="0.0.0.0:26656")) == ""
    assert get_advertised_address(NodeConfig(listen="10.0.0.5:26656")) == "10.0.0.5:26656"
