"""node/ by subsystem: each package says what lives there and what it may import, imports no
more than that, and no two packages import each other, directly or around a circle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import learnchain.node

NODE = Path(learnchain.node.__file__).parent
ENTRY_POINTS = {"__init__.py", "daemon.py"}  # the daemon and the package docstring
ENTRY_PACKAGES = {"cli"}  # the command line: it may import every subsystem
MAY_IMPORT = re.compile(r"^May import: (.*)$", re.M)


def get_subsystems() -> list[str]:
    """The sub-packages of node/ other than the command line."""
    return sorted(
        p.name
        for p in NODE.iterdir()
        if (p / "__init__.py").is_file() and p.name not in ENTRY_PACKAGES
    )


def get_docstring(package: str) -> str:
    """A sub-package's ``__init__`` docstring."""
    return ast.get_docstring(ast.parse((NODE / package / "__init__.py").read_text())) or ""


def get_allowed(package: str) -> set[str]:
    """The sub-packages a package's docstring says it may import."""
    match = MAY_IMPORT.search(get_docstring(package))
    assert match, f"node/{package}/__init__.py: no 'May import:' line"
    text = match.group(1).rstrip(".")
    return set() if text.startswith("nothing") else {name.strip() for name in text.split(",")}


def compute_node_imports(path: Path) -> set[str]:
    """The first component under learnchain.node of everything a module imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module + "." + alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[:2] == ["learnchain", "node"] and len(parts) > 2:
                found.add(parts[2])
    return found


def get_imported(package: str) -> set[str]:
    """The other parts of node/ a package's modules import."""
    found: set[str] = set()
    for path in (NODE / package).rglob("*.py"):
        found |= compute_node_imports(path)
    return found - {package}


def test_only_the_entry_points_sit_directly_in_node() -> None:
    modules = {p.name for p in NODE.glob("*.py")}
    assert modules == ENTRY_POINTS


def test_every_subsystem_says_what_lives_there_and_what_it_may_import() -> None:
    subsystems = get_subsystems()
    assert len(subsystems) >= 8
    for package in subsystems:
        docstring = get_docstring(package)
        assert len(docstring.split("\n\n")[0]) > 40, f"node/{package}: say what lives there"
        assert get_allowed(package) <= set(subsystems), f"node/{package}: unknown package named"


def test_each_subsystem_imports_only_what_its_docstring_allows() -> None:
    for package in get_subsystems():
        extra = get_imported(package) - get_allowed(package)
        assert not extra, f"node/{package} imports {sorted(extra)} beyond its 'May import:' line"


def test_no_subsystem_imports_the_daemon_or_the_command_line() -> None:
    for package in get_subsystems():
        assert not get_imported(package) & {"daemon", "cli"}, package


def test_the_subsystems_import_each_other_without_a_circle() -> None:
    allowed = {package: get_allowed(package) for package in get_subsystems()}
    ordered: list[str] = []
    while len(ordered) < len(allowed):
        ready = [p for p in allowed if p not in ordered and allowed[p] <= set(ordered)]
        assert ready, f"an import circle among {sorted(set(allowed) - set(ordered))}"
        ordered += sorted(ready)
