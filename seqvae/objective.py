"""The training objective: :func:`training_loss` is the one place every term of the loss is
computed, for the trainer and the benchmark alike.

The evidence lower bound (Kingma & Welling 2014) for one sequence x is

    ELBO(x) = E_q(z|x)[log p(x|z)] - KL(q(z|x) || N(0, I)),

estimated with one reparameterised sample of z. Training minimises

    rec(x) + beta_t * KL(x)

where beta_t follows a schedule (see :mod:`seqvae.schedules`), optionally with the KL floored
per dimension (free bits) and with word dropout on the decoder inputs; both are defences
against posterior collapse. A property head adds its weighted mean squared error.

With ``--target-kl R`` the KL is kept at or above R nats per sequence by a Lagrange multiplier
(the minimum desired rate of Pelsmaeker & Aziz 2020; :func:`rate_constraint`,
:func:`update_rate_multiplier`). A new term goes into :func:`training_loss` and
:class:`LossTerms`, with its settings in :class:`seqvae.config.ObjectiveConfig`; the trainer,
the benchmark and the logs pick it up from there. The reconstruction kernel is :mod:`seqvae.cross_entropy`, the posterior's KL
:mod:`seqvae.gaussian`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .config import ObjectiveConfig
from .data import Batch
from .gaussian import gaussian_kl
from .model import VAEOutput
from .molecules.property_head import property_loss


@dataclass(frozen=True)
class LossTerms:
    """Every term of one batch's training loss. Tensors carry gradients until
    :meth:`detached`."""
    loss: Tensor                     # scalar: what the optimiser minimises
    rec: Tensor                      # (B,) reconstruction NLL per sequence, nats
    kl_per_dim: Tensor               # (B, D) analytic KL per sequence and dimension, nats
    kl_term: Tensor                  # scalar: the KL as it enters the loss (free bits applied)
    beta: float                      # the KL weight it was multiplied by
    property: Tensor | None = None   # scalar: the property head's MSE, if there is a head
    rate_multiplier: float = 0.0     # the --target-kl multiplier the loss was computed with

    def mean_kl(self) -> Tensor:
        """scalar: the batch-mean KL per sequence, nats (no free bits)."""
        return self.kl_per_dim.sum(1).mean()

    def detached(self) -> "LossTerms":
        return LossTerms(self.loss.detach(), self.rec.detach(), self.kl_per_dim.detach(),
                         self.kl_term.detach(), self.beta,
                         None if self.property is None else self.property.detach(),
                         self.rate_multiplier)


def training_loss(out: VAEOutput, batch: Batch, beta: float, objective: ObjectiveConfig,
                  property_head: nn.Module | None = None,
                  rate_multiplier: float = 0.0) -> LossTerms:
    """The training loss of one batch from the model's output on it.

    loss = mean_b rec_b + beta * free_bits_kl(KL) [+ property_weight * MSE(head(z), targets)]
                        [+ rate_multiplier * (target_kl - mean_b KL_b)]

    Args:
        out: the model's forward pass on ``batch`` (``SeqVAE.forward``).
        batch: its ``targets`` (B, P) are the standardised properties, or None.
        beta: the KL weight at this step (:func:`seqvae.schedules.kl_weight_at`).
        property_head: predicts the properties from the sampled z (as Gómez-Bombarelli et al.
            2018); used when the batch has targets.
        rate_multiplier: the Lagrange multiplier of ``objective.target_kl`` at this step
            (:func:`update_rate_multiplier`); unused when the target is 0.
    """
    kl_per_dim = gaussian_kl(out.mu, out.logvar)
    kl_term = free_bits_kl(kl_per_dim, objective.free_bits)
    loss = out.rec.mean() + beta * kl_term
    prop = None
    if batch.targets is not None and property_head is not None:
        prop = property_loss(property_head(out.z), batch.targets)
        loss = loss + objective.property_weight * prop
    if objective.target_kl > 0:
        loss = loss + rate_constraint(kl_per_dim.sum(1).mean(), objective.target_kl,
                                      rate_multiplier)
    return LossTerms(loss, out.rec, kl_per_dim, kl_term, beta, prop, rate_multiplier)


def selection_score(rec: float, kl: float, target_kl: float = 0.0) -> float:
    """How a validation ranks checkpoints: the ELBO ``-(rec + KL)``, with the KL charged at
    least ``target_kl`` (the constrained objective's value, so a model that has not yet reached
    the target rate gains nothing from its missing nats). Without a target: the ELBO.

    Ranking a ``--target-kl`` run by the plain ELBO would keep whichever early checkpoint
    carried the least information, as the ELBO favours a low rate.
    """
    return -(rec + max(kl, target_kl))


def rate_constraint(kl: Tensor, target: float, multiplier: float) -> Tensor:
    """The Lagrangian term of a minimum desired rate (Pelsmaeker & Aziz 2020).

    Training minimises the negative ELBO subject to ``KL >= target``; the Lagrangian adds
    ``multiplier * (target - KL)`` with a multiplier >= 0 that :func:`update_rate_multiplier`
    raises while the KL is below the target and lowers once it is above. Its gradient offsets
    the KL's weight: the KL enters the loss with weight ``beta - multiplier``.

    Args:
        kl: scalar, the batch-mean KL per sequence (nats).
        target: the minimum rate in nats per sequence.
        multiplier: the current multiplier (a number, not a parameter: it is updated by
            :func:`update_rate_multiplier`, not by the optimiser).
    Returns:
        scalar ``multiplier * (target - kl)``.
    """
    return multiplier * (target - kl)


def update_rate_multiplier(multiplier: float, kl: float, target: float, lr: float,
                           ceiling: float) -> float:
    """One projected gradient-ascent step on the multiplier of :func:`rate_constraint`:
    ``clip(multiplier + lr * (target - kl), 0, ceiling)``.

    The ceiling is the KL weight beta: at ``multiplier == beta`` the KL costs nothing, so the
    reconstruction term alone pulls the rate up. Letting the multiplier rise past beta rewards
    the KL outright, and the rate then overshoots the target several times over before the
    multiplier can come back down (seen on MOSES: a KL of 523 nats at step 40 for a target of
    40). With ``target`` 0 the multiplier stays 0, since a KL is never negative: the plain
    objective.
    """
    return min(max(0.0, multiplier + lr * (target - kl)), ceiling)


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
        rec: (B,) reconstruction NLL (``SeqVAE.sequence_nll``, or :func:`reconstruction_nll`).
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
