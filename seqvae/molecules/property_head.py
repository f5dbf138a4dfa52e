"""The property head: an MLP on z that predicts molecular properties (Gómez-Bombarelli et al.
2018), its loss, and how well it predicts.

The targets are logP, QED, SA and penalised logP (:data:`seqvae.molecules.chemistry.TARGET_PROPERTIES`,
computed by :func:`seqvae.molecules.chemistry.compute_properties`); the head predicts them standardised
(zero mean, unit variance on the training set) and its buffers hold the standardisation, so
:meth:`PropertyHead.predict` returns values in the properties' own units. Fitting a head to a
trained model afterwards is :mod:`seqvae.molecules.property_fitting`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .chemistry import TARGET_PROPERTIES

MIN_STD = 1e-6  # a constant property would otherwise divide by zero when standardised


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
        self.std.copy_(torch.as_tensor(np.nanstd(values, axis=0),
                                       dtype=torch.float32).clamp(min=MIN_STD))


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


def format_head_metrics(metrics: dict[str, dict[str, float]]) -> str:
    """One line: MAE and R^2 of each property."""
    return "  ".join(f"{name} MAE {m['mae']:.3f} R2 {m['r2']:.3f}" for name, m in metrics.items())
