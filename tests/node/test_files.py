"""The files a node owns: written by init/testnet, read back, and bad ones named precisely."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from learnchain.node.cli import main
from learnchain.node.home.files import ConfigError, read_config, read_genesis, read_key
from learnchain.node.home.testnet import TestnetSpec, create_testnet


@pytest.fixture(scope="module")
def testnet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("net") / "net"
    create_testnet(TestnetSpec(4, output, partition="dirichlet:0.5", base_port=31000))
    return output


def test_testnet_homes_share_one_genesis_and_know_each_other(testnet_dir: Path) -> None:
    genesis = [(testnet_dir / f"node{i}" / "genesis.json").read_text() for i in range(4)]
    assert len(set(genesis)) == 1
    configs = [read_config(testnet_dir / f"node{i}") for i in range(4)]
    assert [c.listen for c in configs] == [f"127.0.0.1:{31000 + i}" for i in range(4)]
    assert all(len(c.persistent_peers) == 3 for c in configs)
    assert [c.data.party for c in configs] == [0, 1, 2, 3]
    g = read_genesis(testnet_dir / "node0")
    keys = {read_key(testnet_dir / f"node{i}").public_key for i in range(4)}
    assert {v.public_key for v in g.genesis.validators} == keys
    assert str(g.genesis.params.threshold) == "2/3"


def test_key_files_are_private(testnet_dir: Path) -> None:
    for i in range(4):
        assert (testnet_dir / f"node{i}" / "node_key.json").stat().st_mode & 0o777 == 0o600
    assert (testnet_dir / "faucet_key.json").stat().st_mode & 0o777 == 0o600


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path, testnet_dir: Path) -> None:
    home = tmp_path / "h"
    home.mkdir()
    (home / "node_key.json").write_text((testnet_dir / "node0" / "node_key.json").read_text())
    os.chmod(home / "node_key.json", 0o644)
    with pytest.raises(ConfigError, match="too open"):
        read_key(home)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("listen = 5", "config.toml: listen: expected str, got 5"),
        ('listen = "nowhere"', "config.toml: listen: expected host:port"),
        ('colour = "blue"', "config.toml: colour: unknown field"),
        ('[timeouts]\npropose = "fast"', "config.toml: timeouts.propose: expected int"),
        ("[timeouts]\npropose = -1", "config.toml: timeouts.propose: must be positive"),
        ("[timeouts]\ngossip = 0", "config.toml: timeouts.gossip: must be positive"),
        ("[timeouts]\nprevote_delta = -5", "timeouts.prevote_delta: must be at least 0"),
        ("[timeouts]\nprecommit = 86400000", "timeouts.precommit: .* at most 3600000 ms"),
        ('[data]\nkind = "cloud"', "config.toml: data.kind: must be digits or file"),
        ('[data]\nkind = "file"', "config.toml: data.path: a file data source needs a path"),
        ("persistent_peers = [1]", "config.toml: persistent_peers: expected a list"),
        ('log_level = "loud"', "config.toml: log_level: must be one of debug, info"),
        ("listen = ", "config.toml: not valid TOML"),
        ("[timeouts]\ncommit = -1", "timeouts.commit: must be at least 0"),
        ("create_empty_blocks = 1", "create_empty_blocks: expected bool"),
        ("create_empty_blocks_interval = -1", "create_empty_blocks_interval: must be at least 0"),
        ("create_empty_blocks_interval = 99999999999", "create_empty_blocks_interval: .* at most"),
        ('device = "gpu"', "config.toml: device: must be auto, cpu, cuda, cuda:N or mps"),
        ("threads = 0", "config.toml: threads: must be at least 1, got 0"),
        ('precision = "int8"', "config.toml: precision: must be one of float32, bfloat16"),
    ],
)
def test_a_bad_config_names_the_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "config.toml").write_text(text + "\n")
    with pytest.raises(ConfigError, match=message):
        read_config(tmp_path)


def _genesis_with(testnet_dir: Path, tmp_path: Path, change: object) -> Path:
    data = json.loads((testnet_dir / "node0" / "genesis.json").read_text())
    change(data)  # type: ignore[operator]
    (tmp_path / "genesis.json").write_text(json.dumps(data))
    return tmp_path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("task"), "genesis.json: task: missing"),
        (
            lambda d: d["params"].update(threshold="3/4"),
            "params.threshold: threshold must be 1/2 or 2/3",
        ),
        (lambda d: d["params"].update(mode="mixed"), "genesis.json: params"),
        (
            lambda d: d["validators"][1].update(public_key="zz"),
            r"validators\[1\].public_key: not valid hex",
        ),
        (lambda d: d["validators"][0].update(stake="lots"), r"validators\[0\].stake: expected int"),
        (
            lambda d: d["validators"][0].update(stake=-10),
            r"validators\[0\].stake: must be positive",
        ),
        (lambda d: d["validators"][2].update(stake=0), r"validators\[2\].stake: must be positive"),
        (
            lambda d: d["accounts"][0].update(balance=-5),
            r"accounts\[0\].balance: must not be negative",
        ),
        (lambda d: d["task"].update(name="gpt"), "unknown task 'gpt'"),
        (lambda d: d.update(initial_model_hash="00"), "initial_model_hash: expected 32 bytes"),
        (lambda d: d["params"].update(round_deadline=-5), "round_deadline must be between 1"),
        (lambda d: d["params"].update(round_deadline=0), "round_deadline must be between 1"),
        (lambda d: d["params"].update(verdict_timeout=10**12), "verdict_timeout must be between"),
        (lambda d: d["params"].update(plateau_rounds=-1), "plateau_rounds must be between 0"),
        (lambda d: d["params"].update(min_improvement=-1), "min_improvement must be between 0"),
        (lambda d: d["params"].update(target_score="high"), "target_score: expected a whole"),
        (lambda d: d["params"].update(target_score=10**12), "target_score is out of range"),
        (
            lambda d: d["params"].update(reputation_decay=1_000_000),
            "reputation_decay must be at least 0 and below 1000000",
        ),
        (
            lambda d: d["task"].update(duplicate_margin=1.5),
            "task.duplicate_margin must be at least 0 and below 1",
        ),
    ],
)
def test_a_bad_genesis_names_the_file_and_field(
    testnet_dir: Path, tmp_path: Path, change: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        read_genesis(_genesis_with(testnet_dir, tmp_path, change))


def test_the_learning_rules_go_from_the_command_line_into_the_genesis(tmp_path: Path) -> None:
    runner = CliRunner()
    flags = ["--target-score", "0.97", "--plateau-rounds", "5", "--round-deadline", "90"]
    flags += ["--reputation-decay", "0.95"]
    shown = runner.invoke(
        main, ["testnet", "--validators", "1", "--output-dir", str(tmp_path / "n"), *flags]
    )
    assert shown.exit_code == 0, shown.output
    params = read_genesis(tmp_path / "n" / "node0").genesis.params
    assert (params.target_score, params.plateau_rounds, params.round_deadline) == (
        970_000,
        5,
        90_000,
    )
    assert params.reputation_decay == 950_000 and params.keeps_reputation
    for bad in (
        ["--round-deadline", "0"],
        ["--plateau-rounds", "-1"],
        ["--verdict-timeout", "1e9"],
        ["--reputation-decay", "1"],
    ):
        refused = runner.invoke(
            main, ["testnet", "--validators", "1", "--output-dir", str(tmp_path / "m"), *bad]
        )
        assert refused.exit_code == 2 and bad[0] in refused.output
        assert not (tmp_path / "m").exists()


def test_missing_files_are_one_line_errors(tmp_path: Path) -> None:
    for read in (read_config, read_genesis, read_key):
        with pytest.raises(ConfigError, match="no such file"):
            read(tmp_path)


def test_the_cli_creates_homes_and_shows_keys(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        main, ["testnet", "--validators", "2", "--output-dir", str(tmp_path / "n")]
    )
    assert result.exit_code == 0, result.output
    shown = runner.invoke(
        main, ["keys", "show", "--home", str(tmp_path / "n" / "node1"), "--output", "json"]
    )
    assert json.loads(shown.output)["address"] == read_key(tmp_path / "n" / "node1").address.hex()
    again = runner.invoke(
        main, ["testnet", "--validators", "2", "--output-dir", str(tmp_path / "n")]
    )
    assert again.exit_code == 1 and "already exists" in again.output
    init = runner.invoke(main, ["init", "--home", str(tmp_path / "solo"), "--moniker", "solo"])
    assert (
        init.exit_code == 0
        and read_genesis(tmp_path / "solo").genesis.validators[0].moniker == "solo"
    )
    bad = runner.invoke(
        main,
        ["testnet", "--validators", "2", "--output-dir", str(tmp_path / "m"), "--partition", "x"],
    )
    assert bad.exit_code == 2 and "partition must be iid or dirichlet" in bad.output
