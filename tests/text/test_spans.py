"""Training on word-aligned spans of sentences (seqvae.text.spans)."""
import numpy as np
import pytest

from seqvae.text.spans import random_spans, word_starts
from seqvae.tokenizers import SentencePieceTokenizer, WordTokenizer

# ids 0-3 are the specials; 4-7 begin a word, 8-9 continue one
STARTS = np.array([False] * 4 + [True] * 4 + [False] * 2)
SENTENCE = [4, 8, 5, 6, 9, 9, 7, 4, 5]    # words: [4 8] [5] [6 9 9] [7] [4] [5]
WORDS = [0, 2, 3, 6, 7, 8]                # where each word begins


def test_share_zero_keeps_every_sentence():
    rng = np.random.default_rng(0)
    assert random_spans([SENTENCE, [4, 5]], 0.0, STARTS, rng) == [SENTENCE, [4, 5]]


@pytest.mark.parametrize("seed", range(20))
def test_every_span_is_whole_words_of_the_sentence(seed):
    span, = random_spans([SENTENCE], 1.0, STARTS, np.random.default_rng(seed))
    bounds = WORDS + [len(SENTENCE)]
    starts = [a for a in WORDS if SENTENCE[a:a + len(span)] == span]
    assert starts, f"{span} is not a contiguous part of the sentence"
    a = starts[0]
    assert a + len(span) in bounds                         # ends before a word or at the end
    assert sum(STARTS[t] for t in span) >= 3               # at least three words


def test_spans_vary_and_reach_both_ends():
    spans = {tuple(s) for s in random_spans([SENTENCE] * 300, 1.0, STARTS,
                                            np.random.default_rng(1))}
    assert len(spans) >= 10
    assert any(s[0] == SENTENCE[0] and len(s) < len(SENTENCE) for s in spans)
    assert any(list(s) == SENTENCE[-len(s):] and len(s) < len(SENTENCE) for s in spans)
    assert tuple(SENTENCE) in spans                        # the whole is one of the spans


def test_short_sentences_and_a_first_piece_without_a_word_mark():
    rng = np.random.default_rng(0)
    assert random_spans([[4, 8, 5, 6]], 1.0, STARTS, rng) == [[4, 8, 5, 6]]   # three words
    # a sentence that begins with a continuation piece: its first word starts at 0 anyway
    out = random_spans([[8, 4, 5, 6, 7]] * 50, 1.0, STARTS, rng)
    assert all(len(s) >= 3 for s in out) and [8, 4, 5] in out


def test_the_share_is_a_probability():
    out = random_spans([SENTENCE] * 2000, 0.3, STARTS, np.random.default_rng(2))
    changed = sum(s != SENTENCE for s in out) / 2000
    # six words: a span's length is uniform over 3..6, and only length 6 is the whole
    # sentence, so 0.3 * 3/4 = 0.225 of the sentences change
    assert 0.19 < changed < 0.26


def test_word_starts_of_sentencepiece_and_of_words():
    texts = ["the cat sat on the mat", "a dog sat on a log", "the cat and the dog"] * 20
    sp = SentencePieceTokenizer.fit(texts, vocab_size=30)
    starts = word_starts(sp)
    assert not starts[:4].any()
    for i in range(4, sp.vocab_size):
        assert starts[i] == sp.id_to_token(i).startswith("▁")
    words = WordTokenizer.fit(texts)
    assert not word_starts(words)[:4].any() and word_starts(words)[4:].all()
