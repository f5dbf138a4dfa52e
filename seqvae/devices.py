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


def fast_bf16(device: torch.device) -> tuple[bool, str]:
    """Whether bfloat16 matrix products pay on ``device``, and why, in a few words.

    On a CPU they pay where there is a bf16 fast path: AMX (Intel Xeon since Sapphire Rapids;
    1.6-1.8x faster training, docs/results/performance.md) or AVX512-BF16 (e.g. AMD EPYC Zen 4).
    Elsewhere (AVX2) bf16 is emulated, and fp32 is kept. On CUDA, wherever the GPU supports
    bf16.
    """
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ok, "the GPU supports bf16" if ok else "the GPU has no bf16"
    if device.type != "cpu":
        return False, f"no bf16 fast path known for {device.type}"
    for probe, name in (("_is_amx_tile_supported", "AMX"),
                        ("_is_avx512_bf16_supported", "AVX512-BF16")):
        check = getattr(torch.cpu, probe, None)   # private torch helpers; absent in old builds
        if check is not None and check():
            return True, f"this CPU has {name}"
    return False, "this CPU has neither AMX nor AVX512-BF16"


def resolve_precision(precision: str, device: torch.device) -> tuple[str, str]:
    """``fp32`` or ``bf16`` for ``--precision`` (``auto``: bf16 where :func:`fast_bf16` says
    it pays), and the reason, for the log."""
    if precision != "auto":
        return precision, "asked for"
    fast, why = fast_bf16(device)
    return ("bf16" if fast else "fp32"), why


def compute_dtype(tensor: torch.Tensor) -> torch.dtype:
    """The dtype that products on ``tensor`` run in here: autocast's, where autocast is on
    for its device, else its own (for hand-written kernels that mirror ``F.linear``)."""
    device = tensor.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return tensor.dtype

