"""Errors that ml/ reports to the operator: one clear line each, never a traceback."""


class MLError(ValueError):
    """A learning input that cannot be used; the message says why."""


class DataError(MLError):
    """The node's private data cannot be loaded or does not fit the task."""


class WeightsError(MLError):
    """Weights bytes that are malformed, oversized or do not fit the task's model."""


class TaskError(MLError):
    """A task name or parameter that the genesis gets wrong."""


class PluginImportError(TaskError):
    """A plugin (a task or an aggregation rule named MODULE:CLASS) whose module cannot be
    imported on this machine: it is not installed, or its folder is not on the import path."""


class PrivacyBudgetExceeded(MLError):
    """Training would spend more differential-privacy budget than the node allows."""


class PretrainedError(TaskError):
    """A node's pretrained weights file (config.toml's ``pretrained``) that is missing,
    unreadable or does not fit the task's model."""
