"""The diagonal Gaussian posterior q(z|x) = N(mu, diag(exp(logvar))): its one
reparameterisation and its KL to the standard normal prior, as pure tensor functions."""
from __future__ import annotations

import torch
from torch import Tensor


def reparameterize(mu: Tensor, logvar: Tensor, eps: Tensor | None = None,
                   generator: torch.Generator | None = None) -> Tensor:
    """z = mu + sigma * eps with eps ~ N(0, I) (Kingma & Welling 2014).

    Args:
        mu, logvar: (..., D), broadcastable against ``eps``.
        eps: standard normal noise to use (e.g. drawn per step for reproducibility, or
            (B, s, D) for s samples per row); None draws it like ``mu`` (with ``generator``).
    Returns:
        z, the broadcast shape of mu and eps.
    """
    if eps is None:
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + eps.to(mu) * (0.5 * logvar).exp()


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z | 0, I) of each row: (..., D) -> (...), in fp32."""
    return torch.distributions.Normal(0.0, 1.0).log_prob(z.float()).sum(-1)


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """Analytic KL(N(mu, diag(exp(logvar))) || N(0, I)) per latent dimension.

    KL_d = 0.5 * (mu_d^2 + exp(logvar_d) - 1 - logvar_d).

    Args:
        mu, logvar: (B, D).
    Returns:
        (B, D) nats; sum over the last axis for the KL of each sequence.
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)
