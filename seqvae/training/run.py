"""Setting up a run: the device and the processes, the data, the model, the optimiser, and
the state to resume from; and the batches of each step, drawn from that data."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .. import distributed
from ..config import Config
from ..data import (
    Batch,
    PreparedData,
    bucketed_batches,
    collate,
    collate_randomized,
    pad_sequences,
    prepare_data,
)
from ..devices import resolve_device, resolve_precision
from ..errors import SeqVAEError
from ..model import SeqVAE
from ..molecules.chemistry import compute_properties
from ..text.spans import random_spans, word_starts
from .rate_control import RateProbe, make_probe
from .run_folder import RunFolder
from .step import AUGMENT_STRIDE, TrainState, make_optimizer, step_draws, to_device


@dataclass
class Run:
    """Everything one training run works with; built by :func:`setup_run`."""
    config: Config
    ctx: distributed.Context
    device: torch.device
    folder: RunFolder
    data: PreparedData
    model: SeqVAE
    net: nn.Module                  # the model, or its DDP wrapper (averages the gradients)
    optimizer: torch.optim.Optimizer
    state: TrainState
    targets: dict[str, torch.Tensor] | None   # property-head targets (N, P) of train, valid
    steps_per_epoch: int
    total_steps: int
    log: Callable[[str], None]
    probe: RateProbe | None = None   # held-out sequences the --target-kl controller measures
    span_starts: np.ndarray | None = None   # --span-augment: the ids that begin a word
    latest_validation: dict[str, Any] = field(default_factory=dict)

    def epoch_batches(self) -> list[np.ndarray]:
        """The current epoch's batches (rows of the train split); they depend only on the
        seed and the epoch, so a resumed run replays them."""
        tc = self.config.train
        return bucketed_batches(self.data.splits["train"].lengths, tc.batch_size, tc.seed,
                                self.state.epoch)

    def save(self, name: str) -> None:
        self.folder.save(name, self.config, self.data.tokenizer, self.model, self.optimizer,
                         self.state)


def setup_run(config: Config, out_dir: str | Path, resume: bool, device: str,
              log: Callable[[str], None]) -> Run:
    """Prepare a run (or load the one to resume) and write its config; see :class:`Run`."""
    config.validate()
    if config.model.latent_dim == 0 and config.objective.target_kl:
        # A language model has no code to hold a rate in; a target would only charge its
        # validation ELBO for nats it cannot have.
        log("seqvae: no latent (--latent-dim 0): --target-kl does not apply; training without it")
        config = config.override("objective", target_kl=0.0)
    folder = RunFolder(out_dir)
    dev = resolve_device(device)
    ctx = distributed.init(dev)
    if ctx.active and dev.type == "cuda":
        dev = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(dev)
    if not ctx.is_main:  # only rank 0 talks and writes files
        log, folder.writes = (lambda _: None), False
    resumed = folder.load_last(dev) if resume else None
    tc = config.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    torch.manual_seed(tc.seed)
    # Rank 0 fetches and tokenises first; the others then read its cache.
    data = rank0_first(ctx, lambda: prepare_data(
        config.data, config.tokenizer, tokenizer=resumed.tokenizer if resumed else None, log=log))
    log_data(data, log)
    # Record what "auto" resolved to, so the checkpoint says what it was trained on.
    config = config.override("data", kind=data.kind).override("tokenizer", kind=data.tokenizer.kind)
    config = with_precision_resolved(config, dev, log)
    if resumed:
        for section in ("data", "tokenizer", "model", "objective"):
            if getattr(config, section) != getattr(resumed.config, section):
                raise SeqVAEError(f"--resume: the {section} settings differ from those of "
                                  f"{folder.last}; a resumed run may change only training "
                                  "settings (--epochs, --max-steps, ...)")
    check_data(config, data)
    targets = None
    if config.model.property_head:
        targets = rank0_first(ctx, lambda: {
            name: torch.from_numpy(compute_properties(data.texts[name], log=log))
            for name in ("train", "valid")})
    tok = data.tokenizer
    model = resumed.model.train() if resumed else SeqVAE(config.model, tok.vocab_size,
                                                         tok.pad_id).to(dev)
    if targets is not None and not resumed:
        model.property_head.set_standardization(targets["train"].numpy())
    net = model
    if ctx.active:
        net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    optimizer = make_optimizer(model, tc.lr)
    state = TrainState()
    if resumed:
        optimizer.load_state_dict(resumed.blob["optimizer"])
        saved = dict(resumed.blob["train_state"])
        rng = saved.pop("torch_rng")
        # The capped multiplier of older checkpoints has no meaning for the controller, which
        # starts afresh from beta.
        saved.pop("rate_multiplier", None)
        state = TrainState(**saved)
        torch.set_rng_state(rng)
        log(f"seqvae: resuming {folder.last} at step {state.step} "
            f"(epoch {state.epoch + 1}, batch {state.batch_in_epoch})")
    folder.start(config, state.step)
    steps_per_epoch = len(bucketed_batches(data.splits["train"].lengths, tc.batch_size, tc.seed, 0))
    total_steps = planned_steps(tc.epochs, steps_per_epoch, tc.max_steps)
    if tc.max_steps is not None and total_steps < tc.max_steps:
        log(f"seqvae: note: {tc.epochs} epochs of {steps_per_epoch} steps end this run at step "
            f"{total_steps}, before --max-steps {tc.max_steps}; pass --epochs none (or a larger "
            "--epochs) to run all of them")
    probe = None
    if config.objective.target_kl > 0:
        oc = config.objective
        if oc.kl_schedule != "constant":
            log(f"seqvae: note: --target-kl {oc.target_kl:g} sets the KL weight itself (at most "
                f"--kl-weight {oc.kl_weight:g}); --kl-schedule {oc.kl_schedule} is not used")
        probe = make_probe(data.splits["valid"], dev, tc.seed)
        if probe is None:
            log("seqvae: note: no validation sequences: --target-kl holds the training "
                "batches' KL, uncorrected")
    n_params = sum(p.numel() for p in model.parameters())
    log(f"seqvae: {n_params / 1e6:.2f}M parameters on {dev}; {steps_per_epoch} steps per epoch, "
        f"{total_steps} steps in all; run folder {folder.path}"
        + (f"; {ctx.world} processes (DDP), global batch {tc.batch_size}" if ctx.active else ""))
    span_starts = word_starts(data.tokenizer) if config.data.span_augment > 0 else None
    return Run(config, ctx, dev, folder, data, model, net, optimizer, state, targets,
               steps_per_epoch, total_steps, log, probe, span_starts)


def planned_steps(epochs: int | None, steps_per_epoch: int, max_steps: int | None) -> int:
    """The steps a run will take: ``epochs`` passes, cut at ``max_steps`` (either may be None,
    not both: :meth:`Config.validate` refuses that)."""
    by_epochs = epochs * steps_per_epoch if epochs is not None else None
    if max_steps is None:
        return by_epochs
    return max_steps if by_epochs is None else min(by_epochs, max_steps)


def make_batch(run: Run, index: np.ndarray) -> Batch:
    """This rank's share of the global batch ``index`` at the run's current step, on the
    device, with the step's z noise and word-dropout draws."""
    config, ctx, step = run.config, run.ctx, run.state.step
    # The noise of z and of word dropout is drawn for the whole global batch from a generator
    # seeded by the step, and each rank takes its rows: the same draws as a single process,
    # and a resumed run replays them.
    draws = step_draws(max(len(index), ctx.world), config.data.max_length + 1,
                       config.model.latent_dim, config.train.seed, step)
    rows, index = ctx.rows(len(index)), ctx.share(index)
    if config.data.augment:
        tokens, lengths = collate_randomized(
            run.data.texts["train"], index, run.data.tokenizer, config.data.max_length,
            seed=config.train.seed * AUGMENT_STRIDE + step)
    elif run.span_starts is not None:   # --span-augment
        split = run.data.splits["train"]
        rng = np.random.default_rng(config.train.seed * AUGMENT_STRIDE + step)
        tokens, lengths = pad_sequences(random_spans([split[i] for i in index],
                                                     config.data.span_augment,
                                                     run.span_starts, rng))
    else:
        tokens, lengths = collate(run.data.splits["train"], index)
    tokens, lengths = to_device(tokens, lengths, run.device)
    targets = None
    if run.targets is not None:
        targets = run.model.property_head.standardize(
            run.targets["train"][torch.as_tensor(index)].to(run.device))
    return Batch(tokens, lengths, targets, draws["noise"][rows].to(run.device),
                 draws["uniforms"][rows, :tokens.size(1) - 1],
                 draws["encoder_uniforms"][rows, :tokens.size(1)])


