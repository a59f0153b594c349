"""Upgrades agreed on chain (the Cosmos SDK's x/upgrade, decided by stake instead of a
governance vote).

A validator signals a plan with an ``upgrade`` transaction: a name and the height at which the
chain halts for it. A plan is scheduled once the validators signalling it hold more than the
genesis threshold of the voting power. Every node stops before deciding the plan's height
unless its build carries a handler for the plan's name (the engine's ``HaltForUpgrade``); a
build that does applies the handler to the state at the start of that height's block, so the
chain goes on from the same height with the same history. The handlers a build carries are
registered by name (``register_upgrade``; the node adds the ``learnchain.upgrades`` entry
points of the installed packages).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from learnchain.consensus.encoding import encode_str, encode_uint
from learnchain.consensus.types import Address, Height, Threshold, is_quorum

if TYPE_CHECKING:
    from learnchain.consensus.state import ChainState

MAX_UPGRADE_NAME_LENGTH = 64
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")

UpgradeHandler = Callable[["ChainState"], "ChainState"]
"""A pure function from the state before the plan's height to the state its block starts from
(for example new parameters, or fields a new build keeps)."""

_HANDLERS: dict[str, UpgradeHandler] = {}


@dataclass(frozen=True, slots=True)
class UpgradePlan:
    """An upgrade: its name, and the height at which the chain halts for it."""

    name: str
    height: Height

    def encode(self) -> bytes:
        """Canonical bytes."""
        return encode_str(self.name) + encode_uint(self.height)


class UpgradeNeeded(RuntimeError):
    """The chain reached an upgrade this build does not carry."""

    def __init__(self, plan: UpgradePlan) -> None:
        super().__init__(
            f"upgrade {plan.name!r} is needed at height {plan.height}: this build does not "
            "carry it; install a learnchain that does (its learnchain.upgrades entry point) "
            "and start again"
        )
        self.plan = plan


def is_valid_upgrade_name(name: str) -> bool:
    """Lower-case letters, digits, '.', '_' and '-', at most 64, starting with a letter or
    digit."""
    return len(name) <= MAX_UPGRADE_NAME_LENGTH and _NAME.fullmatch(name) is not None


def register_upgrade(name: str, handler: UpgradeHandler) -> None:
    """Let this build apply the upgrade ``name`` (ValueError for a malformed name)."""
    if not is_valid_upgrade_name(name):
        raise ValueError(f"not an upgrade name: {name!r}")
    _HANDLERS[name] = handler


def is_known_upgrade(name: str) -> bool:
    """True when this build carries the upgrade ``name``."""
    return name in _HANDLERS


def get_known_upgrades() -> list[str]:
    """The names of the upgrades this build carries."""
    return sorted(_HANDLERS)


def get_upgrade_handler(name: str) -> UpgradeHandler | None:
    """The handler of the upgrade ``name``, if this build carries it."""
    return _HANDLERS.get(name)


def is_upgrade_due(plan: UpgradePlan | None, height: Height) -> bool:
    """True when ``plan`` halts the chain at ``height``."""
    return plan is not None and plan.height == height


def compute_upgrade_signals(
    signals: Mapping[Address, UpgradePlan], height: Height
) -> dict[Address, UpgradePlan]:
    """The signals still pending at ``height``: those for a later height."""
    return {a: p for a, p in signals.items() if p.height > height}


def compute_scheduled_plan(
    signals: Mapping[Address, UpgradePlan],
    power: Callable[[Address], int],
    total_power: int,
    threshold: Threshold,
) -> UpgradePlan | None:
    """The plan signalled by validators holding more than ``threshold`` of ``total_power``
    (their power now), or None; at most one plan can have such a majority."""
    tally: dict[UpgradePlan, int] = {}
    for address, plan in signals.items():
        tally[plan] = tally.get(plan, 0) + power(address)
    for plan, signalled in sorted(tally.items(), key=lambda item: (item[0].height, item[0].name)):
        if is_quorum(signalled, total_power, threshold):
            return plan
    return None
