"""Every kind of action reaches its own handler method, so a shell cannot forget one."""

from __future__ import annotations

import typing
from typing import Any

import pytest

from learnchain.consensus.dispatch import ActionHandler, dispatch
from learnchain.consensus.events import Action

ACTION_KINDS = typing.get_args(Action)


class Recorder:
    """A handler that answers with the name of the method called."""

    def __getattr__(self, name: str) -> Any:
        return lambda action: (name, action)


def make(kind: type[Any]) -> Any:
    """An instance of ``kind`` that skips its fields (dispatch only looks at the type)."""
    return object.__new__(kind)


@pytest.mark.parametrize("kind", ACTION_KINDS, ids=lambda kind: kind.__name__)
def test_each_action_kind_has_its_own_handler_method(kind: type[Any]) -> None:
    action = make(kind)
    name, passed = dispatch(action, Recorder())
    assert passed is action
    assert name in {m for m in dir(ActionHandler) if not m.startswith("_")}


def test_no_two_action_kinds_share_a_handler_method() -> None:
    names = {dispatch(make(kind), Recorder())[0] for kind in ACTION_KINDS}
    assert len(names) == len(ACTION_KINDS)


def test_something_that_is_not_an_action_is_refused() -> None:
    with pytest.raises(AssertionError):
        dispatch(object(), Recorder())  # type: ignore[arg-type]
