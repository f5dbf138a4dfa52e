"""Fitting and scoring a property head on the posterior means of a trained model: after
training (``seqvae fit-properties``) and at each validation of joint training."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ..api import TrainedVAE
from ..checkpoint import load_checkpoint, save_checkpoint
from ..data import TokenizedSplit
from ..devices import resolve_device
from ..errors import SeqVAEError
from ..logs import to_stderr
from .chemistry import compute_properties
from .property_head import PropertyHead, property_loss, regression_metrics

LOG_TIMES = 5  # the head's fit logs its training error this many times
ENCODE_BATCH = 1024  # sequences per encoder call when fitting (no gradients: large is fine)


def evaluate_head(vae: TrainedVAE, split: TokenizedSplit, targets: Tensor, batch_size: int = 512,
                  max_examples: int | None = None) -> dict[str, dict[str, float]]:
    """MAE and R^2 of the model's property head, predicting from posterior means, on a
    tokenised split whose rows align with ``targets`` (N, P) in the properties' units."""
    n = len(split) if max_examples is None else min(len(split), max_examples)
    means = vae.encode_means(split.subset(n), batch_size)
    with torch.no_grad():
        predicted = vae.model.property_head.predict(means)
    return regression_metrics(predicted.cpu().numpy(), targets[:n].numpy())


def fit_head_on_means(vae: TrainedVAE, train_split: TokenizedSplit, train_targets: np.ndarray,
                      valid_split: TokenizedSplit, valid_targets: np.ndarray, hidden: int = 256,
                      epochs: int = 30, batch_size: int = 256, lr: float = 1e-3,
                      max_train: int | None = None, seed: int = 0,
                      log: Callable[[str], None] = to_stderr,
                      ) -> tuple[PropertyHead, dict[str, dict[str, float]]]:
    """Fit a :class:`PropertyHead` afterwards, on the posterior means of a trained (frozen)
    encoder; returns the head and its validation MAE / R^2 per property.

    Args:
        train_targets, valid_targets: (N, P) properties aligned with the splits' rows.
        max_train: use at most this many training molecules (the first ones).
    """
    torch.manual_seed(seed)
    n = len(train_split) if max_train is None else min(len(train_split), max_train)
    z, y = vae.encode_means(train_split.subset(n), ENCODE_BATCH), torch.as_tensor(train_targets[:n])
    keep = torch.isfinite(y).all(dim=1)
    z, y = z[keep], y[keep]
    head = PropertyHead(z.size(1), hidden).to(z.device)
    head.set_standardization(y.numpy())
    y = head.standardize(y.to(z.device))
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        order = torch.randperm(len(z), generator=generator)
        total = 0.0
        for start in range(0, len(z), batch_size):
            index = order[start:start + batch_size]
            loss = property_loss(head(z[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(index)
        if (epoch + 1) % max(1, epochs // LOG_TIMES) == 0 or epoch + 1 == epochs:
            log(f"seqvae: property head epoch {epoch + 1}/{epochs}: train MSE "
                f"{total / max(len(z), 1):.4f} (standardised)")
    head.eval()
    with torch.no_grad():
        predicted = head.predict(vae.encode_means(valid_split, ENCODE_BATCH)).cpu().numpy()
    return head, regression_metrics(predicted, valid_targets[:len(valid_split)])


def add_property_head(checkpoint: str | Path, out: str | Path, hidden: int = 256,
                      epochs: int = 30, max_train: int | None = 100_000, seed: int = 0,
                      device: str = "auto", log: Callable[[str], None] = to_stderr,
                      ) -> dict[str, dict[str, float]]:
    """Fit a property head on the posterior means of a trained SMILES model and write a new
    checkpoint ``out`` holding the model with that head; returns the validation metrics."""
    loaded = load_checkpoint(checkpoint, resolve_device(device))
    vae = TrainedVAE(loaded.config, loaded.tokenizer, loaded.model)
    if vae.kind != "smiles" or vae.latent_dim == 0:
        raise SeqVAEError(f"{checkpoint}: a property head needs a SMILES model with a latent")
    data = vae.corpus(log=log)
    train, valid = data.splits["train"], data.splits["valid"]
    n_train = len(train) if max_train is None else min(max_train, len(train))
    train_targets = compute_properties(data.texts["train"][:n_train], log=log)
    valid_targets = compute_properties(data.texts["valid"], log=log)
    head, metrics = fit_head_on_means(vae, train, train_targets, valid, valid_targets,
                                      hidden=hidden, epochs=epochs, max_train=n_train, seed=seed,
                                      log=log)
    vae.model.property_head = head
    config = vae.config.override("model", property_head=hidden)
    save_checkpoint(out, config, vae.tokenizer, vae.model,
                    train_state={**loaded.blob.get("train_state", {}),
                                 "property_head": {"fitted": "afterwards", "metrics": metrics}})
    return metrics
