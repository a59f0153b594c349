"""An example task that fine-tunes a pretrained network with LoRA adapters (the ``peft``
library): the network is a frozen base, only the adapters and a new classification head train,
travel, are aggregated and voted on.

    learnchain testnet --task lora_mlp:LoRAMLP --task-path examples/adapters \\
        --pretrained base.safetensors --task-param width=512 --task-param depth=3

``--pretrained`` is a safetensors file of the backbone (``build_backbone``'s tensors by name;
``python examples/adapters/lora_mlp.py base.safetensors [WIDTH DEPTH SEED]`` writes a random
one to try it). The
genesis pins the base by its hash: every validator needs the same file (config.toml's
``pretrained``), and a node whose base differs refuses to start. Without a file the backbone is
the seeded random one, the same on every node.

Parameters (``--task-param``): ``width`` and ``depth`` of the backbone's hidden layers, the
adapters' ``rank`` and ``alpha``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from torch import nn

from learnchain.ml.tasks import Task


def build_backbone(features: int, width: int, depth: int, classes: int) -> nn.Sequential:
    """The pretrained network's architecture: ``depth`` hidden layers of ``width`` units."""
    layers: list[nn.Module] = [nn.Linear(features, width), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), nn.ReLU()]
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)


class LoRAMLP(Task):
    """A frozen pretrained perceptron with LoRA adapters on its hidden layers and a new head."""

    name = "lora-mlp"

    def build_model(self) -> nn.Module:
        from peft import LoraConfig, get_peft_model  # imported by the nodes that use it

        params = self.config.params
        width, depth = int(params.get("width", 256)), int(params.get("depth", 2))
        backbone = build_backbone(self.features, width, depth, self.classes)
        self.load_pretrained(backbone)  # from config.toml's pretrained file, when given
        linear = [name for name, m in backbone.named_modules() if isinstance(m, nn.Linear)]
        rank = int(params.get("rank", 8))
        config = LoraConfig(
            r=rank,
            lora_alpha=int(params.get("alpha", 2 * rank)),
            target_modules=linear[:-1],  # the hidden layers
            modules_to_save=linear[-1:],  # the head trains whole
        )
        return get_peft_model(backbone, config)  # freezes everything else


def write_backbone(path: Path, width: int, depth: int, seed: int) -> None:
    """A random backbone for the digits as a safetensors file (a stand-in for a pretrained
    one)."""
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    save_file(build_backbone(64, width, depth, 10).state_dict(), str(path))


if __name__ == "__main__":
    width, depth, seed = (int(v) for v in (sys.argv[2:5] if len(sys.argv) > 4 else (256, 2, 1)))
    write_backbone(Path(sys.argv[1]), width, depth, seed)
