"""The training objective: :func:`training_loss` is the one place every term of the loss is
computed, for the trainer and the benchmark alike.

The evidence lower bound (Kingma & Welling 2014) for one sequence x is

    ELBO(x) = E_q(z|x)[log p(x|z)] - KL(q(z|x) || N(0, I)),

estimated with one reparameterised sample of z. Training minimises

    rec(x) + beta_t * KL(x)

where beta_t follows a schedule (see :mod:`seqvae.schedules`), optionally with the KL floored
per dimension (free bits) and with word dropout on the decoder inputs; both are defences
against posterior collapse. A property head adds its weighted mean squared error.

With ``--target-kl R`` the KL weight is no longer the schedule's beta_t but min(beta_t, w),
where w is set step by step by a PI controller that holds the KL at R nats per sequence
(ControlVAE, Shao et al. 2020; :func:`next_rate_control`). Unlike a Lagrange multiplier capped
at beta, w may go below 0, so the loss can reward information in the code where the decoder
does not want it yet (small data, early training). A new term goes into :func:`training_loss` and
:class:`LossTerms`, with its settings in :class:`seqvae.config.ObjectiveConfig`; the trainer,
the benchmark and the logs pick it up from there. The reconstruction kernel is
:mod:`seqvae.cross_entropy`, the posterior's KL
:mod:`seqvae.gaussian`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .config import ObjectiveConfig
from .data import Batch
from .gaussian import gaussian_kl, standard_normal_log_prob
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
    beta: float                      # the schedule's KL weight at this step
    property: Tensor | None = None   # scalar: the property head's MSE, if there is a head
    kl_weight: float | None = None   # the weight the KL entered with (None: beta)
    # (B,) log N(z; 0, I) - log p(z) under a learned prior: what the KL to the learned prior
    # adds to the analytic KL to N(0, I) (None: N(0, I))
    prior_gap: Tensor | None = None
    bag_of_words: Tensor | None = None   # scalar: the bag-of-words loss, batch mean, if on

    def mean_kl(self) -> Tensor:
        """scalar: the batch-mean KL per sequence, nats (no free bits); with a learned prior
        its one-sample estimate."""
        kl = self.kl_per_dim.sum(1).mean()
        return kl if self.prior_gap is None else kl + self.prior_gap.mean()

    def detached(self) -> "LossTerms":
        def detach(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.detach()
        return LossTerms(self.loss.detach(), self.rec.detach(), self.kl_per_dim.detach(),
                         self.kl_term.detach(), self.beta, detach(self.property),
                         self.kl_weight, detach(self.prior_gap), detach(self.bag_of_words))


def training_loss(out: VAEOutput, batch: Batch, beta: float, objective: ObjectiveConfig,
                  property_head: nn.Module | None = None,
                  rate_weight: float | None = None) -> LossTerms:
    """The training loss of one batch from the model's output on it.

    loss = mean_b rec_b + w * free_bits_kl(KL) [+ property_weight * MSE(head(z), targets)]
           [+ bag_of_words_weight * mean_b bag_of_words_nll_b]

    with w = beta, or with ``--target-kl`` w = min(beta, rate_weight). A negative w multiplies
    the plain batch-mean KL instead: free bits stop the KL from being pushed down, and must not
    stop it from being pushed up.

    With a learned prior p(z) (``out.prior_log_prob`` set), the KL is the analytic KL to
    N(0, I) plus mean_b [log N(z_b; 0, I) - log p(z_b)] (free bits apply to the first part
    only), and the loss gains - (1 - w) * mean_b log p(z_b.detach()). The encoder thus sees the
    KL at weight w, while the prior's parameters always receive the gradient of
    - log p(z) at weight 1: maximum likelihood on the codes, as in the ELBO (w = 1), whatever
    the KL weight. A negative w, which rewards information in the code, would otherwise train
    the prior to push its density away from the codes.

    Args:
        out: the model's forward pass on ``batch`` (``SeqVAE.forward``).
        batch: its ``targets`` (B, P) are the standardised properties, or None.
        beta: the KL weight at this step (:func:`seqvae.schedules.kl_weight_at`).
        property_head: predicts the properties from the sampled z (as Gómez-Bombarelli et al.
            2018); used when the batch has targets.
        rate_weight: the ``--target-kl`` controller's weight at this step
            (:func:`next_rate_control`); unused when the target is 0 or it is None.
    """
    kl_per_dim = gaussian_kl(out.mu, out.logvar)
    kl_term = free_bits_kl(kl_per_dim, objective.free_bits)
    weight = beta
    if objective.target_kl > 0 and rate_weight is not None:
        weight = min(beta, rate_weight)
    kl = kl_term if weight >= 0 else kl_per_dim.sum(1).mean()
    gap = None
    if out.prior_log_prob is not None:
        gap = standard_normal_log_prob(out.z) - out.prior_log_prob
        kl = kl + gap.mean()
    loss = out.rec.mean() + weight * kl
    if gap is not None:
        loss = loss - (1.0 - weight) * out.prior_fit_log_prob.mean()
    bag = None
    if out.bag_of_words_nll is not None:
        bag = out.bag_of_words_nll.mean()
        loss = loss + objective.bag_of_words_weight * bag
    prop = None
    if batch.targets is not None and property_head is not None:
        prop = property_loss(property_head(out.z), batch.targets)
        loss = loss + objective.property_weight * prop
    if gap is not None:
        kl_term = kl_term + gap.mean()
    return LossTerms(loss, out.rec, kl_per_dim, kl_term, beta, prop, weight, gap, bag)


def selection_score(rec: float, kl: float, target_kl: float = 0.0) -> float:
    """How a validation ranks checkpoints: the ELBO ``-(rec + KL)``, with the KL charged at
    least ``target_kl`` (the constrained objective's value, so a model that has not yet reached
    the target rate gains nothing from its missing nats). Without a target: the ELBO.

    Ranking a ``--target-kl`` run by the plain ELBO would keep whichever early checkpoint
    carried the least information, as the ELBO favours a low rate.
    """
    return -(rec + max(kl, target_kl))


def next_rate_control(integral: float, kl: float, target: float, ki: float, kp: float,
                      floor: float, ceiling: float) -> tuple[float, float]:
    """One step of the PI controller that holds the KL at ``target`` (ControlVAE, Shao et al.
    2020), acting on the KL weight rather than on a multiplier added to it.

    With the relative error e = (target - kl) / target (positive while the KL is short):

        integral <- clip(integral - ki * e, floor, ceiling)
        weight    = clip(integral - kp * e, floor, ceiling)

    The integral settles on the weight at which the model's KL is the target; the proportional
    part answers at once, which damps the overshoot a pure integrator (a Lagrange multiplier)
    shows. Clipping the integral is the anti-windup. ``floor`` may be negative: there the loss
    rewards KL outright, which a capped multiplier could never do. The error is relative so that
    the gains mean the same for a target of 5 nats and of 80.

    Returns:
        (integral, weight) for the next step.
    """
    error = (target - kl) / target
    integral = min(max(integral - ki * error, floor), ceiling)
    weight = min(max(integral - kp * error, floor), ceiling)
    return integral, weight


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
