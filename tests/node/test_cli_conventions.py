"""The command line follows ``cometbft``'s and ``simd``'s conventions: ``--output`` is only a
format, a default home, ``version``, ``completion``, ``keys``, an explicit ``--from``, and values
checked with one-line errors."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from learnchain.node.cli import main
from learnchain.node.home.files import read_key

ADDRESS = "ab" * 20


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("conventions") / "net"
    created = invoke("testnet", "--validators", "2", "--output-dir", str(root))
    assert created.exit_code == 0, created.output
    return root


# --- --output is a format ------------------------------------------------------------------------


def test_testnet_takes_its_folder_from_output_dir_and_says_so_for_the_old_spelling(
    tmp_path: Path,
) -> None:
    refused = invoke("testnet", "--validators", "1", "--output", str(tmp_path / "net"))
    assert refused.exit_code == 2
    assert "--output-dir" in refused.output
    assert not (tmp_path / "net").exists(), "nothing is written"
    assert not Path("json").exists()


def test_testnet_json_lists_each_home_with_a_metrics_port_of_its_own(tmp_path: Path) -> None:
    made = invoke(
        "testnet", "--validators", "3", "--output-dir", str(tmp_path / "n"), "--output", "json"
    )
    assert made.exit_code == 0, made.output
    shown = json.loads(made.output)
    assert shown["homes"] == [str(tmp_path / "n" / f"node{i}") for i in range(3)]
    assert shown["metrics"] == [f"127.0.0.1:{27656 + i}" for i in range(3)]


def test_testnet_text_prints_where_each_node_serves_metrics(tmp_path: Path) -> None:
    made = invoke("testnet", "--validators", "2", "--output-dir", str(tmp_path / "n"))
    assert "http://127.0.0.1:27657/metrics" in made.output


def test_metrics_can_be_turned_off(tmp_path: Path) -> None:
    made = invoke(
        "testnet",
        *("--validators", "1", "--output-dir", str(tmp_path / "n"), "--metrics-base-port", "0"),
        *("--output", "json"),
    )
    assert json.loads(made.output)["metrics"] == [""]


# --- a default home ------------------------------------------------------------------------------


def test_learnchain_home_is_the_home_when_none_is_given(tmp_path: Path) -> None:
    home = tmp_path / "chosen"
    made = invoke("init", "--moniker", "solo", env={"LEARNCHAIN_HOME": str(home)})
    assert made.exit_code == 0, made.output
    shown = invoke("keys", "show", "--output", "json", env={"LEARNCHAIN_HOME": str(home)})
    assert json.loads(shown.output)["address"] == read_key(home).address.hex()


def test_without_learnchain_home_the_home_is_dot_learnchain(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "LEARNCHAIN_HOME": ""}
    made = invoke("init", "--moniker", "solo", env=env)
    assert made.exit_code == 0, made.output
    assert (tmp_path / ".learnchain" / "config.toml").exists()


def test_a_query_without_a_node_or_a_home_says_what_to_give(tmp_path: Path) -> None:
    asked = invoke("query", "status", "--home", str(tmp_path / "none"))
    assert asked.exit_code == 2
    assert "give --node HOST:PORT" in asked.output


# --- version and completion ----------------------------------------------------------------------


def test_version_prints_the_installed_version() -> None:
    assert invoke("version").output.strip() == importlib.metadata.version("learnchain")
    shown = json.loads(invoke("version", "--output", "json").output)
    assert shown["torch"] == importlib.metadata.version("torch")


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script_for_each_shell(shell: str) -> None:
    shown = invoke("completion", shell)
    assert shown.exit_code == 0
    assert "_LEARNCHAIN_COMPLETE" in shown.output


def test_completion_completes_commands_and_their_subcommands() -> None:
    def complete(words: str) -> str:
        env = {
            **os.environ,
            "_LEARNCHAIN_COMPLETE": "bash_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
        }
        return subprocess.run(
            [sys.executable, "-m", "learnchain"], env=env, capture_output=True, text=True
        ).stdout

    assert "plain,query" in complete("learnchain que").splitlines()
    assert "plain,genesis-hash" in complete("learnchain query gen").splitlines()


# --- keys and --from -----------------------------------------------------------------------------


def test_keys_add_list_and_show(tmp_path: Path) -> None:
    home = str(tmp_path)
    added = json.loads(invoke("keys", "add", "alice", "--home", home, "--output", "json").output)
    assert set(added) == {"name", "address", "public_key", "file"}, "never the private key"
    assert added["file"] == str(tmp_path / "keyring" / "alice.json"), "it says where it saved"
    assert (tmp_path / "keyring" / "alice.json").stat().st_mode & 0o777 == 0o600
    invoke("keys", "add", "bob", "--home", home)
    listed = json.loads(invoke("keys", "list", "--home", home, "--output", "json").output)
    assert [k["name"] for k in listed["keys"]] == ["alice", "bob"]
    shown = json.loads(invoke("keys", "show", "alice", "--home", home, "--output", "json").output)
    assert shown == {k: v for k, v in added.items() if k != "file"}
    assert invoke("keys", "show", "alice", "-a", "--home", home).output == added["address"] + "\n"


def test_keys_add_says_when_it_makes_a_home(tmp_path: Path) -> None:
    home = tmp_path / "new-home"
    added = CliRunner().invoke(main, ["keys", "add", "bob", "--home", str(home)])
    assert added.exit_code == 0, added.output
    assert f"created {home} for the keyring" in added.output


def test_keys_list_of_a_home_that_does_not_exist_makes_none(tmp_path: Path) -> None:
    refused = invoke("keys", "list", "--home", str(tmp_path / "absent"))
    assert refused.exit_code == 1 and "no home at" in refused.output
    assert not (tmp_path / "absent").exists()


@pytest.mark.parametrize("name", ["alice", "validator", "../escape", ""])
def test_keys_add_refuses_a_name_in_use_or_a_bad_name(tmp_path: Path, name: str) -> None:
    invoke("keys", "add", "alice", "--home", str(tmp_path))
    refused = invoke("keys", "add", name, "--home", str(tmp_path))
    assert refused.exit_code == 1
    assert refused.output.startswith("Error: ") and refused.output.count("\n") == 1
    assert not (tmp_path.parent / "escape.json").exists()


def test_a_transaction_needs_an_explicit_from(net: Path) -> None:
    refused = invoke("tx", "transfer", ADDRESS, "5", "--home", str(net / "node0"))
    assert refused.exit_code == 2
    assert "--from" in refused.output


def test_from_an_unknown_key_names_the_keys_command(net: Path) -> None:
    refused = invoke(
        "tx", "transfer", ADDRESS, "5", "--from", "carol", "--home", str(net / "node0")
    )
    assert refused.exit_code == 1
    assert "learnchain keys list" in refused.output


# --- values are checked --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("tx", "transfer", ADDRESS, "-5", "--from", "validator"), "-5 is not in the range x>=1"),
        (("tx", "stake", "0", "--from", "validator"), "0 is not in the range x>=1"),
        (("tx", "unstake", "-1", "--from", "validator"), "-1 is not in the range x>=1"),
        (("query", "block", "0"), "0 is not in the range x>=1"),
        (("query", "block", "-3"), "-3 is not in the range x>=1"),
        (("model", "export", "--output-file", "m.st", "--height", "0"), "not in the range"),
    ],
)
def test_bad_amounts_and_heights_are_one_line_errors(
    net: Path, args: tuple[str, ...], error: str
) -> None:
    refused = invoke(*args, "--home", str(net / "node0"))
    assert refused.exit_code == 2
    assert error in refused.output


@pytest.mark.parametrize("shard", ["9/5", "5/5", "-1/5", "x/5", "3"])
def test_init_refuses_a_shard_outside_the_parties(net: Path, tmp_path: Path, shard: str) -> None:
    refused = invoke(
        "init",
        *("--moniker", "j", "--home", str(tmp_path / "j")),
        *("--genesis", str(net / "node0" / "genesis.json"), "--shard", shard),
    )
    assert refused.exit_code == 2
    assert "--shard" in refused.output
    assert not (tmp_path / "j").exists()


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("appraisal=shapley", "task.appraisal must be one of exact, first_order, got 'shapley'"),
        ("appraisal", "--task-param takes KEY=VALUE, got 'appraisal'"),
    ],
)
def test_a_demo_with_a_bad_task_param_is_one_line_that_says_error_once(
    param: str, message: str
) -> None:
    refused = CliRunner().invoke(main, ["demo", "--validators", "2", "--task-param", param])
    assert refused.exit_code == 1
    assert refused.output == f"Error: {message}\n"
