"""The ``--target-kl`` controller between steps: what it measures and what it remembers.

Every ``target_kl_probe_every`` steps the encoder, with dropout off, encodes a fixed probe of
at most 256 validation sequences, and the PI controller
(:func:`seqvae.objective.next_rate_control`) takes one step on that held-out KL; between
probes the weight holds. So the rate a user asks for is the rate of the model they get on
data it has not seen. The training batches' own KL would not do: on a 5,000-line file it
stands a quarter above the held-out KL, and batches drawn by length swing with their length,
while the probe is the same mixture of lengths every time. Without validation sequences the
controller falls back on the batch KL, every step.

The trainer and ``seqvae bench`` both call :func:`update_rate_control`, so both take the same
steps.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import torch

from ..config import Config
from ..data import TokenizedSplit, collate
from ..gaussian import reparameterize
from ..model import SeqVAE
from ..objective import LossTerms, next_rate_control

PROBE_SIZE = 256      # validation sequences in the held-out probe


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
    """The batch-mean KL of q(z|x) on the probe, with dropout off (nats per sequence); under
    a learned prior its one-sample estimate, at the same seeded draws each time."""
    was_training = model.training
    model.eval()
    mu, logvar = model.forward_encoder(probe.tokens, probe.lengths)
    model.train(was_training)
    z = mu   # unused by the exact KL to N(0, I); a draw only where the KL is an estimate
    if model.has_learned_prior:
        z = reparameterize(mu, logvar, generator=torch.Generator(mu.device).manual_seed(0))
    return float(model.kl(mu, logvar, z).mean())


def rate_control_on(config: Config) -> bool:
    """Whether the controller runs: a rate target, and a latent to hold it in."""
    return config.objective.target_kl > 0 and config.model.latent_dim > 0


def update_rate_control(state, terms: LossTerms, config: Config, model: SeqVAE,
                        probe: RateProbe | None,
                        mean_over_ranks: Callable[[float], float] = float) -> None:
    """Advance the controller by the step just taken (``state.step`` is that step's index) and
    store what it needs in ``state`` (a :class:`~seqvae.training.step.TrainState`).

    With a probe the controller steps on the probe's KL every ``target_kl_probe_every`` steps,
    its integral gain scaled by that interval so that ``target_kl_lr`` stays a per-step rate.
    Every rank computes the same numbers: the probe is the same batch through the same
    weights, and the batch KL of the fallback is averaged over the ranks.
    """
    oc = config.objective
    if not rate_control_on(config):
        return
    if probe is None:
        kl, interval = mean_over_ranks(terms.mean_kl().item()), 1
    elif (state.step + 1) % oc.target_kl_probe_every == 0:
        kl, interval = mean_over_ranks(held_out_kl(model, probe)), oc.target_kl_probe_every
        state.probe_kl = kl
    else:
        return
    integral = 0.0 if state.rate_integral is None else state.rate_integral
    state.rate_integral, state.rate_weight = next_rate_control(
        integral, kl, oc.target_kl, oc.target_kl_lr * interval, oc.target_kl_kp,
        floor=oc.target_kl_min_weight, ceiling=oc.kl_weight)
