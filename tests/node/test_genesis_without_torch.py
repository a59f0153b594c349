"""Reading a genesis (what every CLI query and `init --genesis-from` do) never loads torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_reading_a_genesis_leaves_torch_unloaded(tmp_path: Path) -> None:
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "learnchain",
            "testnet",
            "--validators",
            "1",
            "--output-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from learnchain.node.home.files import read_genesis\n"
        f"genesis = read_genesis(Path({str(tmp_path / 'node0')!r}))\n"
        "assert genesis.task.name == 'digits-mlp'\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_the_built_in_task_names_are_the_registered_tasks() -> None:
    from learnchain.ml.config import BUILTIN_TASKS
    from learnchain.ml.tasks import TASKS

    assert set(BUILTIN_TASKS) == set(TASKS)
