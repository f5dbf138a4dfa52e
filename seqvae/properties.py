"""Property heads: an MLP on z that predicts RDKit properties of the molecule
(Gómez-Bombarelli et al. 2018), trained jointly with the VAE or fitted afterwards on the
posterior means of a trained one.

Targets are logP, QED, SA and penalised logP (:data:`seqvae.chemistry.TARGET_PROPERTIES`),
computed once per corpus in parallel and cached; the head predicts them standardised (zero
mean, unit variance on the training set) and the head's buffers hold the standardisation, so
:meth:`PropertyHead.predict` returns values in the properties' own units.
"""
from __future__ import annotations

import hashlib
import os
import time
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .chemistry import TARGET_PROPERTIES, target_properties
from .corpora import cache_dir
from .parallel import parallel_map


class PropertyHead(nn.Module):
    """MLP z (B, D) -> standardised properties (B, P); one hidden layer of ``hidden`` units."""

    def __init__(self, latent_dim: int, hidden: int, n_properties: int = len(TARGET_PROPERTIES)):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent_dim, hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, n_properties))
        self.register_buffer("mean", torch.zeros(n_properties))
        self.register_buffer("std", torch.ones(n_properties))

    def forward(self, z: Tensor) -> Tensor:
        """Standardised predictions (B, P)."""
        return self.net(z)

    def predict(self, z: Tensor) -> Tensor:
        """Predictions in the properties' units (B, P)."""
        return self.net(z) * self.std + self.mean

    def standardize(self, values: Tensor) -> Tensor:
        return (values - self.mean) / self.std

    def set_standardization(self, values: np.ndarray) -> None:
        """Mean and standard deviation of the (finite) training targets (N, P)."""
        self.mean.copy_(torch.as_tensor(np.nanmean(values, axis=0), dtype=torch.float32))
        self.std.copy_(torch.as_tensor(np.nanstd(values, axis=0), dtype=torch.float32).clamp(min=1e-6))


def property_loss(predicted: Tensor, targets: Tensor) -> Tensor:
    """Mean squared error over the finite targets: (B, P), (B, P) standardised -> scalar.
    Invalid molecules carry NaN targets and count for nothing."""
    finite = torch.isfinite(targets)
    if not bool(finite.any()):
        return predicted.sum() * 0.0
    diff = torch.where(finite, predicted - torch.nan_to_num(targets), torch.zeros_like(predicted))
    return diff.pow(2).sum() / finite.sum()


def regression_metrics(predicted: np.ndarray, targets: np.ndarray,
                       names: Sequence[str] = TARGET_PROPERTIES) -> dict[str, dict[str, float]]:
    """Per property: mean absolute error and R^2 = 1 - SS_res / SS_tot, over finite targets.

    Args:
        predicted, targets: (N, P) in the properties' units.
    """
    out = {}
    for j, name in enumerate(names):
        ok = np.isfinite(targets[:, j])
        y, p = targets[ok, j], predicted[ok, j]
        if len(y) == 0:
            continue
        ss_tot = float(((y - y.mean()) ** 2).sum())
        ss_res = float(((y - p) ** 2).sum())
        out[name] = {"mae": float(np.abs(y - p).mean()),
                     "r2": 1 - ss_res / ss_tot if ss_tot > 0 else float("nan"), "n": int(len(y))}
    return out


def _row(smiles: str) -> tuple[float, ...]:
    values = target_properties(smiles)
    return values if values is not None else (float("nan"),) * len(TARGET_PROPERTIES)


def compute_properties(smiles: Sequence[str], log: Callable[[str], None] = print,
                       workers: int | None = None) -> np.ndarray:
    """(N, 4) float32 logP, QED, SA, penalised logP; NaN rows for invalid SMILES. Computed in
    parallel once per list of SMILES and cached under ``<cache>/properties/``."""
    h = hashlib.sha1("\n".join(smiles).encode()).hexdigest()[:20]
    path = cache_dir() / "properties" / f"{h}.npy"
    if path.exists():
        return np.load(path)
    started = time.perf_counter()
    workers = workers or os.cpu_count() or 1
    if len(smiles) > 10_000:
        log(f"seqvae: computing logP, QED, SA and penalised logP of {len(smiles):,} molecules "
            f"on {workers} processes (once; cached)")
    rows = parallel_map(_row, smiles, chunksize=1000, min_items=2001, workers=workers)
    values = np.asarray(rows, dtype=np.float32).reshape(len(smiles), len(TARGET_PROPERTIES))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{h}.{os.getpid()}.npy")
    np.save(tmp, values)
    os.replace(tmp, path)
    if len(smiles) > 10_000:
        log(f"seqvae: properties ready in {time.perf_counter() - started:.0f} s")
    return values


