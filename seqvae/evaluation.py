"""``seqvae evaluate``: honest likelihood, latent usage and reconstruction of a trained model.

For every evaluated sequence x this computes, in one pass over length-sorted batches:
    - the importance-weighted estimate of log p(x) with k samples from q(z|x)
      (:func:`seqvae.metrics.importance_weighted_log_likelihood`), hence NLL and perplexity;
    - the ELBO, its reconstruction term (averaged over the same k samples) and its KL;
    - the posterior parameters, for mutual information and active units;
    - the greedy decode of the posterior mean (or another ``method``: see
      :func:`seqvae.decoding.decode`), for exact-match rate and corpus BLEU.

A model trained without a latent (``--no-latent``) is a language model whose log p(x) is
exact, so it is scored with k = 1 and the same code.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .api import TrainedVAE
from .data import TokenizedSplit, collate
from .decoding import DEFAULT_BEAM_SIZE, decode
from .errors import SeqVAEError
from .gaussian import reparameterize
from .logs import to_stderr
from .metrics import (
    active_units,
    corpus_bleu,
    importance_weighted_log_likelihood,
    mutual_information,
    perplexity,
)

# Importance samples scored per decoder call: rows of (sequence, z) pairs, bounding memory.
ROWS_PER_CALL = 1024


@torch.inference_mode()
def evaluate_sequences(vae: TrainedVAE, split: TokenizedSplit, k: int = 500, seed: int = 0,
                       batch_size: int = 32, progress: bool = False,
                       precision: str = "fp32", method: str = "greedy",
                       beam_size: int | None = None) -> dict[str, Any]:
    """Evaluate a model on tokenised sequences; returns a flat dict of results (see module).

    Args:
        split: the sequences, without <bos>/<eos> (e.g. ``prepare_data(...).splits["test"]``).
        k: importance samples per sequence (1 is used for a model without a latent).
        seed: seeds the importance samples and the MI sample, so results are reproducible.
        batch_size: sequences per batch.
        precision: ``fp32`` or ``bf16``: the arithmetic of the k x decoder passes that score
            log p(x|z), nearly all of the work (``--precision auto`` resolves to one of them
            with :func:`seqvae.devices.resolve_precision`). The encoder, the KL, the softmax
            and the log-mean-exp stay fp32 either way; the measured difference in NLL is in
            docs/results/performance.md.
        method, beam_size: how the posterior means are decoded for the reconstruction
            figures: ``greedy``, ``beam`` or ``rerank`` (fp32 either way).
    """
    if precision not in ("fp32", "bf16"):
        raise SeqVAEError(f"precision must be fp32 or bf16, not {precision!r}")
    model, tok = vae.model, vae.tokenizer
    device = model.device
    k = k if model.has_latent else 1
    generator = torch.Generator(device=device).manual_seed(seed)
    started = time.perf_counter()
    order = np.argsort(split.lengths, kind="stable")
    sums = {"iw": 0.0, "log_lik": 0.0, "kl": 0.0, "tokens": 0}
    mus, logvars, samples, references, hypotheses = [], [], [], [], []
    bar = tqdm(total=len(order), disable=not progress, unit="seq", desc=f"evaluating (k={k})")
    for start in range(0, len(order), batch_size):
        tokens, lengths = collate(split, order[start:start + batch_size])
        tokens, lengths = tokens.to(device), lengths.to(device)
        B = tokens.size(0)
        mu, logvar = model.forward_encoder(tokens, lengths)

        # tokens and B bound now: the function is called only in this iteration
        def log_likelihood(z: torch.Tensor, tokens=tokens, B=B) -> torch.Tensor:  # (B, s, D) -> (B, s)
            s = z.size(1)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                return model.log_likelihood(tokens.repeat_interleave(s, dim=0),
                                            z.reshape(B * s, -1)).view(B, s)

        iw, log_lik = importance_weighted_log_likelihood(
            log_likelihood, mu, logvar, k, chunk=max(1, ROWS_PER_CALL // B), generator=generator,
            prior_log_prob=model.prior_log_prob if model.has_learned_prior else None)
        sums["iw"] += iw.sum().item()
        sums["log_lik"] += log_lik.sum().item()
        z = reparameterize(mu, logvar, generator=generator)
        sums["kl"] += model.kl(mu, logvar, z).sum().item()
        sums["tokens"] += int((lengths - 1).sum())
        mus.append(mu.cpu())
        logvars.append(logvar.cpu())
        samples.append(z.cpu())
        decoded = decode(model, mu, tok.bos_id, tok.eos_id, tok.pad_id, method=method,
                         beam_size=beam_size, max_len=int(lengths.max()) + 10)
        references.extend(_strip(row, tok.eos_id, tok.pad_id) for row in tokens[:, 1:].tolist())
        hypotheses.extend(_strip(row, tok.eos_id, tok.pad_id) for row in decoded.tolist())
        bar.update(B)
    bar.close()
    n = len(order)
    mu, logvar, z = torch.cat(mus), torch.cat(logvars), torch.cat(samples)
    nll = -sums["iw"]
    rec, kl = -sums["log_lik"] / max(n, 1), sums["kl"] / max(n, 1)
    return {
        "n": n, "tokens": sums["tokens"], "k": k, "seed": seed, "precision": precision,
        "decoding": decoding_name(method, beam_size),
        "nll": nll / max(n, 1),
        "perplexity": perplexity(nll, sums["tokens"]),
        "elbo": -(rec + kl), "rec": rec, "kl": kl,
        "elbo_perplexity": perplexity((rec + kl) * n, sums["tokens"]),
        "mutual_information": mutual_information(mu, logvar, z),
        "active_units": active_units(mu), "latent_dim": mu.size(1),
        "exact_match": float(np.mean([r == h for r, h in zip(references, hypotheses)])) if n else 0.0,
        "bleu": corpus_bleu(*bleu_units(vae, references, hypotheses)) if n else 0.0,
        "bleu_units": "words" if by_words(vae) else "tokens",
        "seconds": round(time.perf_counter() - started, 1),
    }


def decoding_name(method: str, beam_size: int | None = None) -> str:
    """How results name a decoding: ``greedy``, ``beam of 5``, ``rerank of 20``."""
    if method in DEFAULT_BEAM_SIZE:
        return f"{method} of {beam_size or DEFAULT_BEAM_SIZE[method]}"
    return method


def by_words(vae: TrainedVAE) -> bool:
    """Whether BLEU counts words rather than tokens: for subword (sentencepiece) models, whose
    pieces would inflate n-gram matches; BLEU-4 in the text-VAE literature is over words."""
    return vae.config.tokenizer.kind == "sentencepiece"


def bleu_units(vae: TrainedVAE, references: list[list[int]],
               hypotheses: list[list[int]]) -> tuple[list, list]:
    """References and hypotheses in the units BLEU counts (see :func:`by_words`)."""
    if not by_words(vae):
        return references, hypotheses
    words = [vae.tokenizer.decode(ids).split() for ids in references + hypotheses]
    return words[:len(references)], words[len(references):]


def _strip(ids: Sequence[int], eos_id: int, pad_id: int) -> list[int]:
    """Token ids up to (not including) the first <eos>, padding removed."""
    out = []
    for i in ids:
        if i == eos_id:
            break
        if i != pad_id:
            out.append(i)
    return out


ROWS = [("sequences", "n", "{:,}"), ("target tokens (<eos> counted)", "tokens", "{:,}"),
        ("importance samples k", "k", "{}"), ("precision of the k decoder passes", "precision", "{}"),
        ("NLL, importance-weighted (nats/seq)", "nll", "{:.2f}"),
        ("perplexity", "perplexity", "{:.2f}"),
        ("ELBO (nats/seq)", "elbo", "{:.2f}"), ("  reconstruction", "rec", "{:.2f}"),
        ("  KL", "kl", "{:.2f}"), ("perplexity bound from the ELBO", "elbo_perplexity", "{:.2f}"),
        ("mutual information I(x;z) (nats)", "mutual_information", "{:.2f}"),
        ("active units", "active_units", "{}"), ("latent dimensions", "latent_dim", "{}"),
        ("decoding of the posterior means", "decoding", "{}"),
        ("reconstruction, exact match", "exact_match", "{:.3f}"),
        ("reconstruction, BLEU-4", "bleu", "{:.3f}"),
        ("  counted over", "bleu_units", "{}"),
        ("sentences of at most N words", "short_sentences", "{:,}"),
        ("  N", "short_max_words", "{}"),
        ("  reconstruction, exact match", "short_exact_match", "{:.3f}"),
        ("interpolation endpoints recovered (pairs)", "endpoint_recovery", "{:.2f}"),
        ("  of sentences of at most N words", "endpoint_max_words", "{}"),
        ("real short sentences, LM NLL per token", "real_fluency", "{:.3f}"),
        ("  words not in the training sentences", "real_invented_words", "{:.3f}"),
        ("interpolated sentences, LM NLL per token", "interpolation_fluency", "{:.3f}"),
        ("  ratio to the real sentences'", "interpolation_fluency_ratio", "{:.2f}"),
        ("  share distinct", "interpolation_distinct", "{:.3f}"),
        ("  words not in the training sentences", "interpolation_invented_words", "{:.3f}"),
        ("prior samples, LM NLL per token", "sample_fluency", "{:.3f}"),
        ("  ratio to the real sentences'", "sample_fluency_ratio", "{:.2f}"),
        ("  share distinct", "sample_distinct", "{:.3f}"),
        ("  words not in the training sentences", "sample_invented_words", "{:.3f}"),
        ("wall time (s)", "seconds", "{:.1f}")]


def format_table(results: dict[str, Any], title: str = "") -> str:
    """A readable two-column table of :func:`evaluate_sequences` results."""
    width = max(len(label) for label, _, _ in ROWS)
    lines = [title] if title else []
    for label, key, fmt in ROWS:
        if key in results:
            value = results[key]
            finite = isinstance(value, (int, float)) and math.isfinite(value)
            shown = fmt.format(value) if finite else str(value)
            lines.append(f"  {label:<{width}}  {shown}")
    return "\n".join(lines)


def load_split(vae: TrainedVAE, split: str, log: Callable[[str], None] = to_stderr) -> TokenizedSplit:
    """A split of the corpus the model was trained on, tokenised with its tokenizer."""
    data = vae.corpus(log=log)
    if split not in data.splits:
        raise SeqVAEError(f"the corpus {data.corpus_name} has no split {split!r}; "
                          f"choose one of: {', '.join(data.splits)}")
    return data.splits[split]
