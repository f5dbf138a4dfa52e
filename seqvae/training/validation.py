"""Validation: the one-sample ELBO on held-out sequences, reproducibly, and what a run does
with it (keep the best model, count validations without improvement, log)."""
from __future__ import annotations

import numpy as np
import torch

from ..api import TrainedVAE
from ..data import TokenizedSplit, collate
from ..devices import rng_devices
from ..model import SeqVAE
from ..molecules.property_fitting import evaluate_head
from ..molecules.property_head import format_head_metrics
from ..objective import selection_score
from .run import Run

VALID_BATCH = 256  # sequences per validation batch (no gradients)


@torch.no_grad()
def evaluate_elbo(model: SeqVAE, split: TokenizedSplit, batch_size: int = VALID_BATCH,
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
    with torch.random.fork_rng(devices=rng_devices(model.device)):  # training RNG untouched
        torch.manual_seed(seed)
        order = np.argsort(split.lengths, kind="stable")
        for start in range(0, len(order), batch_size):
            tokens, lengths = collate(split, order[start:start + batch_size])
            tokens, lengths = tokens.to(model.device), lengths.to(model.device)
            out = model(tokens, lengths)
            totals["rec"] += out.rec.sum().item()
            totals["kl"] += model.kl(out.mu, out.logvar, out.z).sum().item()
            totals["tokens"] += int((lengths - 1).sum())
    model.train(was_training)
    n = max(len(split), 1)
    rec, kl = totals["rec"] / n, totals["kl"] / n
    return {"rec": rec, "kl": kl, "elbo": -(rec + kl), "n": len(split),
            "nll_per_token": (totals["rec"] + totals["kl"]) / max(totals["tokens"], 1)}


def validate(run: Run) -> dict[str, float]:
    """Validate the run's model now: keep it as model.pt if its ELBO is the best so far (with
    ``--target-kl``, the ELBO with the KL charged at least the target:
    :func:`seqvae.objective.selection_score`), log the row, and (with a property head) score
    the head."""
    tc, state, model = run.config.train, run.state, run.model
    valid = run.data.splits["valid"]
    result = evaluate_elbo(model, valid, max_examples=tc.max_val_examples, seed=tc.seed)
    score = selection_score(result["rec"], result["kl"], run.config.objective.target_kl)
    improved = score > state.best_val_elbo
    state.valid_kl = result["kl"]
    if improved:
        state.best_val_elbo, state.bad_validations = score, 0
        run.save("model.pt")
    else:
        state.bad_validations += 1
    run.folder.log_metrics(step=state.step, epoch=state.epoch, split="valid", rec=result["rec"],
                           kl=result["kl"], elbo=result["elbo"],
                           nll_per_token=result["nll_per_token"], seconds=state.seconds)
    run.latest_validation.update(result, step=state.step)
    run.log(f"valid  step {state.step:>7}  rec {result['rec']:8.3f}  kl {result['kl']:7.3f}  "
            f"elbo {result['elbo']:9.3f}  nll/token {result['nll_per_token']:.4f}"
            + ("  (best, saved model.pt)" if improved else ""))
    if run.targets is not None:
        was_training = model.training
        vae = TrainedVAE(run.config, run.data.tokenizer, model)   # puts it in eval mode
        head = evaluate_head(vae, valid, run.targets["valid"], max_examples=tc.max_val_examples)
        model.train(was_training)
        run.latest_validation["properties"] = head
        run.log(f"valid  step {state.step:>7}  properties: {format_head_metrics(head)}")
    return result
