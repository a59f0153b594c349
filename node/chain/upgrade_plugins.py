"""The upgrades this build carries: handlers registered by installed packages under the
``learnchain.upgrades`` entry point group (name = the plan's name, object = a function from the
state before the plan's height to the state its block starts from), as a newer learnchain or an
organisation's migration package declares them:

    [project.entry-points."learnchain.upgrades"]
    v0-2-reputation = "mypackage.upgrades:enable_reputation"
"""

from __future__ import annotations

import importlib.metadata
import logging

from learnchain.consensus.upgrades import get_known_upgrades, register_upgrade

UPGRADE_ENTRY_POINTS = "learnchain.upgrades"

log = logging.getLogger("learnchain.node")


class UpgradePluginError(ValueError):
    """An installed upgrade entry point that cannot be used; the message names it."""


def load_installed_upgrades() -> list[str]:
    """Register every installed ``learnchain.upgrades`` entry point; the names this build
    carries. UpgradePluginError names one that does not load or is not a function."""
    for point in importlib.metadata.entry_points(group=UPGRADE_ENTRY_POINTS):
        try:
            handler = point.load()
        except Exception as error:  # an installed package's import error, whatever it is
            raise UpgradePluginError(
                f"upgrade {point.name!r} ({point.value}) does not load: {error}"
            ) from error
        if not callable(handler):
            raise UpgradePluginError(f"upgrade {point.name!r} ({point.value}) is not a function")
        try:
            register_upgrade(point.name, handler)
        except ValueError as error:
            raise UpgradePluginError(f"{point.value}: {error}") from error
    return get_known_upgrades()
