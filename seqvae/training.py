"""The training loop: one obvious loop over length-bucketed batches.

A run folder holds:
    config.json       the full configuration
    metrics.csv       training terms every ``log_every`` steps, and every validation
    training.png      the curves of metrics.csv
    model.pt          the best checkpoint by validation ELBO (what ``seqvae sample`` etc. load)
    last.pt           the latest state, for ``--resume``
    summary.json      the final validation summary

Resuming restores the weights, the optimiser, the step, the position in the epoch's batch
order (which depends only on the seed and the epoch) and the torch RNG, so a resumed run
takes the same steps as an uninterrupted one.
"""
from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from . import distributed
from .checkpoint import load_checkpoint, resolve_device, save_checkpoint
from .config import Config
from .data import (PreparedData, TokenizedSplit, bucketed_batches, collate, collate_randomized,
                   prepare_data)
from .errors import SeqVAEError
from .model import SeqVAE
from .objective import gaussian_kl, vae_loss, word_dropout
from .properties import property_loss
from .plots import plot_training_curves
from .schedules import kl_weight, learning_rate
from .tokenizers import BOS_ID, UNK_ID

METRIC_FIELDS = ["step", "epoch", "split", "loss", "rec", "kl", "kl_weight", "lr",
                 "tokens_per_s", "elbo", "nll_per_token", "seconds"]
MAX_BAD_STEPS = 20  # consecutive non-finite steps before giving up


@dataclass
class TrainState:
    step: int = 0              # optimiser steps taken
    epoch: int = 0             # current epoch
    batch_in_epoch: int = 0    # batches of the current epoch already taken
    best_val_elbo: float = -math.inf
    bad_validations: int = 0   # validations since the last improvement
    skipped_steps: int = 0     # steps skipped for a non-finite loss or gradient
    seconds: float = 0.0       # training wall time so far
    decoder_reset: bool = False  # the reset after autoencoder pretraining has happened


@torch.no_grad()
def evaluate_elbo(model: SeqVAE, split: TokenizedSplit, batch_size: int = 256,
                  max_examples: int | None = None, seed: int = 0) -> dict[str, float]:
    """One-sample ELBO on (the first ``max_examples`` of) a split, reproducibly.

    Returns per-sequence means of rec, kl and elbo = -(rec + kl), the number of sequences, and
    nll_per_token = (rec + kl) summed / target tokens (<eos> counted, <bos> not).
    """
    if max_examples is not None:
        split = split.subset(max_examples)
    was_training = model.training
    model.eval()
    totals = {"rec": 0.0, "kl": 0.0, "tokens": 0}
    devices = [model.device] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # leaves the training RNG stream untouched
        torch.manual_seed(seed)
        order = np.argsort(split.lengths, kind="stable")
        for start in range(0, len(order), batch_size):
            tokens, lengths = collate(split, order[start:start + batch_size])
            tokens, lengths = tokens.to(model.device), lengths.to(model.device)
            out = model(tokens, lengths)
            totals["rec"] += out.rec.sum().item()
            totals["kl"] += gaussian_kl(out.mu, out.logvar).sum().item()
            totals["tokens"] += int((lengths - 1).sum())
    model.train(was_training)
    n = max(len(split), 1)
    rec, kl = totals["rec"] / n, totals["kl"] / n
    return {"rec": rec, "kl": kl, "elbo": -(rec + kl), "n": len(split),
            "nll_per_token": (totals["rec"] + totals["kl"]) / max(totals["tokens"], 1)}


