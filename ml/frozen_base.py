"""The trainable part of a model and its frozen base.

A task whose model freezes some parameters (``requires_grad = False``: a pretrained network with
adapters on it) shares only the tensors that train: they travel, are hashed, aggregated, stored
and voted on. The rest, the frozen base, never changes; the genesis pins it by its canonical
hash (``task.base_hash``), so a node whose base differs refuses to start instead of judging
every model on another network. A model that freezes nothing shares its whole ``state_dict``
(buffers included), as before.

A base usually comes from a pretrained weights file on each node's disk (nodes may have no
internet): ``load_pretrained`` reads it tensor by tensor with safetensors' ``safe_open``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from learnchain.ml.codec import StateDict, compute_weights_hash
from learnchain.ml.errors import PretrainedError


def is_partly_frozen(model: nn.Module) -> bool:
    """True when some of the model's parameters do not train."""
    return any(not parameter.requires_grad for parameter in model.parameters())


def compute_trainable_names(model: nn.Module) -> list[str]:
    """The ``state_dict`` names that train, sorted: every tensor of a model that freezes
    nothing, else its parameters that require gradients."""
    names = model.state_dict(keep_vars=True).keys()
    if not is_partly_frozen(model):
        return sorted(names)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    return sorted(name for name in names if name in trainable)


def select_state(model: nn.Module, names: list[str]) -> StateDict:
    """The model's own tensors (no copies) of ``names``."""
    state = model.state_dict()
    return {name: state[name] for name in names}


def select_frozen_state(model: nn.Module, trainable: list[str]) -> StateDict:
    """The model's own tensors (no copies) that are not in ``trainable``: its frozen base."""
    shared = set(trainable)
    return {name: t for name, t in model.state_dict().items() if name not in shared}


def compute_base_hash(frozen: StateDict) -> bytes:
    """The canonical hash of a frozen base; empty when nothing is frozen."""
    return compute_weights_hash(frozen) if frozen else b""


def load_pretrained(module: nn.Module, path: Path) -> nn.Module:
    """``module`` holding the tensors of the safetensors file at ``path`` (every tensor of the
    module, by name, shape and dtype), read one at a time; TaskError (one line) otherwise."""
    targets = module.state_dict(keep_vars=True)
    try:
        with safe_open(str(path), framework="pt") as weights:
            names = set(weights.keys())
            if names != set(targets):
                missing = sorted(set(targets) - names)[:3]
                extra = sorted(names - set(targets))[:3]
                raise PretrainedError(
                    f"{path}: the pretrained weights do not fit the task's model "
                    f"(missing {missing}, unexpected {extra})"
                )
            with torch.no_grad():
                for name, target in targets.items():
                    tensor = weights.get_tensor(name)
                    if tensor.shape != target.shape or tensor.dtype != target.dtype:
                        raise PretrainedError(
                            f"{path}: {name} is {tensor.dtype} {tuple(tensor.shape)}, the "
                            f"model's is {target.dtype} {tuple(target.shape)}"
                        )
                    target.data.copy_(tensor)
    except FileNotFoundError:
        raise PretrainedError(f"{path}: no such pretrained weights file") from None
    except (SafetensorError, OSError) as error:
        raise PretrainedError(f"{path}: not a safetensors weights file ({error})") from None
    return module
