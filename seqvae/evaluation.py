"""``seqvae evaluate``: honest likelihood, latent usage and reconstruction of a trained model.

For every evaluated sequence x this computes, in one pass over length-sorted batches:
    - the importance-weighted estimate of log p(x) with k samples from q(z|x)
      (:func:`seqvae.metrics.importance_weighted_log_likelihood`), hence NLL and perplexity;
    - the ELBO, its reconstruction term (averaged over the same k samples) and its KL;
    - the posterior parameters, for mutual information and active units;
    - the greedy decode of the posterior mean, for exact-match rate and corpus BLEU.

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
from .decoding import decode
from .errors import SeqVAEError
from .gaussian import gaussian_kl, reparameterize
from .interpolation import path as latent_path
from .metrics import (active_units, corpus_bleu, importance_weighted_log_likelihood,
                      mutual_information, perplexity, unigram_f1)

# Importance samples scored per decoder call: rows of (sequence, z) pairs, bounding memory.
ROWS_PER_CALL = 1024


@torch.inference_mode()
def evaluate_sequences(vae: TrainedVAE, split: TokenizedSplit, k: int = 500, seed: int = 0,
                       batch_size: int = 32, progress: bool = False) -> dict[str, Any]:
    """Evaluate a model on tokenised sequences; returns a flat dict of results (see module).

    Args:
        split: the sequences, without <bos>/<eos> (e.g. ``prepare_data(...).splits["test"]``).
        k: importance samples per sequence (1 is used for a model without a latent).
        seed: seeds the importance samples and the MI sample, so results are reproducible.
        batch_size: sequences per batch.
    """
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

        def log_likelihood(z: torch.Tensor) -> torch.Tensor:   # (B, s, D) -> (B, s)
            s = z.size(1)
            return model.log_likelihood(tokens.repeat_interleave(s, dim=0),
                                        z.reshape(B * s, -1)).view(B, s)

        iw, log_lik = importance_weighted_log_likelihood(
            log_likelihood, mu, logvar, k, chunk=max(1, ROWS_PER_CALL // B), generator=generator)
        sums["iw"] += iw.sum().item()
        sums["log_lik"] += log_lik.sum().item()
        sums["kl"] += gaussian_kl(mu, logvar).sum().item()
        sums["tokens"] += int((lengths - 1).sum())
        mus.append(mu.cpu())
        logvars.append(logvar.cpu())
        samples.append(reparameterize(mu, logvar, generator=generator).cpu())
        greedy = decode(model, mu, tok.bos_id, tok.eos_id, tok.pad_id, method="greedy",
                        max_len=int(lengths.max()) + 10)
        references.extend(_strip(row, tok.eos_id, tok.pad_id) for row in tokens[:, 1:].tolist())
        hypotheses.extend(_strip(row, tok.eos_id, tok.pad_id) for row in greedy.tolist())
        bar.update(B)
    bar.close()
    n = len(order)
    mu, logvar, z = torch.cat(mus), torch.cat(logvars), torch.cat(samples)
    nll = -sums["iw"]
    rec, kl = -sums["log_lik"] / max(n, 1), sums["kl"] / max(n, 1)
    return {
        "n": n, "tokens": sums["tokens"], "k": k, "seed": seed,
        "nll": nll / max(n, 1),
        "perplexity": perplexity(nll, sums["tokens"]),
        "elbo": -(rec + kl), "rec": rec, "kl": kl,
        "elbo_perplexity": perplexity((rec + kl) * n, sums["tokens"]),
        "mutual_information": mutual_information(mu, logvar, z),
        "active_units": active_units(mu), "latent_dim": mu.size(1),
        "exact_match": float(np.mean([r == h for r, h in zip(references, hypotheses)])) if n else 0.0,
        "bleu": corpus_bleu(references, hypotheses) if n else 0.0,
        "seconds": round(time.perf_counter() - started, 1),
    }


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
        ("importance samples k", "k", "{}"),
        ("NLL, importance-weighted (nats/seq)", "nll", "{:.2f}"),
        ("perplexity", "perplexity", "{:.2f}"),
        ("ELBO (nats/seq)", "elbo", "{:.2f}"), ("  reconstruction", "rec", "{:.2f}"),
        ("  KL", "kl", "{:.2f}"), ("perplexity bound from the ELBO", "elbo_perplexity", "{:.2f}"),
        ("mutual information I(x;z) (nats)", "mutual_information", "{:.2f}"),
        ("active units", "active_units", "{}"), ("latent dimensions", "latent_dim", "{}"),
        ("greedy reconstruction, exact match", "exact_match", "{:.3f}"),
        ("greedy reconstruction, BLEU-4", "bleu", "{:.3f}"),
        ("interpolation endpoints recovered (pairs)", "endpoint_recovery", "{:.2f}"),
        ("  of sentences up to this many words", "endpoint_max_words", "{}"),
        ("interpolated sentences, LM NLL per token", "interpolation_fluency", "{:.3f}"), ("wall time (s)", "seconds", "{:.1f}")]


def format_table(results: dict[str, Any], title: str = "") -> str:
    """A readable two-column table of :func:`evaluate_sequences` results."""
    width = max(len(label) for label, _, _ in ROWS)
    lines = [title] if title else []
    for label, key, fmt in ROWS:
        if key in results:
            value = results[key]
            shown = fmt.format(value) if isinstance(value, (int, float)) and math.isfinite(value) else str(value)
            lines.append(f"  {label:<{width}}  {shown}")
    return "\n".join(lines)


def load_split(vae: TrainedVAE, split: str, log: Callable[[str], None] = print) -> TokenizedSplit:
    """A split of the corpus the model was trained on, tokenised with its tokenizer."""
    data = vae.corpus(log=log)
    if split not in data.splits:
        raise SeqVAEError(f"the corpus {data.corpus_name} has no split {split!r}; "
                          f"choose one of: {', '.join(data.splits)}")
    return data.splits[split]


def short_texts(texts: Sequence[str], max_words: int | None) -> list[str]:
    """The texts of at most ``max_words`` whitespace-separated words (None: all of them)."""
    return [t for t in texts if max_words is None or len(t.split()) <= max_words]


def random_pairs(n: int, pairs: int, seed: int) -> list[tuple[int, int]]:
    """``pairs`` seeded random pairs of distinct indices below ``n``."""
    if n < 2:
        raise SeqVAEError("interpolation pairs need at least two sentences")
    rng = np.random.default_rng(seed)
    return [tuple(rng.choice(n, size=2, replace=False).tolist()) for _ in range(pairs)]


def endpoint_recovery(vae: TrainedVAE, texts: Sequence[str], pairs: int = 100,
                      seed: int = 0) -> dict[str, Any]:
    """The share of random pairs of ``texts`` whose two endpoints, encoded to their posterior
    means and decoded greedily, come back as themselves (as the tokenizer reads them).

    Returns the share, the number of pairs, and the pairs (index pairs into ``texts``).
    """
    vae.require_latent("interpolate")
    chosen = random_pairs(len(texts), pairs, seed)
    used = sorted({i for pair in chosen for i in pair})
    tok = vae.tokenizer
    decoded = vae.reconstruct([texts[i] for i in used], check=False)
    back = {i: tok.encode(d) == tok.encode(texts[i]) for i, d in zip(used, decoded)}
    recovered = sum(back[a] and back[b] for a, b in chosen)
    return {"pairs": pairs, "recovered_pairs": recovered, "share": recovered / max(pairs, 1),
            "sentences_recovered": float(np.mean(list(back.values()))), "chosen": chosen}


def path_resemblance(vae: TrainedVAE, texts: Sequence[str], pairs: Sequence[tuple[int, int]],
                     steps: int = 9, kind: str = "linear") -> np.ndarray:
    """How much each point of a path resembles the path's two ends: for each pair (a, b) of
    indices into ``texts``, the greedy decodes of ``steps`` points on the ``kind`` path between
    the posterior means of texts[a] and texts[b], scored by :func:`seqvae.metrics.unigram_f1`
    (over the model's tokens) against texts[a] and against texts[b].

    Returns (pairs, steps, 2): [..., 0] against the start, [..., 1] against the end. A smooth
    homotopy falls from start to end in the first and rises in the second.
    """
    vae.require_latent("interpolate")
    if not len(pairs):
        return np.zeros((0, steps, 2))
    means = vae.encode([texts[i] for pair in pairs for i in pair], check=False)
    points = np.concatenate([latent_path(means[2 * i], means[2 * i + 1], steps, kind)
                             for i in range(len(pairs))])
    tok = vae.tokenizer
    decoded = [tok.encode(d) for d in vae.decode(points)]
    scores = np.zeros((len(pairs), steps, 2))
    for i, (a, b) in enumerate(pairs):
        ends = tok.encode(texts[a]), tok.encode(texts[b])
        for j in range(steps):
            for k in range(2):
                scores[i, j, k] = unigram_f1(ends[k], decoded[i * steps + j])
    return scores


@torch.inference_mode()
def interpolation_fluency(vae: TrainedVAE, lm: TrainedVAE, texts: Sequence[str],
                          pairs: int = 100, steps: int = 7, seed: int = 0) -> dict[str, Any]:
    """How fluent the sentences between two endpoints are: decode ``steps`` points of the
    linear path between the posterior means of random pairs greedily, and score the
    intermediate sentences (endpoints left out) with a language model ``lm`` (a model trained
    with ``--latent-dim 0``: its log p(x) is exact).

    Returns ``nll_per_token`` (total NLL / total tokens, <eos> counted, <bos> not) and the
    number of sentences scored. Lower is more fluent; compare with the LM's own test NLL per
    token.
    """
    vae.require_latent("interpolate")
    if lm.latent_dim:
        raise SeqVAEError("the fluency model must be a language model (trained with "
                          "--latent-dim 0)")
    chosen = random_pairs(len(texts), pairs, seed)
    means = vae.encode([t for pair in chosen for t in (texts[pair[0]], texts[pair[1]])],
                       check=False)
    points = np.concatenate([latent_path(means[2 * i], means[2 * i + 1], steps)[1:-1]
                             for i in range(len(chosen))])
    sentences = vae.decode(points)
    split = TokenizedSplit.from_lists(lm.tokenizer.encode_batch(sentences))
    nll = tokens = 0.0
    for start in range(0, len(split), ROWS_PER_CALL):
        batch, lengths = collate(split, np.arange(start, min(start + ROWS_PER_CALL, len(split))))
        batch = batch.to(lm.model.device)
        z = torch.zeros(batch.size(0), 0, device=lm.model.device)
        nll -= lm.model.log_likelihood(batch, z).sum().item()
        tokens += int((lengths - 1).sum())
    return {"nll_per_token": nll / max(tokens, 1), "sentences": len(sentences),
            "pairs": len(chosen), "steps": steps}
