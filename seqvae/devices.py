"""Which torch device a command runs on: the one place that turns ``--device`` into a device."""
from __future__ import annotations

import torch

from .errors import SeqVAEError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when it is available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SeqVAEError("--device cuda was asked for, but torch sees no CUDA device; "
                          "use --device cpu or install a CUDA build of torch")
    return torch.device(name)


def rng_devices(device: torch.device) -> list[torch.device]:
    """The devices whose RNG ``torch.random.fork_rng`` must also save for work on ``device``."""
    return [device] if device.type == "cuda" else []
