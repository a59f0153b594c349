"""Test-suite wiring: under pytest-xdist (``make test`` runs two workers), every test that starts
node processes runs on one worker, in turn, so two clusters never share this machine's cores or
race for the same ports; the other worker takes the in-process tests."""

from __future__ import annotations

import pytest

PROCESS_MARKS = ("e2e", "slow", "docker", "chaos", "browser", "flower")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the tests that start processes in one xdist group (``--dist loadgroup``)."""
    for item in items:
        if any(item.get_closest_marker(mark) for mark in PROCESS_MARKS):
            item.add_marker(pytest.mark.xdist_group("processes"))