@torch.no_grad()
def evaluate_head(model, split, targets: Tensor, batch_size: int = 512,
                  max_examples: int | None = None) -> dict[str, dict[str, float]]:
    """MAE and R^2 of the model's property head, predicting from posterior means, on a
    tokenised split whose rows align with ``targets`` (N, P) in the properties' units."""
    n = len(split) if max_examples is None else min(len(split), max_examples)
    was_training = model.training
    model.eval()
    predicted = model.property_head.predict(_encode_means(model, split, n, batch_size))
    model.train(was_training)
    return regression_metrics(predicted.cpu().numpy(), targets[:n].numpy())


def format_head_metrics(metrics: dict[str, dict[str, float]]) -> str:
    return "  ".join(f"{name} MAE {m['mae']:.3f} R2 {m['r2']:.3f}" for name, m in metrics.items())


@torch.no_grad()
def _encode_means(model, split, n: int, batch_size: int = 1024) -> Tensor:
    from .data import collate
    out = []
    for start in range(0, n, batch_size):
        index = np.arange(start, min(start + batch_size, n))
        tokens, lengths = collate(split, index)
        mu, _ = model.forward_encoder(tokens.to(model.device), lengths.to(model.device))
        out.append(mu.float())
    return torch.cat(out) if out else torch.zeros(0, model.config.latent_dim)


def fit_head_on_means(model, train_split, train_targets: np.ndarray, valid_split,
                      valid_targets: np.ndarray, hidden: int = 256, epochs: int = 30,
                      batch_size: int = 256, lr: float = 1e-3, max_train: int | None = None,
                      seed: int = 0, log: Callable[[str], None] = print,
                      ) -> tuple[PropertyHead, dict[str, dict[str, float]]]:
    """Fit a :class:`PropertyHead` afterwards, on the posterior means of a trained (frozen)
    encoder; returns the head and its validation MAE / R^2 per property.

    Args:
        train_targets, valid_targets: (N, P) properties aligned with the splits' rows.
        max_train: use at most this many training molecules (the first ones).
    """
    torch.manual_seed(seed)
    n = len(train_split) if max_train is None else min(len(train_split), max_train)
    model.eval()
    z, y = _encode_means(model, train_split, n), torch.as_tensor(train_targets[:n])
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
        if (epoch + 1) % max(1, epochs // 5) == 0 or epoch + 1 == epochs:
            log(f"seqvae: property head epoch {epoch + 1}/{epochs}: train MSE "
                f"{total / max(len(z), 1):.4f} (standardised)")
    head.eval()
    valid_z = _encode_means(model, valid_split, len(valid_split))
    with torch.no_grad():
        predicted = head.predict(valid_z).cpu().numpy()
    return head, regression_metrics(predicted, valid_targets[:len(valid_split)])


def add_property_head(checkpoint, out, hidden: int = 256, epochs: int = 30,
                      max_train: int | None = 100_000, seed: int = 0, device: str = "auto",
                      log: Callable[[str], None] = print) -> dict[str, dict[str, float]]:
    """Fit a property head on the posterior means of a trained SMILES model and write a new
    checkpoint ``out`` holding the model with that head; returns the validation metrics."""
    from .checkpoint import load_checkpoint, resolve_device, save_checkpoint
    from .data import prepare_data
    from .errors import SeqVAEError
    loaded = load_checkpoint(checkpoint, resolve_device(device))
    config, model = loaded.config, loaded.model
    if config.data.kind != "smiles" or config.model.latent_dim == 0:
        raise SeqVAEError(f"{checkpoint}: a property head needs a SMILES model with a latent")
    data = prepare_data(config.data, config.tokenizer, tokenizer=loaded.tokenizer, log=log)
    n_train = len(data.splits["train"]) if max_train is None else min(max_train, len(data.splits["train"]))
    train_targets = compute_properties(data.texts["train"][:n_train], log=log)
    valid_targets = compute_properties(data.texts["valid"], log=log)
    head, metrics = fit_head_on_means(model, data.splits["train"], train_targets,
                                      data.splits["valid"], valid_targets, hidden=hidden,
                                      epochs=epochs, max_train=n_train, seed=seed, log=log)
    model.property_head = head
    config = config.override("model", property_head=hidden)
    save_checkpoint(out, config, loaded.tokenizer, model,
                    train_state={**loaded.blob.get("train_state", {}),
                                 "property_head": {"fitted": "afterwards", "metrics": metrics}})
    return metrics
