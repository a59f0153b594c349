"""The wheel installs into a fresh environment beside another project's ``proto`` package
(proto-plus, which Google's client libraries install) and runs from another directory."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str | Path, cwd: Path, timeout: float = 900) -> str:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def fresh_environment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv with the learnchain wheel and proto-plus's ``proto`` installed."""
    work = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
        "-w", work / "dist", ROOT, cwd=work)  # fmt: skip
    (wheel,) = (work / "dist").glob("learnchain-*.whl")
    venv.create(work / "env", with_pip=True)
    pip = (work / "env" / "bin" / "pip", "--disable-pip-version-check", "--quiet")
    run(*pip, "install", "-c", ROOT / "constraints.txt", "torch", cwd=work)
    run(*pip, "install", "-c", ROOT / "constraints.txt", wheel, cwd=work)
    # proto-plus asks for protobuf < 7; only its ``proto`` package matters here.
    run(*pip, "install", "--no-deps", "proto-plus", cwd=work)
    return work / "env"


def test_the_wheel_installs_only_learnchain_as_a_top_level_package(
    fresh_environment: Path,
) -> None:
    python = fresh_environment / "bin" / "python"
    probe = (
        "import importlib.metadata as m, proto, learnchain.proto.learnchain_pb2 as pb;"
        "print(m.distribution('learnchain').read_text('top_level.txt').split(),"
        " proto.__file__, pb.__file__)"
    )
    shown = run(python, "-c", probe, cwd=fresh_environment)
    assert shown.startswith("['learnchain']"), shown
    assert "site-packages/proto/__init__.py" in shown, "proto-plus's own proto stays importable"


def test_the_installed_demo_runs_from_another_directory(fresh_environment: Path) -> None:
    learnchain = fresh_environment / "bin" / "learnchain"
    shown = run(
        learnchain, "demo", "--validators", "3", "--rounds", "4", "--output", "json",
        cwd=fresh_environment.parent,
    )  # fmt: skip
    summary = json.loads(shown.strip().splitlines()[-1])
    assert summary["consistent"] is True
    assert summary["heights"] >= 4
