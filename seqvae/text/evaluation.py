"""How well interpolation works: endpoints that come back, paths whose points resemble their
ends (Bowman et al. 2016's homotopies, scored), and the fluency of the sentences between them
under a language model, and the words a subword model invents."""
from __future__ import annotations

import re
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from ..api import TrainedVAE
from ..data import TokenizedSplit, collate
from ..decoding import DEFAULT_BEAM_SIZE
from ..errors import SeqVAEError
from ..metrics import unigram_f1
from .interpolation import path as latent_path

# Sentences scored per language-model call, bounding memory.
ROWS_PER_CALL = 1024
# A word: letters, with inner apostrophes ("don't", "o'clock"); digits and punctuation are not.
WORD = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*")
# The decodings under which a sentence can come back (sampling gives a new one each time).
RECONSTRUCTION_METHODS = ("greedy", "beam", "rerank")


def words(text: str) -> list[str]:
    """The lower-cased words of a sentence ("Don't stop, Mary!" -> ["don't", "stop", "mary"])."""
    return [w.lower() for w in WORD.findall(text)]


def vocabulary(texts: Iterable[str]) -> set[str]:
    """Every word of ``texts`` (e.g. the training sentences), lower-cased."""
    return {w for text in texts for w in words(text)}


def invented_word_share(sentences: Sequence[str], known: set[str]) -> float:
    """The share of the words of ``sentences`` that are not in ``known``. A subword model can
    spell words no one wrote ("supplementence"), which a language model over the same pieces
    hardly punishes; a reader does. 0 when there are no words."""
    found = [w for s in sentences for w in words(s)]
    return sum(w not in known for w in found) / len(found) if found else 0.0


def short_texts(texts: Sequence[str], max_words: int | None) -> list[str]:
    """The texts of at most ``max_words`` whitespace-separated words (None: all of them)."""
    return [t for t in texts if max_words is None or len(t.split()) <= max_words]


def comes_back(vae: TrainedVAE, texts: Sequence[str], method: str = "greedy",
               beam_size: int | None = None) -> list[bool]:
    """For each of ``texts``: does it come back exactly, as the tokenizer reads it, when it is
    encoded to its posterior mean and decoded greedily (``method="beam"``: by a beam search of
    ``beam_size``; ``"rerank"``: the beam's candidate that re-encodes nearest)?"""
    if method not in RECONSTRUCTION_METHODS:
        raise SeqVAEError("a sentence comes back under greedy, beam or rerank decoding, "
                          f"not {method!r}")
    tok = vae.tokenizer
    back = vae.reconstruct(texts, check=False, method=method, beam_size=beam_size)
    return [tok.encode(a) == tok.encode(b) for a, b in zip(texts, back)]


def exact_reconstruction(vae: TrainedVAE, texts: Sequence[str], method: str = "greedy",
                         beam_size: int | None = None) -> float:
    """The share of ``texts`` that :func:`comes_back` (under ``method``)."""
    if not texts:
        raise SeqVAEError("no sentences to reconstruct")
    return sum(comes_back(vae, texts, method, beam_size)) / len(texts)


def random_pairs(n: int, pairs: int, seed: int) -> list[tuple[int, int]]:
    """``pairs`` seeded random pairs of distinct indices below ``n``."""
    if n < 2:
        raise SeqVAEError("interpolation pairs need at least two sentences")
    rng = np.random.default_rng(seed)
    return [tuple(rng.choice(n, size=2, replace=False).tolist()) for _ in range(pairs)]


def endpoint_recovery(vae: TrainedVAE, texts: Sequence[str], pairs: int = 100,
                      seed: int = 0, method: str = "greedy",
                      beam_size: int | None = None) -> dict[str, Any]:
    """The share of random pairs of ``texts`` whose two endpoints, encoded to their posterior
    means and decoded greedily (or by beam search: :func:`comes_back`), come back as themselves
    (as the tokenizer reads them).

    Returns the share, the number of pairs, the pairs (index pairs into ``texts``) and the
    decoding method.
    """
    vae.require_latent("interpolate")
    chosen = random_pairs(len(texts), pairs, seed)
    used = sorted({i for pair in chosen for i in pair})
    back = dict(zip(used, comes_back(vae, [texts[i] for i in used], method, beam_size)))
    recovered = sum(back[a] and back[b] for a, b in chosen)
    return {"pairs": pairs, "recovered_pairs": recovered, "share": recovered / max(pairs, 1),
            "sentences_recovered": float(np.mean(list(back.values()))), "chosen": chosen,
            "method": method,
            "beam_size": beam_size or DEFAULT_BEAM_SIZE[method] if method != "greedy" else None}


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
def language_model_nll(lm: TrainedVAE, sentences: Sequence[str]) -> dict[str, Any]:
    """How fluent ``sentences`` read to a language model ``lm`` (a model trained with
    ``--latent-dim 0``, whose log p(x) is exact): the total NLL over the total number of
    tokens (<eos> counted, <bos> not), and the share of the sentences that are distinct (a
    score that a model could earn by repeating one fluent sentence is not fluency).

    Returns ``nll_per_token``, ``distinct`` (a share) and ``sentences`` (their number)."""
    if lm.latent_dim:
        raise SeqVAEError("the fluency model must be a language model (trained with "
                          "--latent-dim 0)")
    split = TokenizedSplit.from_lists(lm.tokenizer.encode_batch(list(sentences)))
    nll = tokens = 0.0
    for start in range(0, len(split), ROWS_PER_CALL):
        batch, lengths = collate(split, np.arange(start, min(start + ROWS_PER_CALL, len(split))))
        batch = batch.to(lm.model.device)
        z = torch.zeros(batch.size(0), 0, device=lm.model.device)
        nll -= lm.model.log_likelihood(batch, z).sum().item()
        tokens += int((lengths - 1).sum())
    return {"nll_per_token": nll / max(tokens, 1),
            "distinct": len(set(sentences)) / max(len(sentences), 1),
            "sentences": len(sentences)}


