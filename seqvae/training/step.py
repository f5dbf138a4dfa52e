"""One optimiser step: the batch, the forward and backward pass through the one loss
(:func:`seqvae.objective.training_loss`) at the one KL weight
(:func:`seqvae.schedules.kl_weight_at`), and the state a resumed run needs to continue.

The trainer and ``seqvae bench`` both take their steps through :func:`train_step`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..config import Config, TrainConfig
from ..data import SEED_STRIDE, Batch
from ..devices import rng_devices
from ..model import SeqVAE
from ..objective import LossTerms, training_loss, word_dropout
from ..schedules import kl_weight_at, learning_rate
from ..tokenizers import BOS_ID, EOS_ID, UNK_ID

# The augmentation seed of a step is seed * AUGMENT_STRIDE + step (a prime above any run
# length, so no two (seed, step) pairs share one).
AUGMENT_STRIDE = 100_003


@dataclass
class TrainState:
    """Everything about a run's progress that a checkpoint stores for ``--resume``."""
    step: int = 0              # optimiser steps taken
    epoch: int = 0             # current epoch
    batch_in_epoch: int = 0    # batches of the current epoch already taken
    best_val_elbo: float = -math.inf  # best validation selection score (objective.selection_score)
    bad_validations: int = 0   # validations since the last improvement
    skipped_steps: int = 0     # steps skipped for a non-finite loss or gradient
    seconds: float = 0.0       # training wall time so far
    decoder_reset: bool = False  # the reset after autoencoder pretraining has happened
    # The --target-kl controller (training/rate_control.py): its weight for the next step, its
    # integral, and the held-out KL it last measured.
    rate_weight: float | None = None
    rate_integral: float | None = None
    probe_kl: float | None = None
    valid_kl: float | None = None  # the KL at the latest validation (read by seqvae optimize)


def make_optimizer(model: nn.Module, lr: float) -> torch.optim.Adam:
    """Adam; its fused kernel (one pass over all parameters) where torch has one."""
    try:
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    except (RuntimeError, TypeError):  # older torch, or a device without the fused kernel
        return torch.optim.Adam(model.parameters(), lr=lr)


def set_learning_rate(optimizer: torch.optim.Optimizer, step: int, tc: TrainConfig,
                      total_steps: int) -> float:
    """Set (and return) the scheduled learning rate of ``step``."""
    lr = learning_rate(step, tc.lr, tc.lr_schedule, tc.lr_warmup_steps, total_steps,
                       tc.min_lr_ratio)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def reset_decoder(model: SeqVAE, optimizer: torch.optim.Optimizer, seed: int) -> None:
    """Re-initialise the decoder from a fixed seed (the same on every rank, and on a resumed
    run) and forget its Adam moments: the end of autoencoder pretraining (Li et al. 2019)."""
    with torch.random.fork_rng(devices=rng_devices(model.device)):
        torch.manual_seed(seed)
        model.reset_decoder()
    for p in model.decoder_parameters():
        optimizer.state.pop(p, None)


def pretraining_ends(step: int, config: Config, done: bool) -> bool:
    """Whether the decoder is to be reset before ``step``: the first step after
    ``ae_pretrain_steps`` steps as a plain autoencoder (``done``: the reset already happened)."""
    pretrain = config.objective.ae_pretrain_steps
    return bool(pretrain) and step >= pretrain and not done


def end_pretraining(model: SeqVAE, optimizer: torch.optim.Optimizer, config: Config) -> None:
    """Reset the decoder, seeded by the run's seed and the pretraining length."""
    reset_decoder(model, optimizer, seed=config.train.seed + config.objective.ae_pretrain_steps)


def step_draws(rows: int, width: int, latent_dim: int, seed: int, step: int
               ) -> dict[str, torch.Tensor]:
    """The random draws of one optimiser step for a whole global batch: the normal noise of z
    (rows, D), the uniforms of word dropout (rows, width) and of encoder noise (rows,
    width + 1, as the encoder also reads the last token), from a generator seeded by
    (seed, step), so that N processes and a resumed run draw what one process would. The
    encoder's draws come last, so adding them left the others as they were."""
    g = torch.Generator().manual_seed(seed * SEED_STRIDE + step)
    return {"noise": torch.randn(rows, latent_dim, generator=g),
            "uniforms": torch.rand(rows, width, generator=g),
            "encoder_uniforms": torch.rand(rows, width + 1, generator=g)}


def train_step(net: nn.Module, model: SeqVAE, batch: Batch, step: int, config: Config,
               total_steps: int, rate_weight: float | None = None) -> tuple[LossTerms, bool]:
    """Forward and backward pass of one batch at optimiser step ``step``; gradients are
    clipped and left in ``.grad`` for the optimiser.

    Args:
        net: ``model`` itself, or its DistributedDataParallel wrapper.
        total_steps: the run's length, for a KL warm-up over the whole run.
        rate_weight: the ``--target-kl`` controller's KL weight at this step
            (``TrainState.rate_weight``; None: the schedule's beta).
    Returns:
        the detached loss terms, and whether the loss and the gradients are finite.
    """
    oc = config.objective
    inputs = batch.tokens[:, :-1]
    inputs = word_dropout(inputs, oc.word_dropout, UNK_ID,
                          keep=(inputs == BOS_ID) | (inputs == model.pad_id),
                          uniforms=batch.uniforms)
    encoder_tokens = None
    if oc.encoder_noise > 0:
        tokens = batch.tokens
        encoder_tokens = word_dropout(
            tokens, oc.encoder_noise, UNK_ID,
            keep=(tokens == BOS_ID) | (tokens == EOS_ID) | (tokens == model.pad_id),
            uniforms=batch.encoder_uniforms)
    with torch.autocast(batch.tokens.device.type, dtype=torch.bfloat16,
                        enabled=config.train.precision == "bf16"):
        out = net(batch.tokens, batch.lengths, decoder_inputs=inputs, noise=batch.noise,
                  encoder_tokens=encoder_tokens)
    terms = training_loss(out, batch, kl_weight_at(step, oc, total_steps), oc,
                          model.property_head, rate_weight)
    model.zero_grad(set_to_none=True)
    terms.loss.backward()
    clip = config.train.grad_clip if config.train.grad_clip > 0 else math.inf
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    finite = bool(torch.isfinite(terms.loss)) and bool(torch.isfinite(grad_norm))
    return terms.detached(), finite


def to_device(tokens: torch.Tensor, lengths: torch.Tensor, device: torch.device
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Move a collated batch to ``device``; on CUDA through page-locked host memory, so the
    copy overlaps compute."""
    if device.type == "cuda":
        tokens = tokens.pin_memory()
    return tokens.to(device, non_blocking=True), lengths.to(device)
