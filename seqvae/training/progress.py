"""The training side of the logs: a progress bar, and every ``log_every`` steps the means of
the terms since the last row, written to metrics.csv and printed."""
from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm

from ..data import Batch
from ..objective import LossTerms
from .run import Run


class Progress:
    """Accumulates the loss terms of the steps since the last log row."""

    def __init__(self, run: Run, show: bool | None):
        self.run = run
        show = show if run.ctx.is_main else False   # only rank 0 shows a bar
        # disable=None: tqdm shows the bar on a terminal only
        self.bar = tqdm(total=run.total_steps, initial=run.state.step, unit="step",
                        dynamic_ncols=True, disable=(not show) if show is not None else None)
        self.started = time.perf_counter() - run.state.seconds   # wall clock of step 0
        self._reset(time.perf_counter())

    def _reset(self, now: float) -> None:
        self.sums = {"rec": 0.0, "kl": 0.0, "loss": 0.0, "tokens": 0.0, "bow": 0.0}
        self.n, self.t0 = 0, now

    def seconds(self) -> float:
        """Training wall time so far, across resumptions."""
        return time.perf_counter() - self.started

    def step_taken(self, terms: LossTerms, batch: Batch, lr: float) -> None:
        """Count one optimiser step; write a row when one is due."""
        run, state = self.run, self.run.state
        self.bar.update(1)
        self.sums["rec"] += terms.rec.mean().item()
        self.sums["kl"] += terms.mean_kl().item()
        self.sums["loss"] += terms.loss.item()
        self.sums["tokens"] += int((batch.lengths - 1).sum())
        if terms.bag_of_words is not None:
            self.sums["bow"] += terms.bag_of_words.item()
        self.n += 1
        if state.step % run.config.train.log_every and state.step != run.total_steps:
            return
        now = time.perf_counter()
        # means over the ranks' equal shares = the means over the global batches
        rec, kl, loss, tokens, bow = run.ctx.sum(
            [self.sums[k] for k in ("rec", "kl", "loss", "tokens", "bow")])
        n, beta = self.n * run.ctx.world, terms.beta
        rated = bool(run.config.objective.target_kl)
        row = dict(rec=rec / n, kl=kl / n, loss=loss / n, kl_weight=beta,
                   rate_weight=terms.kl_weight if rated else None,
                   kl_probe=state.probe_kl if rated else None, lr=lr,
                   tokens_per_s=tokens / (now - self.t0))
        state.seconds = now - self.started
        run.folder.log_metrics(step=state.step, epoch=state.epoch, split="train",
                               seconds=state.seconds, **row)
        self.bar.set_postfix(rec=f"{row['rec']:.2f}", kl=f"{row['kl']:.2f}", beta=f"{beta:.3f}")
        line = (f"train  step {state.step:>7}  rec {row['rec']:8.3f}  kl {row['kl']:7.3f}"
                f"  beta {beta:.4f}"
                + (f"  weight {terms.kl_weight:+.3f}" if rated else "")
                + (f"  held-out kl {state.probe_kl:.2f}" if rated and state.probe_kl is not None
                   else "")
                + (f"  bow {bow / n:.2f}" if terms.bag_of_words is not None else "")
                + f"  lr {lr:.2e}  {row['tokens_per_s']:,.0f} tokens/s")
        # Through the run's own log (stderr from the CLI), with the bar cleared and redrawn
        # around it; tqdm.write would print to stdout, which belongs to a Python caller.
        with tqdm.external_write_mode(file=sys.stderr):
            run.log(line)
        self._reset(now)

    def close(self) -> None:
        self.bar.close()
