"""KL-weight and learning-rate schedules, as pure functions of the optimiser step.

Because each is a function of the step alone, a resumed run recomputes exactly the value the
interrupted run would have used; nothing about a schedule needs saving.
"""
from __future__ import annotations

import math

from .config import ObjectiveConfig

KL_SCHEDULES = ("constant", "linear", "logistic", "cyclical")
LR_SCHEDULES = ("constant", "cosine", "linear")


def kl_weight(step: int, kind: str, target: float, warmup_steps: int, start_step: int = 0,
              cycles: int = 4, cycle_ratio: float = 0.5) -> float:
    """The KL weight beta at an optimiser step (0-based).

    - ``constant``: ``target`` throughout.
    - ``linear``: 0 until ``start_step``, then rising linearly to ``target`` over
      ``warmup_steps`` steps, then flat.
    - ``logistic`` (Bowman et al. 2016): ``target / (1 + exp(-k (s - s0)))`` with the midpoint
      s0 = ``start_step + warmup_steps / 2`` and slope k = 10 / ``warmup_steps``, so beta is
      0.7% of the target at ``start_step`` and 99.3% at ``start_step + warmup_steps``.
    - ``cyclical`` (Fu et al. 2019): ``cycles`` cycles over ``warmup_steps`` steps; in each, beta
      rises linearly from 0 to ``target`` over the first ``cycle_ratio`` of the cycle and stays
      there for the rest. After the last cycle it stays at ``target``.
    """
    if kind == "constant":
        return float(target)
    if kind not in KL_SCHEDULES:
        raise ValueError(f"unknown KL schedule {kind!r}; choose one of {', '.join(KL_SCHEDULES)}")
    warmup_steps = max(int(warmup_steps), 1)
    if kind == "cyclical":
        period = warmup_steps / max(cycles, 1)
        if step >= warmup_steps:
            return float(target)
        phase = (step % period) / period
        return float(target) * min(1.0, phase / cycle_ratio)
    s = step - start_step
    if s < 0:
        return 0.0
    if kind == "linear":
        return float(target) * min(1.0, s / warmup_steps)
    # logistic; written to avoid overflow far from the midpoint
    x = 10.0 / warmup_steps * (s - warmup_steps / 2)
    return float(target) / (1.0 + math.exp(-x)) if x > -700 else 0.0


def kl_weight_at(step: int, objective: ObjectiveConfig, total_steps: int) -> float:
    """The KL weight of the training loss at optimiser step ``step`` (0-based): the one place
    the trainer, the benchmark and anything else that computes the loss take it from.

    The first ``ae_pretrain_steps`` steps train a plain autoencoder (weight 0; Li et al. 2019),
    after which the schedule of :func:`kl_weight` starts from its own step 0, with its warm-up
    span ``kl_warmup_steps`` (None: the whole run, ``total_steps``), start step and cycles.

    With a rate target (``target_kl`` > 0) the schedule is not used: the weight is
    ``kl_weight`` throughout, the ceiling under which the ``--target-kl`` controller sets its
    own (:func:`seqvae.objective.next_rate_control`). The controller anneals, as in ControlVAE
    (Shao et al. 2020); a warm-up cap on top of it would let the KL overshoot the target until
    the warm-up ends.
    """
    pretrain = objective.ae_pretrain_steps
    if step < pretrain:
        return 0.0
    if objective.target_kl > 0:
        return float(objective.kl_weight)
    span = objective.kl_warmup_steps if objective.kl_warmup_steps is not None else total_steps
    return kl_weight(step - pretrain, objective.kl_schedule, objective.kl_weight, span,
                     objective.kl_start_step, objective.kl_cycles, objective.kl_cycle_ratio)


def learning_rate(step: int, peak: float, kind: str, warmup_steps: int, total_steps: int,
                  min_ratio: float = 0.1) -> float:
    """The learning rate at an optimiser step (0-based).

    A linear warm-up over ``warmup_steps`` (from peak/warmup_steps up to ``peak``), then
    ``constant``, ``cosine`` decay (Loshchilov & Hutter 2017, without restarts) or ``linear``
    decay, reaching ``peak * min_ratio`` at ``total_steps``.
    """
    if kind not in LR_SCHEDULES:
        raise ValueError(f"unknown lr schedule {kind!r}; choose one of {', '.join(LR_SCHEDULES)}")
    if warmup_steps > 0 and step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    if kind == "constant":
        return peak
    span = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0) / span, 1.0)
    floor = peak * min_ratio
    if kind == "cosine":
        return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return peak - (peak - floor) * progress
