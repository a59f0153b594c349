"""Classes a user plugs in (tasks, aggregation rules): registered by name, or named
``module:attr`` and imported on first use."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from learnchain.ml.errors import PluginImportError, TaskError

T = TypeVar("T")


def register_class(registry: dict[str, type[T]], names: set[str], cls: type[T]) -> type[T]:
    """Put ``cls`` in ``registry`` (and its name in ``names``) under its ``name``."""
    name: Any = getattr(cls, "name", "")
    if not name:
        raise TaskError(f"{cls.__qualname__} has no name")
    registry[name] = cls
    names.add(name)
    return cls


def import_class(name: str, base: type[Any], what: str) -> type[Any]:
    """The subclass of ``base`` (often abstract) that ``module:attr`` names; TaskError saying
    why not."""
    module_name, _, attr = name.partition(":")
    try:
        loaded = getattr(importlib.import_module(module_name), attr)
    except ImportError as error:
        raise PluginImportError(f"{what} {name!r}: cannot import {module_name} ({error})") from None
    except AttributeError:
        raise TaskError(f"{what} {name!r}: {module_name} has no {attr}") from None
    if not (isinstance(loaded, type) and issubclass(loaded, base)):
        raise TaskError(f"{what} {name!r} is not a subclass of {base.__module__}.{base.__name__}")
    return loaded


def add_plugin_folders(folders: Iterable[Path]) -> None:
    """Look for MODULE:CLASS plugins in ``folders`` first (before PYTHONPATH and site-packages)."""
    for folder in reversed([str(Path(f).resolve()) for f in folders]):
        if folder not in sys.path:
            sys.path.insert(0, folder)