def interpolation_fluency(vae: TrainedVAE, lm: TrainedVAE, texts: Sequence[str],
                          pairs: int = 100, steps: int = 7, seed: int = 0,
                          known_words: set[str] | None = None,
                          method: str = "greedy") -> dict[str, Any]:
    """How fluent the sentences between two endpoints are: decode ``steps`` points of the
    linear path between the posterior means of random pairs (greedily, or by ``method``: see
    :meth:`TrainedVAE.decode`), and score the
    intermediate sentences (endpoints left out) with :func:`language_model_nll`.

    Returns its ``nll_per_token``, ``distinct`` and ``sentences``, and the ``pairs`` and
    ``steps``; with ``known_words``, also the :func:`invented_word_share` of the sentences
    (``invented_words``). Lower NLL is more fluent; compare it with the same LM's NLL per token
    on real sentences (``language_model_nll(lm, texts)``).
    """
    vae.require_latent("interpolate")
    chosen = random_pairs(len(texts), pairs, seed)
    means = vae.encode([t for pair in chosen for t in (texts[pair[0]], texts[pair[1]])],
                       check=False)
    points = np.concatenate([latent_path(means[2 * i], means[2 * i + 1], steps)[1:-1]
                             for i in range(len(chosen))])
    sentences = vae.decode(points, method=method)
    return {**language_model_nll(lm, sentences), "pairs": len(chosen), "steps": steps,
            "method": method,
            **_invented(sentences, known_words)}


def sample_fluency(vae: TrainedVAE, lm: TrainedVAE, n: int = 500, seed: int = 0,
                   method: str = "sample", known_words: set[str] | None = None) -> dict[str, Any]:
    """:func:`language_model_nll` of ``n`` prior samples: z ~ N(0, I) decoded by ``method``
    (``sample``, at temperature 1, is what ``seqvae sample`` prints by default); with
    ``known_words`` also their ``invented_words`` share."""
    vae.require_latent("sample")
    sentences = vae.sample(n, method=method, seed=seed)
    return {**language_model_nll(lm, sentences), "method": method,
            **_invented(sentences, known_words)}


def _invented(sentences: Sequence[str], known_words: set[str] | None) -> dict[str, float]:
    return {} if known_words is None else {
        "invented_words": invented_word_share(sentences, known_words)}


def reader_measures(vae: TrainedVAE, lm: TrainedVAE, short: Sequence[str], pairs: int = 100,
                    samples: int = 500, seed: int = 0,
                    known_words: set[str] | None = None,
                    method: str = "greedy") -> dict[str, Any]:
    """What ``seqvae evaluate --lm`` reports of how the model's sentences read: the LM NLL per
    token of the real ``short`` sentences (the yardstick), of the midpoints of ``pairs`` paths
    between them (:func:`interpolation_fluency`) and of ``samples`` prior samples
    (:func:`sample_fluency`), the last two also as ratios to the first and as shares of
    distinct sentences; with ``known_words``, the :func:`invented_word_share` of all three.
    ``method`` decodes the midpoints (the samples are always temperature samples)."""
    real = language_model_nll(lm, short)
    fluency = interpolation_fluency(vae, lm, short, pairs=pairs, seed=seed,
                                    known_words=known_words, method=method)
    sampled = sample_fluency(vae, lm, n=samples, seed=seed, known_words=known_words)
    result = {"real_fluency": real["nll_per_token"],
              "interpolation_fluency": fluency["nll_per_token"],
              "interpolation_fluency_ratio": fluency["nll_per_token"] / real["nll_per_token"],
              "interpolation_distinct": fluency["distinct"],
              "interpolation_sentences": fluency["sentences"],
              "sample_fluency": sampled["nll_per_token"],
              "sample_fluency_ratio": sampled["nll_per_token"] / real["nll_per_token"],
              "sample_distinct": sampled["distinct"], "lm_samples": sampled["sentences"]}
    if known_words is not None:
        result.update(real_invented_words=invented_word_share(short, known_words),
                      interpolation_invented_words=fluency["invented_words"],
                      sample_invented_words=sampled["invented_words"])
    return result
