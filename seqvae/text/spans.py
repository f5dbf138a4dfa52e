"""Training on spans of sentences: more distinct sequences for the autoencoder to copy.

On the Brown corpus the shipped model gives back 97% of its training sentences of 10-14
pieces but 40% of validation ones (docs/results/brown.md): with 51,000 sentences its decoder
learns to recall the sentences it has seen more than to write out what an unseen code says.
Replacing a share of each batch's sentences by random word-aligned spans of themselves (a new
span each time a sentence is drawn) shows it far more distinct sequences over the same words,
a cropping augmentation as used for sequence models of small corpora. The spans are not
sentences, so the decoder also learns to write fragments; the validation columns say what that
costs.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..tokenizers import Tokenizer
from ..tokenizers.base import SPECIALS

SPAN_MIN_WORDS = 3  # shortest span; a sentence this short or shorter is kept whole


def word_starts(tokenizer: Tokenizer) -> np.ndarray:
    """(V,) bool: the ids that begin a word, where a span may start or end before.

    Sentencepiece marks a word's first piece with '▁'; for a tokenizer of whole words every
    token begins one. The special tokens never do.
    """
    V = tokenizer.vocab_size
    if tokenizer.kind == "sentencepiece":
        starts = np.array([tokenizer.id_to_token(i).startswith("▁") for i in range(V)])
    else:
        starts = np.ones(V, dtype=bool)
    starts[:len(SPECIALS)] = False
    return starts


def random_spans(seqs: Sequence[Sequence[int]], share: float, starts: np.ndarray,
                 rng: np.random.Generator, min_words: int = SPAN_MIN_WORDS) -> list[list[int]]:
    """Replace each sequence, with probability ``share``, by a random span of its words.

    A sequence of n words (a word: a token that ``starts`` marks, and the tokens after it up to
    the next such token) becomes words a..b-1 for a span length b - a drawn uniformly from
    [min_words, n] and a start drawn uniformly; one of at most ``min_words`` words, or drawn
    to stay whole, is kept as it is.

    Args:
        seqs: token ids without <bos>/<eos>.
        share: probability of replacing each sequence, in [0, 1].
        starts: (V,) bool from :func:`word_starts`.
        rng: the draws (seed it by the step, so that a resumed run sees the same spans).
    Returns:
        the new sequences (lists of ids).
    """
    out = []
    for seq in seqs:
        seq = list(seq)
        if rng.random() >= share:
            out.append(seq)
            continue
        bounds = np.flatnonzero(starts[seq])
        if not len(bounds) or bounds[0] != 0:
            bounds = np.r_[0, bounds]       # the first token begins the first word regardless
        n = len(bounds)
        if n <= min_words:
            out.append(seq)
            continue
        length = int(rng.integers(min_words, n + 1))
        first = int(rng.integers(0, n - length + 1))
        end = bounds[first + length] if first + length < n else len(seq)
        out.append(seq[bounds[first]:end])
    return out
