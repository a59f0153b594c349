"""``learnchain simulate`` as a user runs it: the JSON contract and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from learnchain.node.cli import main


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_simulate_prints_one_json_object_with_the_contract_fields() -> None:
    code, output = run("simulate", "--validators", "4", "--heights", "30", "--output", "json")
    assert code == 0
    data = json.loads(output)
    for key in (
        "heights",
        "forks",
        "proposals_by_validator",
        "slashed",
        "max_rounds",
        "wall_seconds",
    ):
        assert key in data
    assert data["heights"] >= 30 and data["forks"] == 0
    assert sum(data["proposals_by_validator"]) >= 30


def test_simulate_with_byzantine_validators_lists_the_slashed() -> None:
    code, output = run(
        "simulate",
        "--validators",
        "7",
        "--heights",
        "60",
        "--byzantine",
        "2",
        "--seed",
        "3",
        "--output",
        "json",
    )
    assert code == 0
    assert json.loads(output)["slashed"] == [5, 6]


def test_simulate_text_output_is_a_readable_summary() -> None:
    code, output = run("simulate", "--validators", "3", "--heights", "10")
    assert code == 0
    assert "forks               0" in output
    assert "proposal share" in output


def test_bad_values_are_one_line_errors() -> None:
    for args, message in [
        (("--stakes", "1,2"), "lists 2 stakes for 4 validators"),
        (("--stakes", "1,x,2,3"), "whole numbers"),
        (("--threshold", "3/4"), "threshold must be 1/2 or 2/3"),
        (("--partition", "nonsense"), "START:END"),
        (("--crash", "9:1:1"), "names validator 9"),
        (("--behaviour", "sneaky"), "unknown behaviour"),
        (("--byzantine", "5"), "more byzantine validators"),
    ]:
        code, output = run("simulate", *args)
        assert code == 2, args
        assert message in output, (args, output)
        assert "Traceback" not in output


def test_the_installed_console_script_runs() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "learnchain", "simulate", "--heights", "5", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["heights"] >= 5
