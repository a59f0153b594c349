"""The committed generated code matches proto/learnchain.proto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    source = tmp_path / "learnchain" / "proto"
    source.mkdir(parents=True)
    (source / "learnchain.proto").write_bytes((ROOT / "proto" / "learnchain.proto").read_bytes())
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I.",
            "--python_out=.",
            "--grpc_python_out=.",
            "--pyi_out=.",
            "learnchain/proto/learnchain.proto",
        ],
        cwd=tmp_path,
        check=True,
        timeout=120,
    )
    for name in ("learnchain_pb2.py", "learnchain_pb2_grpc.py", "learnchain_pb2.pyi"):
        assert (source / name).read_bytes() == (ROOT / "proto" / name).read_bytes(), (
            f"proto/{name} is stale: run `make proto`"
        )
