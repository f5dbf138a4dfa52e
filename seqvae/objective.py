"""The training objective, as pure functions of tensors.

The evidence lower bound (Kingma & Welling 2014) for one sequence x is

    ELBO(x) = E_q(z|x)[log p(x|z)] - KL(q(z|x) || N(0, I)),

estimated with one reparameterised sample of z. Training minimises

    rec(x) + beta_t * KL(x)

where beta_t follows a schedule (see :mod:`seqvae.schedules`), optionally with the KL floored
per dimension (free bits) and with word dropout on the decoder inputs; both are defences
against posterior collapse.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def reconstruction_nll(logits: Tensor, targets: Tensor, pad_id: int) -> Tensor:
    """Negative log-likelihood of each sequence, summed over its tokens, padding masked.

    Args:
        logits: (B, T, V) unnormalised next-token scores.
        targets: (B, T) token ids; positions equal to ``pad_id`` do not count.
    Returns:
        (B,) nats per sequence.
    """
    token_nll = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1),
        ignore_index=pad_id, reduction="none")
    return token_nll.view(targets.shape).sum(dim=1)


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """Analytic KL(N(mu, diag(exp(logvar))) || N(0, I)) per latent dimension.

    KL_d = 0.5 * (mu_d^2 + exp(logvar_d) - 1 - logvar_d).

    Args:
        mu, logvar: (B, D).
    Returns:
        (B, D) nats; sum over the last axis for the KL of each sequence.
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def free_bits_kl(kl_per_dim: Tensor, floor: float) -> Tensor:
    """The KL term with a per-dimension floor ("free bits", Kingma et al. 2016).

    Each dimension's KL is averaged over the batch and then floored at ``floor`` nats, so the
    optimiser gains nothing by pushing a dimension's KL below the floor; the encoder is thus
    free to use that much information per dimension.

    Args:
        kl_per_dim: (B, D) from :func:`gaussian_kl`.
    Returns:
        scalar: sum_d max(floor, mean_b KL_bd), which equals the batch-mean KL when floor is 0.
    """
    per_dim = kl_per_dim.mean(dim=0)
    if floor > 0:
        per_dim = per_dim.clamp(min=floor)
    return per_dim.sum()


def vae_loss(rec: Tensor, kl_per_dim: Tensor, beta: float, free_bits: float = 0.0) -> Tensor:
    """The minimised objective per sequence, averaged over the batch.

    Args:
        rec: (B,) reconstruction NLL from :func:`reconstruction_nll`.
        kl_per_dim: (B, D) from :func:`gaussian_kl`.
        beta: the KL weight at this step.
        free_bits: per-dimension KL floor in nats (0: off).
    Returns:
        scalar: mean_b rec_b + beta * free_bits_kl(kl_per_dim, free_bits).
    """
    return rec.mean() + beta * free_bits_kl(kl_per_dim, free_bits)


def word_dropout(inputs: Tensor, rate: float, unk_id: int, keep: Tensor | None = None,
                 generator: torch.Generator | None = None,
                 uniforms: Tensor | None = None) -> Tensor:
    """Replace a random share of the decoder's input tokens with <unk> (Bowman et al. 2016).

    Weakening the decoder's view of the prefix forces it to rely on z.

    Args:
        inputs: (B, T) decoder input ids.
        rate: probability of replacing each token.
        keep: (B, T) bool mask of positions never replaced (<bos>, padding).
        uniforms: (B, T) U(0, 1) draws to use (a token is replaced where draw < rate);
            None draws them (with ``generator``).
    Returns:
        (B, T) a new tensor; ``inputs`` itself is untouched.
    """
    if rate <= 0:
        return inputs
    if uniforms is None:
        uniforms = torch.rand(inputs.shape, device=inputs.device, generator=generator)
    drop = uniforms.to(inputs.device) < rate
    if keep is not None:
        drop &= ~keep
    return inputs.masked_fill(drop, unk_id)
