"""The ``--target-kl`` controller between steps: what it measures and what it remembers.

After every optimiser step the controller (:func:`seqvae.objective.next_rate_control`) sees the
batch-mean KL of the step's training batch, corrected by how far the training batches' KL has
lately stood from the KL of held-out sequences: every ``target_kl_probe_every`` steps the
encoder, with dropout off, encodes a fixed probe of validation sequences, and the gap between
a running mean of the batch KL and the probe's KL is what the batches overstate. So the rate a
user asks for is the rate of the model they get on data it has not seen, not of the batches it
was trained on (on a 5,000-line file the two differ by a quarter).

The trainer and ``seqvae bench`` both call :func:`update_rate_control`, so both take the same
steps.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import torch

from ..config import Config
from ..data import TokenizedSplit, collate
from ..gaussian import gaussian_kl
from ..model import SeqVAE
from ..objective import LossTerms, next_rate_control

PROBE_SIZE = 256      # validation sequences in the held-out probe
KL_EMA_DECAY = 0.8    # running mean of the batch KL: about the last five steps


class RateProbe(NamedTuple):
    """A fixed batch of held-out sequences on the device: (P, T) ids and (P,) lengths."""
    tokens: torch.Tensor
    lengths: torch.Tensor


def make_probe(split: TokenizedSplit, device: torch.device, seed: int) -> RateProbe | None:
    """A seeded sample of at most :data:`PROBE_SIZE` sequences of ``split`` (None if empty)."""
    if len(split) == 0:
        return None
    rows = np.random.default_rng(seed).permutation(len(split))[:PROBE_SIZE]
    tokens, lengths = collate(split, np.sort(rows))
    return RateProbe(tokens.to(device), lengths.to(device))


@torch.no_grad()
def held_out_kl(model: SeqVAE, probe: RateProbe) -> float:
    """The batch-mean KL of q(z|x) on the probe, with dropout off (nats per sequence)."""
    was_training = model.training
    model.eval()
    mu, logvar = model.forward_encoder(probe.tokens, probe.lengths)
    model.train(was_training)
    return float(gaussian_kl(mu, logvar).sum(1).mean())


def initial_rate_weight(config: Config) -> float | None:
    """The controller's weight before its first step: beta's ceiling (None: no target)."""
    oc = config.objective
    return oc.kl_weight if oc.target_kl > 0 and config.model.latent_dim else None


def update_rate_control(state, terms: LossTerms, config: Config, model: SeqVAE,
                        probe: RateProbe | None,
                        mean_over_ranks: Callable[[float], float] = float) -> None:
    """Advance the controller by the step just taken (``state.step`` is that step's index) and
    store what it needs in ``state`` (a :class:`~seqvae.training.step.TrainState`).

    Every rank computes the same numbers: the batch KL is averaged over the ranks, and the probe
    is the same batch through the same weights, averaged too.
    """
    oc = config.objective
    if initial_rate_weight(config) is None:
        return
    kl = mean_over_ranks(terms.mean_kl().item())
    ema = state.train_kl_ema
    state.train_kl_ema = kl if ema is None else KL_EMA_DECAY * ema + (1 - KL_EMA_DECAY) * kl
    if probe is not None and (state.step + 1) % oc.target_kl_probe_every == 0:
        state.rate_gap = state.train_kl_ema - mean_over_ranks(held_out_kl(model, probe))
    integral = 0.0 if state.rate_integral is None else state.rate_integral
    state.rate_integral, state.rate_weight = next_rate_control(
        integral, kl - state.rate_gap, oc.target_kl, oc.target_kl_lr, oc.target_kl_kp,
        floor=oc.target_kl_min_weight, ceiling=oc.kl_weight)
