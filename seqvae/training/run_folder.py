"""The run folder, and the only code that writes into it.

    config.json       the full configuration
    metrics.csv       training terms every ``log_every`` steps, and every validation
    training.png      the curves of metrics.csv
    model.pt          the best checkpoint by validation ELBO (what ``seqvae sample`` etc. load)
    last.pt           the latest state, for ``--resume``
    summary.json      the final validation summary

Under DDP only rank 0 writes: the other ranks get a folder with ``writes=False``, whose
methods do nothing.
"""
from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import LoadedModel, load_checkpoint, save_checkpoint
from ..config import Config
from ..errors import SeqVAEError
from ..files import atomic_write
from ..model import SeqVAE
from ..plots import plot_training_curves
from ..tokenizers import Tokenizer
from .step import TrainState

# kl_weight: the schedule's beta; rate_weight: the weight the KL entered the loss with under
# --target-kl (the controller's, at most beta); kl_probe: the held-out KL the controller last
# measured.
METRIC_FIELDS = ["step", "epoch", "split", "loss", "rec", "kl", "kl_weight", "rate_weight",
                 "kl_probe", "lr", "tokens_per_s", "elbo", "nll_per_token", "seconds"]


class RunFolder:
    """Owns ``model.pt``, ``last.pt``, ``config.json``, ``metrics.csv``, ``training.png`` and
    ``summary.json`` of one run."""

    def __init__(self, path: str | Path, writes: bool = True):
        self.path, self.writes = Path(path), writes
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SeqVAEError(f"cannot create the run folder {self.path}: {exc.strerror}; "
                              "choose another --out") from None
        self.last, self.best = self.path / "last.pt", self.path / "model.pt"
        self.metrics = self.path / "metrics.csv"

    def load_last(self, device: torch.device) -> LoadedModel:
        """The state to ``--resume`` from."""
        if not self.last.exists():
            raise SeqVAEError(f"--resume: {self.last} does not exist; start the run "
                              "without --resume, or point --out at the folder of the run")
        return load_checkpoint(self.last, device)

    def start(self, config: Config, step: int) -> None:
        """Write config.json and open metrics.csv, forgetting rows logged after ``step``: a
        killed run logged them, then lost those steps. Appending keeps a resumed run's
        history."""
        if not self.writes:
            return
        (self.path / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
        rows = list(csv.DictReader(open(self.metrics, newline=""))) if self.metrics.exists() else None
        if rows is None:
            with open(self.metrics, "w", newline="") as fh:
                csv.DictWriter(fh, METRIC_FIELDS).writeheader()
            return
        kept = [r for r in rows if int(r["step"]) <= step]
        header = list(rows[0]) if rows else METRIC_FIELDS
        if len(kept) < len(rows) or header != METRIC_FIELDS:   # an older run: its columns
            with atomic_write(self.metrics, "w") as fh:
                writer = csv.DictWriter(fh, METRIC_FIELDS, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(kept)

    def log_metrics(self, **row: Any) -> None:
        """Append one row to metrics.csv (floats to 6 significant digits)."""
        if not self.writes:
            return
        with open(self.metrics, "a", newline="") as fh:
            csv.DictWriter(fh, METRIC_FIELDS).writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})

    def save(self, name: str, config: Config, tokenizer: Tokenizer, model: SeqVAE,
             optimizer: torch.optim.Optimizer, state: TrainState) -> None:
        """Write checkpoint ``name`` (``last.pt`` or ``model.pt``) with the state to resume."""
        if self.writes:
            save_checkpoint(self.path / name, config, tokenizer, model, optimizer,
                            train_state={**asdict(state), "torch_rng": torch.get_rng_state()})

    def best_step(self) -> int | None:
        """The step at which model.pt was written."""
        return load_checkpoint(self.best).blob["train_state"].get("step")

    def finish(self, summary: dict[str, Any]) -> None:
        """Draw training.png and write summary.json."""
        plot_training_curves(self.metrics, self.path / "training.png")
        (self.path / "summary.json").write_text(json.dumps(summary, indent=2))