class MetricsLog:
    """Appends rows to metrics.csv (appending keeps a resumed run's history)."""

    def __init__(self, path: Path):
        self.path = path
        if not path.exists():
            with open(path, "w", newline="") as fh:
                csv.DictWriter(fh, METRIC_FIELDS).writeheader()

    def drop_after(self, step: int) -> None:
        """Forget rows logged after ``step``: a killed run logged them, then lost those steps."""
        with open(self.path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        kept = [r for r in rows if int(r["step"]) <= step]
        if len(kept) < len(rows):
            tmp = self.path.with_suffix(".tmp")
            with open(tmp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, METRIC_FIELDS)
                writer.writeheader()
                writer.writerows(kept)
            tmp.replace(self.path)

    def write(self, **row: Any) -> None:
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, METRIC_FIELDS).writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def train(config: Config, out_dir: str | Path, resume: bool = False, device: str = "auto",
          log: Callable[[str], None] = print, progress: bool | None = None) -> dict[str, Any]:
    """Train a sequence VAE and write the run folder; returns the final summary.

    With ``resume``, continue from ``out_dir/last.pt`` (its tokenizer and state; the given
    ``config`` may change only the training length).
    """
    config.validate()
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SeqVAEError(f"cannot create the run folder {out}: {exc.strerror}; "
                          "choose another --out") from None
    dev = resolve_device(device)
    ctx = distributed.init(dev)
    if ctx.active and dev.type == "cuda":
        dev = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(dev)
    if not ctx.is_main:  # only rank 0 talks, shows progress and writes files
        log, progress = (lambda _: None), False
    resumed = None
    if resume:
        if not (out / "last.pt").exists():
            raise SeqVAEError(f"--resume: {out / 'last.pt'} does not exist; start the run "
                              "without --resume, or point --out at the folder of the run")
        resumed = load_checkpoint(out / "last.pt", dev)
    tc = config.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    torch.manual_seed(tc.seed)

    # Rank 0 fetches and tokenises first; the others then read its cache.
    data = _rank0_first(ctx, lambda: prepare_data(
        config.data, config.tokenizer, tokenizer=resumed.tokenizer if resumed else None, log=log))
    _log_data(data, log)
    # Record what "auto" resolved to, so the checkpoint says what it was trained on.
    config = config.override("data", kind=data.kind).override("tokenizer", kind=data.tokenizer.kind)
    if resumed:
        for section in ("data", "tokenizer", "model", "objective"):
            if getattr(config, section) != getattr(resumed.config, section):
                raise SeqVAEError(f"--resume: the {section} settings differ from those of "
                                  f"{out / 'last.pt'}; a resumed run may change only training "
                                  "settings (--epochs, --max-steps, ...)")
    train_split, valid_split = data.splits["train"], data.splits["valid"]
    if len(train_split) == 0:
        raise SeqVAEError(f"{config.data.source}: no training sequences left after tokenising "
                          f"(all longer than --max-length {config.data.max_length}?)")
    tokenizer = data.tokenizer
    augment = config.data.augment
    if augment and data.kind != "smiles":
        raise SeqVAEError("--augment rewrites SMILES at random; this corpus is text")
    targets = None
    if config.model.property_head:
        if data.kind != "smiles" or config.model.latent_dim == 0:
            raise SeqVAEError("--property-head predicts molecular properties from z: it needs a "
                              "SMILES corpus and a latent (--latent-dim above 0)")
        from .properties import compute_properties
        targets = _rank0_first(ctx, lambda: {
            name: torch.from_numpy(compute_properties(data.texts[name], log=log))
            for name in ("train", "valid")})
    model = resumed.model.train() if resumed else SeqVAE(config.model, tokenizer.vocab_size,
                                                         tokenizer.pad_id).to(dev)
    if targets is not None and not resumed:
        model.property_head.set_standardization(targets["train"].numpy())
    net = model  # what the forward pass goes through: DDP averages the gradients of the ranks
    if ctx.active:
        from torch.nn.parallel import DistributedDataParallel
        net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    optimizer = make_optimizer(model, tc.lr)
    state = TrainState()
    if resumed:
        optimizer.load_state_dict(resumed.blob["optimizer"])
        saved = dict(resumed.blob["train_state"])
        rng = saved.pop("torch_rng")
        state = TrainState(**saved)
        torch.set_rng_state(rng)
        log(f"seqvae: resuming {out / 'last.pt'} at step {state.step} "
            f"(epoch {state.epoch + 1}, batch {state.batch_in_epoch})")
    if ctx.is_main:
        (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))

    lengths = train_split.lengths
    steps_per_epoch = len(bucketed_batches(lengths, tc.batch_size, tc.seed, 0))
    total_steps = tc.epochs * steps_per_epoch
    if tc.max_steps is not None:
        total_steps = min(total_steps, tc.max_steps)
    oc = config.objective
    kl_span = oc.kl_warmup_steps if oc.kl_warmup_steps is not None else total_steps
    n_params = sum(p.numel() for p in model.parameters())
    log(f"seqvae: {n_params / 1e6:.2f}M parameters on {dev}; {steps_per_epoch} steps per epoch, "
        f"{total_steps} steps in all; run folder {out}"
        + (f"; {ctx.world} processes (DDP), global batch {tc.batch_size}" if ctx.active else ""))

    metrics = MetricsLog(out / "metrics.csv") if ctx.is_main else _NoMetrics()
    metrics.drop_after(state.step)
    checkpoint_args = dict(config=config, tokenizer=tokenizer, model=model, optimizer=optimizer)

    def save(name: str) -> None:
        if not ctx.is_main:
            return
        save_checkpoint(out / name, **checkpoint_args,
                        train_state={**asdict(state), "torch_rng": torch.get_rng_state()})

    latest_validation: dict[str, float] = {}

    def validate() -> dict[str, float]:
        result = evaluate_elbo(model, valid_split, max_examples=tc.max_val_examples, seed=tc.seed)
        improved = result["elbo"] > state.best_val_elbo
        if improved:
            state.best_val_elbo, state.bad_validations = result["elbo"], 0
            save("model.pt")
        else:
            state.bad_validations += 1
        metrics.write(step=state.step, epoch=state.epoch, split="valid", rec=result["rec"],
                      kl=result["kl"], elbo=result["elbo"], nll_per_token=result["nll_per_token"],
                      seconds=state.seconds)
        latest_validation.update(result, step=state.step)
        log(f"valid  step {state.step:>7}  rec {result['rec']:8.3f}  kl {result['kl']:7.3f}  "
            f"elbo {result['elbo']:9.3f}  nll/token {result['nll_per_token']:.4f}"
            + ("  (best, saved model.pt)" if improved else ""))
        if targets is not None:
            from .properties import evaluate_head, format_head_metrics
            head = evaluate_head(model, valid_split, targets["valid"],
                                 max_examples=tc.max_val_examples)
            latest_validation["properties"] = head
            log(f"valid  step {state.step:>7}  properties: {format_head_metrics(head)}")
        return result

    bar = tqdm(total=total_steps, initial=state.step, unit="step", dynamic_ncols=True,
               disable=(not progress) if progress is not None else None)
    window = {"rec": 0.0, "kl": 0.0, "loss": 0.0, "n": 0, "tokens": 0, "t0": time.perf_counter()}
    last_validated_step, bad_in_a_row, stop = -1, 0, False
    t_start = time.perf_counter() - state.seconds
    while state.epoch < tc.epochs and not stop:
        batches = bucketed_batches(lengths, tc.batch_size, tc.seed, state.epoch)
        for index in batches[state.batch_in_epoch:]:
            if state.step >= total_steps:
                stop = True
                break
            pretrain = oc.ae_pretrain_steps
            if pretrain and state.step >= pretrain and not state.decoder_reset:
                _reset_decoder(model, optimizer, seed=tc.seed + pretrain)
                state.decoder_reset = True
                log(f"seqvae: step {state.step}: autoencoder pretraining done; decoder reset, "
                    "KL schedule starts (Li et al. 2019)")
            if state.step < pretrain:  # autoencoder phase: the KL has no weight
                beta = 0.0
            else:
                beta = kl_weight(state.step - pretrain, oc.kl_schedule, oc.kl_weight, kl_span,
                                 oc.kl_start_step, oc.kl_cycles, oc.kl_cycle_ratio)
            lr = learning_rate(state.step, tc.lr, tc.lr_schedule, tc.lr_warmup_steps,
                               total_steps, tc.min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr
            # The noise of z and of word dropout is drawn for the whole global batch from a
            # generator seeded by the step, and each rank takes its rows: the same draws as a
            # single process, and a resumed run replays them.
            draws = _step_draws(max(len(index), ctx.world), config.data.max_length + 1,
                                config.model.latent_dim, tc.seed, state.step)
            rows, index = ctx.rows(len(index)), ctx.share(index)
            if augment:
                tokens, seq_lengths = collate_randomized(
                    data.texts["train"], index, tokenizer, config.data.max_length,
                    seed=tc.seed * 100_003 + state.step)
            else:
                tokens, seq_lengths = collate(train_split, index)
            if dev.type == "cuda":  # page-locked host memory lets the copy overlap compute
                tokens = tokens.pin_memory()
            tokens, seq_lengths = tokens.to(dev, non_blocking=True), seq_lengths.to(dev)
            noise = draws["noise"][rows].to(dev)
            uniforms = draws["uniforms"][rows, :tokens.size(1) - 1]
            batch_targets = None
            if targets is not None:
                batch_targets = model.property_head.standardize(
                    targets["train"][torch.as_tensor(index)].to(dev))
            loss, rec, kl_dim, finite = _backward(net, model, tokens, seq_lengths, beta, config,
                                                  batch_targets, noise, uniforms)
            state.batch_in_epoch += 1
            if ctx.active:  # every rank skips, or none does
                finite = ctx.sum([0.0 if finite else 1.0])[0] == 0
            if not finite:
                # Skip the update rather than poison the weights; give up if it keeps happening.
                state.skipped_steps += 1
                bad_in_a_row += 1
                log(f"seqvae: step {state.step}: non-finite loss or gradient, update skipped "
                    f"({state.skipped_steps} so far)")
                if bad_in_a_row >= MAX_BAD_STEPS:
                    raise SeqVAEError(f"{bad_in_a_row} non-finite steps in a row; training stopped. "
                                      "Lower --lr, set --grad-clip, or check the data. "
                                      f"The last good state is in {out / 'last.pt'}")
                continue
            bad_in_a_row = 0
            optimizer.step()
            state.step += 1
            bar.update(1)
            window["rec"] += rec.mean().item()
            window["kl"] += kl_dim.sum(1).mean().item()
            window["loss"] += loss.item()
            window["n"] += 1
            window["tokens"] += int((seq_lengths - 1).sum())
            if state.step % tc.log_every == 0 or state.step == total_steps:
                now = time.perf_counter()
                # means over the ranks' equal shares = the means over the global batches
                rec_sum, kl_sum, loss_sum, tokens_sum = ctx.sum(
                    [window["rec"], window["kl"], window["loss"], float(window["tokens"])])
                n = window["n"] * ctx.world
                row = dict(rec=rec_sum / n, kl=kl_sum / n, loss=loss_sum / n, kl_weight=beta,
                           lr=lr, tokens_per_s=tokens_sum / (now - window["t0"]))
                state.seconds = now - t_start
                metrics.write(step=state.step, epoch=state.epoch, split="train",
                              seconds=state.seconds, **row)
                bar.set_postfix(rec=f"{row['rec']:.2f}", kl=f"{row['kl']:.2f}", beta=f"{beta:.3f}")
                if ctx.is_main:
                    bar.write(f"train  step {state.step:>7}  rec {row['rec']:8.3f}  kl {row['kl']:7.3f}"
                              f"  beta {beta:.4f}  lr {lr:.2e}  {row['tokens_per_s']:,.0f} tokens/s")
                window = {"rec": 0.0, "kl": 0.0, "loss": 0.0, "n": 0, "tokens": 0, "t0": now}
            if tc.val_every and state.step % tc.val_every == 0:
                validate()
                last_validated_step = state.step
            if state.step % tc.save_every == 0:
                state.seconds = time.perf_counter() - t_start
                save("last.pt")
            if tc.early_stopping and state.bad_validations >= tc.early_stopping:
                log(f"seqvae: early stopping: no improvement in {tc.early_stopping} validations")
                stop = True
                break
        else:  # the epoch ran to its end
            state.epoch += 1
            state.batch_in_epoch = 0
            state.seconds = time.perf_counter() - t_start
            if not tc.val_every:
                validate()
                last_validated_step = state.step
                if tc.early_stopping and state.bad_validations >= tc.early_stopping:
                    log(f"seqvae: early stopping: no improvement in {tc.early_stopping} validations")
                    stop = True
            save("last.pt")
    bar.close()
    state.seconds = time.perf_counter() - t_start
    if last_validated_step != state.step:
        validate()
    save("last.pt")
    if not ctx.is_main:
        ctx.barrier()  # wait until rank 0 has written its files, then leave
        distributed.shutdown(ctx)
        return {"rank": ctx.rank, "steps": state.step, "run_dir": str(out)}
    if not (out / "model.pt").exists():  # only when no validation ever improved on -inf
        save("model.pt")
    plot_training_curves(out / "metrics.csv", out / "training.png")
    best = load_checkpoint(out / "model.pt")
    summary = {
        "corpus": data.corpus_name, "kind": data.kind, "tokenizer": tokenizer.kind,
        "vocab_size": tokenizer.vocab_size, "parameters": n_params, "device": str(dev),
        "steps": state.step, "epochs_completed": state.epoch, "train_seconds": round(state.seconds, 1),
        "skipped_steps": state.skipped_steps, "best_valid_elbo": state.best_val_elbo,
        "best_step": best.blob["train_state"].get("step"),
        "final_valid": latest_validation, "run_dir": str(out), "rank": 0,
        "processes": ctx.world, "global_batch": tc.batch_size,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    ctx.barrier()
    distributed.shutdown(ctx)
    return summary


def make_optimizer(model: SeqVAE, lr: float) -> torch.optim.Adam:
    """Adam; its fused kernel (one pass over all parameters) where torch has one."""
    try:
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    except (RuntimeError, TypeError):  # older torch, or a device without the fused kernel
        return torch.optim.Adam(model.parameters(), lr=lr)


def _reset_decoder(model: SeqVAE, optimizer: torch.optim.Optimizer, seed: int) -> None:
    """Re-initialise the decoder from a fixed seed (the same on every rank, and on a resumed
    run) and forget its Adam moments."""
    with torch.random.fork_rng(devices=[model.device] if model.device.type == "cuda" else []):
        torch.manual_seed(seed)
        model.reset_decoder()
    for p in model.decoder_parameters():
        optimizer.state.pop(p, None)


def _step_draws(rows: int, width: int, latent_dim: int, seed: int, step: int) -> dict[str, torch.Tensor]:
    """The random draws of one optimiser step for a whole global batch: the normal noise of z
    (rows, D) and the uniforms of word dropout (rows, width), from a generator seeded by
    (seed, step)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return {"noise": torch.randn(rows, latent_dim, generator=g),
            "uniforms": torch.rand(rows, width, generator=g)}


def _rank0_first(ctx: distributed.Context, make: Callable[[], Any]) -> Any:
    """Run ``make`` on rank 0, then on the others (which then find its files in the cache)."""
    if ctx.is_main:
        result = make()
        ctx.barrier()
        return result
    ctx.barrier()
    return make()


class _NoMetrics:
    """The metrics log of ranks other than 0: they write nothing."""

    def drop_after(self, step: int) -> None:
        pass

    def write(self, **row: Any) -> None:
        pass


def _backward(net: torch.nn.Module, model: SeqVAE, tokens: torch.Tensor, lengths: torch.Tensor,
              beta: float, config: Config, targets: torch.Tensor | None = None,
              noise: torch.Tensor | None = None, uniforms: torch.Tensor | None = None,
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
    """Forward and backward pass of one batch; gradients are clipped and left in ``.grad``.

    Args:
        net: ``model`` itself, or its DistributedDataParallel wrapper.
        tokens: (B, T) padded ``[<bos>, ..., <eos>]`` ids; lengths: (B,).
        targets: (B, P) standardised properties for the property head, or None.
        noise: (B, D) eps of z; uniforms: (B, T-1) word-dropout draws (None: drawn here).
    Returns:
        the loss, rec (B,), KL per dimension (B, D), and whether loss and gradients are finite.
    """
    pad, oc = model.pad_id, config.objective
    inputs = tokens[:, :-1]
    inputs = word_dropout(inputs, oc.word_dropout, UNK_ID, keep=(inputs == BOS_ID) | (inputs == pad),
                          uniforms=uniforms)
    with torch.autocast(tokens.device.type, dtype=torch.bfloat16,
                        enabled=config.train.precision == "bf16"):
        out = net(tokens, lengths, decoder_inputs=inputs, noise=noise)
    rec = out.rec
    kl_dim = gaussian_kl(out.mu, out.logvar)
    loss = vae_loss(rec, kl_dim, beta, oc.free_bits)
    if targets is not None:  # predicted from the sampled z, as Gómez-Bombarelli et al. 2018
        loss = loss + oc.property_weight * property_loss(model.property_head(out.z), targets)
    model.zero_grad(set_to_none=True)
    loss.backward()
    clip = config.train.grad_clip if config.train.grad_clip > 0 else math.inf
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    finite = bool(torch.isfinite(loss)) and bool(torch.isfinite(grad_norm))
    return loss.detach(), rec.detach(), kl_dim.detach(), finite


def _log_data(data: PreparedData, log: Callable[[str], None]) -> None:
    for what, counts in (("skipped as invalid SMILES (RDKit cannot parse them)", data.invalid),
                         ("skipped as empty or longer than --max-length", data.dropped),
                         ("truncated to --max-length", data.truncated)):
        if any(counts.values()):
            log(f"seqvae: {what}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items() if v))
    if data.invalid_examples:
        log(f"seqvae: invalid SMILES are, e.g., {', '.join(map(repr, data.invalid_examples))}")