def with_precision_resolved(config: Config, device: torch.device,
                            log: Callable[[str], None]) -> Config:
    """``config`` with ``--precision auto`` replaced by what it picks on ``device``, said in
    the log, so the checkpoint records the arithmetic it was trained with."""
    precision, why = resolve_precision(config.train.precision, device)
    if config.train.precision == "auto":
        log(f"seqvae: precision auto: {precision} ({why})")
    return config.override("train", precision=precision)


def check_data(config: Config, data: PreparedData) -> None:
    """Refuse data the configuration cannot train on, with the flag to change."""
    if len(data.splits["train"]) == 0:
        raise SeqVAEError(f"{config.data.source}: no training sequences left after tokenising "
                          f"(all longer than --max-length {config.data.max_length}?)")
    if config.data.augment and data.kind != "smiles":
        raise SeqVAEError("--augment rewrites SMILES at random; this corpus is text")
    if config.data.span_augment > 0 and data.kind == "smiles":
        raise SeqVAEError("--span-augment trains on spans of sentences; a span of a SMILES "
                          "string is rarely a molecule (use --augment for SMILES)")
    if config.model.property_head and (data.kind != "smiles" or config.model.latent_dim == 0):
        raise SeqVAEError("--property-head predicts molecular properties from z: it needs a "
                          "SMILES corpus and a latent (--latent-dim above 0)")


def log_data(data: PreparedData, log: Callable[[str], None]) -> None:
    """Say what the data preparation skipped or cut."""
    for what, counts in (("skipped as invalid SMILES (RDKit cannot parse them)", data.invalid),
                         ("skipped as empty or longer than --max-length", data.dropped),
                         ("truncated to --max-length", data.truncated)):
        if any(counts.values()):
            log(f"seqvae: {what}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items() if v))
    if data.invalid_examples:
        log(f"seqvae: invalid SMILES are, e.g., {', '.join(map(repr, data.invalid_examples))}")


def rank0_first(ctx: distributed.Context, make: Callable[[], Any]) -> Any:
    """Run ``make`` on rank 0, then on the others (which then find its files in the cache)."""
    if ctx.is_main:
        result = make()
        ctx.barrier()
        return result
    ctx.barrier()
    return make()
