"""One self-contained checkpoint: config, tokenizer, weights, optimiser, step and RNG state.

Written atomically (temp file, fsync, rename) so a kill during a save leaves the previous
checkpoint intact, and loaded in exactly one place, with ``weights_only=True`` so a file that
carries pickled code is refused rather than run.
"""
from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .config import Config
from .errors import SeqVAEError
from .files import atomic_write
from .model import SeqVAE
from .pretrained import resolve
from .tokenizers import Tokenizer, tokenizer_from_state

FORMAT = "seqvae-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, config: Config, tokenizer: Tokenizer, model: SeqVAE,
                    optimizer: torch.optim.Optimizer | None = None,
                    train_state: dict[str, Any] | None = None) -> None:
    """Write a checkpoint atomically. Refuses weights that are not finite."""
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    bad = [k for k, v in weights.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise SeqVAEError(f"refusing to save {path}: non-finite values in {', '.join(bad[:3])}")
    blob = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "tokenizer": tokenizer.state_dict(),
        "model": weights,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "train_state": train_state or {},
    }
    path = Path(path)
    with atomic_write(path, fsync=True) as fh:
        torch.save(blob, fh)
    # left by a process killed mid-save (kill -9 runs no cleanup)
    for stale in path.parent.glob(f".{path.name}.tmp*"):
        stale.unlink(missing_ok=True)


def export_half_precision(source: str | Path, target: str | Path) -> Path:
    """Write a checkpoint for shipping: the same format with fp16 weights and no optimiser
    state, so a model of a few million parameters stays under 10 MB. Loading casts the
    weights back to the model's fp32 parameters; the RNG state and the step stay for the
    record."""
    blob = read_checkpoint(source)
    blob["model"] = {k: v.half() if v.is_floating_point() else v for k, v in blob["model"].items()}
    blob["optimizer"] = None
    state = blob.get("train_state") or {}
    blob["train_state"] = {k: v for k, v in state.items() if k != "torch_rng"}
    with atomic_write(target, "wb") as fh:
        torch.save(blob, fh)
    return Path(target)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint's contents onto the CPU, safely, with clear errors for bad files.

    ``path`` may also be a run folder (its model.pt) or the name of a shipped model, whose
    checksum is verified first (:func:`seqvae.pretrained.resolve`).
    """
    path = resolve(path)
    if not path.is_file():
        raise SeqVAEError(f"{path}: no such checkpoint; pass the model.pt written by "
                          "`seqvae train --out DIR` (DIR/model.pt)")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != b"PK\x03\x04":  # torch.save writes a zip archive
        raise SeqVAEError(f"{path}: not a seqvae checkpoint (not a file written by torch.save); "
                          "pass the model.pt written by `seqvae train --out DIR`")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        what = f" ({found.group(1)})" if found else ""
        raise SeqVAEError(f"{path}: refused to load: it holds Python objects{what} that could run "
                          "code when loaded; seqvae loads only plain checkpoints of its own") from None
    except Exception as exc:  # torch raises many types for damaged files (KeyError, EOFError, ...)
        reason = str(exc).split(".")[0][:120]
        raise SeqVAEError(f"{path}: the checkpoint is truncated or damaged and cannot be read "
                          f"({reason}); use another one (DIR/last.pt or DIR/model.pt) or train "
                          "again") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise SeqVAEError(f"{path}: not a seqvae checkpoint")
    if blob.get("format_version") != FORMAT_VERSION:
        raise SeqVAEError(f"{path}: checkpoint format version {blob.get('format_version')}, but "
                          f"this seqvae reads version {FORMAT_VERSION}; use the seqvae release "
                          "that wrote it")
    return blob


@dataclass
class LoadedModel:
    config: Config
    tokenizer: Tokenizer
    model: SeqVAE
    blob: dict[str, Any]  # the raw checkpoint (optimizer, train_state) for resuming


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the config, tokenizer and model of a checkpoint; the model is in eval mode."""
    blob = read_checkpoint(path)
    config = Config.from_dict(blob["config"])
    tokenizer = tokenizer_from_state(blob["tokenizer"])
    model = SeqVAE(config.model, tokenizer.vocab_size, tokenizer.pad_id)
    model.load_state_dict(blob["model"])
    return LoadedModel(config, tokenizer, model.to(device).eval(), blob)

