"""The training loop, top to bottom. The pieces it calls: :func:`setup_run` (data, model,
optimiser, resume), :func:`make_batch` and :func:`train_step` (one step), :func:`validate`,
:class:`Progress` (logs) and :class:`RunFolder` (files).

Resuming restores the weights, the optimiser, the step, the position in the epoch's batch
order (which depends only on the seed and the epoch) and the torch RNG, so a resumed run
takes the same steps as an uninterrupted one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .. import distributed
from ..config import Config
from ..errors import SeqVAEError
from ..logs import to_stderr
from .progress import Progress
from .rate_control import update_rate_control
from .run import Run, make_batch, setup_run
from .step import end_pretraining, pretraining_ends, set_learning_rate, train_step
from .validation import validate

MAX_BAD_STEPS = 20  # consecutive non-finite steps before giving up


def train(config: Config, out_dir: str | Path, resume: bool = False, device: str = "auto",
          log: Callable[[str], None] = to_stderr, progress: bool | None = None) -> dict[str, Any]:
    """Train a sequence VAE and write the run folder; returns the final summary.

    With ``resume``, continue from ``out_dir/last.pt`` (its tokenizer and state; the given
    ``config`` may change only the training length).
    """
    run = setup_run(config, out_dir, resume, device, log)
    tc, state, ctx = run.config.train, run.state, run.ctx
    meter = Progress(run, progress)
    last_validated, bad_in_a_row, stop = -1, 0, False
    while (tc.epochs is None or state.epoch < tc.epochs) and not stop:
        for index in run.epoch_batches()[state.batch_in_epoch:]:
            if state.step >= run.total_steps:
                stop = True
                break
            end_pretraining_if_due(run)
            lr = set_learning_rate(run.optimizer, state.step, tc, run.total_steps)
            batch = make_batch(run, index)
            terms, finite = train_step(run.net, run.model, batch, state.step, run.config,
                                       run.total_steps, state.rate_weight)
            state.batch_in_epoch += 1
            if ctx.active:  # every rank skips, or none does
                finite = ctx.sum([0.0 if finite else 1.0])[0] == 0
            if not finite:  # skip the update rather than poison the weights
                bad_in_a_row = skip_step(run, bad_in_a_row + 1)
                continue
            bad_in_a_row = 0
            run.optimizer.step()
            update_rate_control(state, terms, run.config, run.model, run.probe, ctx.mean)
            state.step += 1
            meter.step_taken(terms, batch, lr)
            if tc.val_every and state.step % tc.val_every == 0:
                validate(run)
                last_validated = state.step
            if state.step % tc.save_every == 0:
                state.seconds = meter.seconds()
                run.save("last.pt")
            if stop := early_stop(run):
                break
        else:  # the epoch ran to its end
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
            state.seconds = meter.seconds()
            if not tc.val_every:
                validate(run)
                last_validated = state.step
                stop = early_stop(run)
            run.save("last.pt")
    meter.close()
    state.seconds = meter.seconds()
    if last_validated != state.step:
        validate(run)
    run.save("last.pt")
    return finish(run)


def end_pretraining_if_due(run: Run) -> None:
    """After ``ae_pretrain_steps`` steps as an autoencoder, reset the decoder (once)."""
    state = run.state
    if pretraining_ends(state.step, run.config, state.decoder_reset):
        end_pretraining(run.model, run.optimizer, run.config)
        state.decoder_reset = True
        run.log(f"seqvae: step {state.step}: autoencoder pretraining done; decoder reset, "
                "KL schedule starts (Li et al. 2019)")


def skip_step(run: Run, bad_in_a_row: int) -> int:
    """Count a step with a non-finite loss or gradient; give up if it keeps happening."""
    run.state.skipped_steps += 1
    run.log(f"seqvae: step {run.state.step}: non-finite loss or gradient, update skipped "
            f"({run.state.skipped_steps} so far)")
    if bad_in_a_row >= MAX_BAD_STEPS:
        raise SeqVAEError(f"{bad_in_a_row} non-finite steps in a row; training stopped. "
                          "Lower --lr, set --grad-clip, or check the data. "
                          f"The last good state is in {run.folder.last}")
    return bad_in_a_row


def early_stop(run: Run) -> bool:
    patience = run.config.train.early_stopping
    if patience and run.state.bad_validations >= patience:
        run.log(f"seqvae: early stopping: no improvement in {patience} validations")
        return True
    return False


def finish(run: Run) -> dict[str, Any]:
    """Close the run: rank 0 writes the plot and the summary; every rank leaves the group."""
    ctx, state, data = run.ctx, run.state, run.data
    if not ctx.is_main:
        ctx.barrier()  # wait until rank 0 has written its files, then leave
        distributed.shutdown(ctx)
        return {"rank": ctx.rank, "steps": state.step, "run_dir": str(run.folder.path)}
    if not run.folder.best.exists():  # only when no validation ever improved on -inf
        run.save("model.pt")
    summary = {
        "corpus": data.corpus_name, "kind": data.kind, "tokenizer": data.tokenizer.kind,
        "vocab_size": data.tokenizer.vocab_size,
        "parameters": sum(p.numel() for p in run.model.parameters()), "device": str(run.device),
        "steps": state.step, "epochs_completed": state.epoch,
        "train_seconds": round(state.seconds, 1), "skipped_steps": state.skipped_steps,
        "best_valid_elbo": state.best_val_elbo, "best_step": run.folder.best_step(),
        "target_kl": run.config.objective.target_kl, "precision": run.config.train.precision,
        "final_valid": run.latest_validation, "run_dir": str(run.folder.path), "rank": 0,
        "processes": ctx.world, "global_batch": run.config.train.batch_size,
    }
    run.folder.finish(summary)
    ctx.barrier()
    distributed.shutdown(ctx)
    return summary
