"""MkDocs hook: the pages generated from the code and from bench/README.md, so none can drift.

reference/config.md and reference/genesis.md come from the dataclasses that read the files
(learnchain/node/home/reference.py); benchmarks.md is bench/README.md as it is (a link in it
that the site cannot follow fails the strict build).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

from learnchain.node.home.reference import compute_config_reference, compute_genesis_reference

ROOT = Path(__file__).resolve().parents[2]


def on_files(files: Files, config: Any) -> Files:
    """Add the generated pages to the site."""
    pages = {
        "reference/config.md": compute_config_reference(),
        "reference/genesis.md": compute_genesis_reference(),
        "benchmarks.md": (ROOT / "bench" / "README.md").read_text(),
    }
    for path, content in pages.items():
        files.append(File.generated(config, path, content=content))
    return files
