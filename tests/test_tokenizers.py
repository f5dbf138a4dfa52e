"""Tests for seqvae.tokenizers: exact SMILES tokens, round trips, special ids, persistence."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seqvae.config import TokenizerConfig
from seqvae.errors import SeqVAEError
from seqvae.tokenizers import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    UNK_ID,
    CharTokenizer,
    SentencePieceTokenizer,
    SmilesTokenizer,
    WordTokenizer,
    fit_tokenizer,
    tokenizer_from_state,
)

MOSES_SAMPLE = Path(__file__).parents[1] / "data" / "moses_test_sample.smi"

ENGLISH = [
    "the cat sat on the mat .",
    "a dog ran across the busy street to catch a ball .",
    "she reads the newspaper every morning before work .",
    "the market fell sharply after the report was published .",
    "investors worried about rising interest rates and slower growth .",
    "he said the company would announce new products next year .",
    "we walked along the river until the sun went down .",
    "the children played in the garden while their parents talked .",
    "prices of oil and gold rose for the third day in a row .",
    "my brother bought a new bicycle last weekend .",
    "the committee will meet again on tuesday to discuss the budget .",
    "rain is expected across the north later this week .",
    "they finished the project two weeks ahead of schedule .",
    "the old library closed its doors after a hundred years .",
    "a quick brown fox jumps over the lazy dog .",
    "shares of the bank climbed three percent in early trading .",
    "the teacher asked the students to write a short essay .",
    "our train was delayed by almost an hour this morning .",
    "she plays the piano and sings in a small choir .",
    "the government plans to cut taxes for small businesses .",
    "he forgot his keys and had to wait outside in the cold .",
    "the museum opened a new exhibition of modern paintings .",
    "analysts expect profits to improve in the second quarter .",
    "the river flooded several villages after the heavy storms .",
    "i would like a cup of coffee with milk , please .",
    "the airline cancelled dozens of flights because of the snow .",
    "scientists discovered a new species of frog in the forest .",
    "the players celebrated their victory late into the night .",
    "she moved to the city to study medicine at the university .",
    "the factory produces about five thousand cars each month .",
]


def smiles_tok(texts):
    return fit_tokenizer(TokenizerConfig(kind="smiles"), texts, "smiles")


def all_kinds():
    """One fitted tokenizer of each kind, with a probe text it can encode."""
    mols = ["CC(=O)Oc1ccccc1C(=O)O", "Clc1ccc(Br)cc1", "C[C@@H](N)C(=O)[O-]", "c1cc[nH]c1"]
    return [
        (smiles_tok(mols), "C[C@@H](Cl)c1cc[nH]c1Xq"),
        (fit_tokenizer(TokenizerConfig(kind="char"), mols, "smiles"), "CC(=O)N[Q]"),
        (fit_tokenizer(TokenizerConfig(kind="word"), ENGLISH, "text"), "the cat saw a zebra ."),
        (fit_tokenizer(TokenizerConfig(kind="sentencepiece", vocab_size=80), ENGLISH, "text"),
         "the dog read a book about zebras ."),
    ]


# --- SMILES regex -------------------------------------------------------------------------

@pytest.mark.parametrize("smiles, tokens", [
    ("CC(=O)Oc1ccccc1C(=O)O",
     ["C", "C", "(", "=", "O", ")", "O", "c", "1", "c", "c", "c", "c", "c", "1", "C", "(", "=",
      "O", ")", "O"]),
    ("Clc1ccc(Br)cc1", ["Cl", "c", "1", "c", "c", "c", "(", "Br", ")", "c", "c", "1"]),
    ("C[C@@H](N)C(=O)[O-]", ["C", "[C@@H]", "(", "N", ")", "C", "(", "=", "O", ")", "[O-]"]),
    ("c1cc[nH]c1", ["c", "1", "c", "c", "[nH]", "c", "1"]),
    ("C%10CC%10", ["C", "%10", "C", "C", "%10"]),
    ("C%12CC1CC%12C1", ["C", "%12", "C", "C", "1", "C", "C", "%12", "C", "1"]),
    ("F/C=C/F", ["F", "/", "C", "=", "C", "/", "F"]),
    ("F/C=C\\F", ["F", "/", "C", "=", "C", "\\", "F"]),
    ("[NH3+]CC#N.[Cl-]", ["[NH3+]", "C", "C", "#", "N", ".", "[Cl-]"]),
    ("C1:C~C-*", ["C", "1", ":", "C", "~", "C", "-", "*"]),
])
def test_smiles_regex_tokens(smiles, tokens):
    tok = smiles_tok([smiles])
    assert [tok.id_to_token(i) for i in tok.encode(smiles)] == tokens
    assert tok.decode(tok.encode(smiles)) == smiles


def test_smiles_regex_keeps_odd_characters():
    # Characters outside any SMILES rule are single tokens, never dropped: the catch-all.
    tok = smiles_tok(["CCO"])
    for odd in ["C C", "C[", "[C", "%1C", "C\nO", "Cé€"]:
        ids = tok.encode(odd)
        assert len(ids) == len(odd)
        assert all(i == UNK_ID for i, ch in zip(ids, odd) if ch not in "CO")


# --- round trips on real data -------------------------------------------------------------

def moses_sample():
    assert MOSES_SAMPLE.exists(), f"test fixture {MOSES_SAMPLE} is missing"
    mols = [line.strip() for line in MOSES_SAMPLE.read_text().splitlines() if line.strip()]
    assert len(mols) >= 500
    return mols


@pytest.mark.parametrize("kind", ["smiles", "char"])
def test_moses_round_trip(kind):
    mols = moses_sample()
    tok = fit_tokenizer(TokenizerConfig(kind=kind), mols[:800], "smiles")
    in_vocab = [m for m in mols if UNK_ID not in tok.encode(m)]
    assert len(in_vocab) >= 0.99 * len(mols)
    assert all(tok.decode(tok.encode(m)) == m for m in in_vocab)
    assert tok.encode_batch(mols) == [tok.encode(m) for m in mols]


def test_word_round_trip_on_normalised_whitespace():
    tok = fit_tokenizer(TokenizerConfig(kind="word"), ENGLISH, "text")
    for s in ENGLISH:
        assert tok.decode(tok.encode("  " + s.replace(" ", " \t ") + "\n")) == s
    assert tok.encode("") == [] and tok.encode(" \t\n ") == []


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_sentencepiece_round_trip(model_type):
    config = TokenizerConfig(kind="sentencepiece", vocab_size=80, sp_model_type=model_type)
    tok = fit_tokenizer(config, ENGLISH, "text")
    assert isinstance(tok, SentencePieceTokenizer)
    for s in ENGLISH:
        ids = tok.encode(s)
        assert UNK_ID not in ids
        assert tok.decode(ids) == s
    # Subwords should be shorter than the characters of the text.
    assert sum(map(len, tok.encode_batch(ENGLISH))) < 0.8 * sum(map(len, ENGLISH))
    assert tok.encode_batch(ENGLISH) == [tok.encode(s) for s in ENGLISH]


def test_sentencepiece_fit_is_deterministic_and_lowercases():
    config = TokenizerConfig(kind="sentencepiece", vocab_size=80, lowercase=True)
    a = fit_tokenizer(config, ENGLISH, "text")
    b = fit_tokenizer(config, ENGLISH, "text")
    assert a.state_dict() == b.state_dict()
    assert a.encode("The CAT sat .") == a.encode("the cat sat .")


# --- special ids, eos/pad/bos handling, unknowns ------------------------------------------

def test_special_ids_are_the_same_in_every_tokenizer():
    for tok, _ in all_kinds():
        assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
        assert [tok.token_to_id(t) for t in ("<pad>", "<bos>", "<eos>", "<unk>")] == [0, 1, 2, 3]
        assert [tok.id_to_token(i) for i in range(4)] == ["<pad>", "<bos>", "<eos>", "<unk>"]


def test_decode_skips_pad_bos_and_stops_at_eos():
    for tok, probe in all_kinds():
        ids = tok.encode(probe)
        expected = tok.decode(ids)
        framed = [BOS_ID] + ids + [EOS_ID] + ids + [PAD_ID, PAD_ID]
        assert tok.decode(framed) == expected
        assert tok.decode(np.array(framed)) == expected
        assert tok.decode(torch.tensor(framed)) == expected
        assert tok.decode([BOS_ID, PAD_ID] + ids[:1] + [PAD_ID] + ids[1:]) == expected
        assert tok.decode([EOS_ID] + ids) == ""
        with pytest.raises(ValueError):
            tok.decode([tok.vocab_size])


def test_unseen_input_maps_to_unk():
    for tok, probe in all_kinds():
        for text in [probe, "ℤ∑ \x00 😀 [Xx] <eos> <pad>", ""]:
            ids = tok.encode(text)
            assert all(0 <= i < tok.vocab_size for i in ids)
            # encode() never emits the framing ids, even for a literal "<eos>" in the text.
            assert not {PAD_ID, BOS_ID, EOS_ID} & set(ids)
    smiles, char, word, _ = (t for t, _ in all_kinds())
    assert smiles.decode(smiles.encode("C[Xe]C")) == "C<unk>C"
    assert char.decode(char.encode("CZC")) == "C<unk>C"
    assert word.decode(word.encode("the zebra sat")) == "the <unk> sat"


def test_word_literal_unk_gets_the_unk_id():
    tok = WordTokenizer.fit(["a <unk> b", "<unk> <unk> c"])
    assert tok.encode("a <unk> c") == [tok.token_to_id("a"), UNK_ID, tok.token_to_id("c")]
    assert tok.vocab_size == 4 + 3  # <unk> did not get a second id


def test_word_min_freq_vocabulary():
    corpus = ["b a a", "c b a", "e c b a", "d"]  # a:4 b:3 c:2 e:1 d:1
    tok = fit_tokenizer(TokenizerConfig(kind="word", min_freq=2), corpus, "text")
    assert tok.tokens == ["<pad>", "<bos>", "<eos>", "<unk>", "a", "b", "c"]
    assert tok.encode("a d c e") == [4, UNK_ID, 6, UNK_ID]
    tok1 = fit_tokenizer(TokenizerConfig(kind="word", min_freq=1), corpus, "text")
    assert tok1.tokens[4:] == ["a", "b", "c", "d", "e"]  # ties broken alphabetically
    lower = fit_tokenizer(TokenizerConfig(kind="word", min_freq=2, lowercase=True),
                          ["A a", "B b", "C"], "text")
    assert lower.tokens[4:] == ["a", "b"] and lower.encode("A B c") == [4, 5, UNK_ID]


def test_vocabulary_order_is_deterministic():
    mols = moses_sample()[:300]
    a, b = smiles_tok(mols), smiles_tok(list(reversed(mols)))
    assert a.tokens == b.tokens
    counts = [sum(m.count(t) for m in mols) for t in ("c", "C")]
    assert a.tokens[4] == ("c" if counts[0] > counts[1] else "C")


# --- persistence and dispatch -------------------------------------------------------------

def test_state_dict_survives_weights_only_load():
    lowercase = TokenizerConfig(kind="word", lowercase=True)
    lower_sp = TokenizerConfig(kind="sentencepiece", vocab_size=80, lowercase=True)
    for tok, probe in all_kinds() + [(fit_tokenizer(lowercase, ENGLISH, "text"), "The CAT"),
                                     (fit_tokenizer(lower_sp, ENGLISH, "text"), "The CAT")]:
        buf = io.BytesIO()
        torch.save({"tokenizer": tok.state_dict()}, buf)
        buf.seek(0)
        state = torch.load(buf, weights_only=True)["tokenizer"]
        again = tokenizer_from_state(state)
        assert type(again) is type(tok) and again.vocab_size == tok.vocab_size
        for text in [probe, ENGLISH[3], "CC(=O)O"]:
            assert again.encode(text) == tok.encode(text)
            assert again.decode(tok.encode(text)) == tok.decode(tok.encode(text))


def test_bad_state_is_a_seqvae_error():
    with pytest.raises(SeqVAEError):
        tokenizer_from_state({"kind": "morse"})
    with pytest.raises(SeqVAEError):
        tokenizer_from_state({"kind": "smiles", "tokens": ["C", "O"]})
    with pytest.raises(SeqVAEError):
        tokenizer_from_state({"kind": "sentencepiece", "model": b"not a model"})


def test_fit_tokenizer_auto_and_errors():
    auto = TokenizerConfig(kind="auto")
    assert isinstance(fit_tokenizer(auto, ["CCO", "c1ccccc1"], "smiles"), SmilesTokenizer)
    assert isinstance(fit_tokenizer(auto, ["a b", "c"], "text"), WordTokenizer)
    assert isinstance(fit_tokenizer(TokenizerConfig(kind="char"), ["a b"], "text"), CharTokenizer)
    with pytest.raises(SeqVAEError):
        fit_tokenizer(TokenizerConfig(kind="bytes"), ["CCO"], "smiles")
    with pytest.raises(SeqVAEError):
        fit_tokenizer(auto, [], "smiles")
    with pytest.raises(SeqVAEError):  # fewer pieces than distinct characters
        fit_tokenizer(TokenizerConfig(kind="sentencepiece", vocab_size=10), ENGLISH, "text")


# --- properties ---------------------------------------------------------------------------

# No 'B', 'l', 'r', '%', '[' or ']': every character of this alphabet is a SMILES token alone,
# so any string over it consists of tokens seen in training.
ALPHABET = "CNOScnos()=#-+123456789@/\\.*"
FIXED = [smiles_tok([ALPHABET]), CharTokenizer.fit([ALPHABET])]


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_text_encodes_in_range(text):
    for tok in FIXED:
        ids = tok.encode(text)
        assert all(0 <= i < tok.vocab_size for i in ids)
        if UNK_ID not in ids:
            assert tok.decode(ids) == text


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=ALPHABET))
def test_training_alphabet_round_trips(text):
    for tok in FIXED:
        ids = tok.encode(text)
        assert UNK_ID not in ids
        assert tok.decode(ids) == text
        assert tok.encode_batch([text, text]) == [ids, ids]


WORD = WordTokenizer.fit(["the cat sat on the mat", "a dog ran"])
SENTENCEPIECE = SentencePieceTokenizer.fit(
    ["the cat sat on the mat", "a dog ran far away", "cats and dogs sat", "on the mat again"] * 5,
    vocab_size=40)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_text_tokenizers_take_any_string(text):
    for tok in (WORD, SENTENCEPIECE):
        ids = tok.encode(text)
        assert all(0 <= i < tok.vocab_size for i in ids)
        assert not {PAD_ID, BOS_ID, EOS_ID} & set(ids)  # text can never end a sequence early
        assert isinstance(tok.decode(ids), str)
    assert WORD.decode(WORD.encode(text)).split() == [
        w if w in WORD.tokens[3:] else "<unk>" for w in text.split()]  # specials read as <unk>


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=39), max_size=30))
def test_decode_takes_any_id_sequence(ids):
    for tok in FIXED + [WORD, SENTENCEPIECE]:
        ids_in_range = [i % tok.vocab_size for i in ids]
        assert isinstance(tok.decode(ids_in_range), str)


def test_selfies_round_trip_and_every_decode_is_a_molecule(smiles_file):
    import random

    from seqvae.molecules.chemistry import canonical, is_valid
    from seqvae.tokenizers import SelfiesTokenizer, tokenizer_from_state
    smiles = smiles_file.read_text().split()[:300]
    tok = SelfiesTokenizer.fit(smiles)
    assert all(canonical(tok.decode(tok.encode(s))) == canonical(s) for s in smiles)
    assert tok.encode("C1CC") == []                        # no molecule, no tokens
    rng = random.Random(0)
    for _ in range(200):                                    # random symbol strings: all valid
        ids = [rng.randrange(4, tok.vocab_size) for _ in range(rng.randrange(1, 30))]
        assert is_valid(tok.decode(ids)) or tok.decode(ids) == ""
    assert tok.decode([4, UNK_ID, 5]) == tok.decode([4, 5])
    again = tokenizer_from_state(tok.state_dict())
    assert again.encode(smiles[0]) == tok.encode(smiles[0])


def test_selfies_needs_a_smiles_corpus():
    from seqvae.config import TokenizerConfig
    with pytest.raises(SeqVAEError, match="selfies"):
        fit_tokenizer(TokenizerConfig(kind="selfies"), ["a sentence"], "text")


def test_selfies_large_batches_are_translated_in_parallel_with_the_same_result(smiles_file,
                                                                              monkeypatch):
    import os

    import seqvae.tokenizers.library as tokenizers
    from seqvae.tokenizers import SelfiesTokenizer
    smiles = smiles_file.read_text().split()[:200] + ["C1CC"]
    serial = SelfiesTokenizer.fit(smiles)
    monkeypatch.setattr(tokenizers, "SELFIES_PARALLEL_MIN", 10)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)   # a pool even on one core
    parallel = SelfiesTokenizer.fit(smiles)
    assert parallel.state_dict() == serial.state_dict()
    assert parallel.encode_batch(smiles) == [serial.encode(s) for s in smiles]


def test_the_word_tokenizer_refuses_smiles():
    # every molecule would be a "word" of its own: a vocabulary the size of the corpus
    with pytest.raises(SeqVAEError, match="word tokenizer"):
        fit_tokenizer(TokenizerConfig(kind="word"), ["CCO", "c1ccccc1"], "smiles")


def test_kekule_tokenizer_writes_no_aromatic_atom_and_round_trips(smiles_file, monkeypatch):
    import os

    import seqvae.tokenizers.base as base
    from seqvae.molecules.chemistry import canonical
    smiles = smiles_file.read_text().split()[:300]
    assert any("c" in s for s in smiles)                    # the sample has aromatic rings
    tok = fit_tokenizer(TokenizerConfig(kind="smiles", kekulize=True), smiles, "smiles")
    assert not [t for t in tok.tokens[4:] if t[:1].islower() or t in ("[nH]", "[n+]")]
    assert tok.encode("c1ccccc1") == tok.encode("C1=CC=CC=C1")
    assert tok.decode(tok.encode("c1ccccc1O")) == "OC1=CC=CC=C1"
    assert all(canonical(tok.decode(tok.encode(s))) == canonical(s) for s in smiles)
    assert tok.state_dict()["kekulize"] is True
    assert tokenizer_from_state(tok.state_dict()).encode(smiles[0]) == tok.encode(smiles[0])
    # A string RDKit cannot read is split as it is (its aromatic tokens are unknown here).
    assert UNK_ID in tok.encode("c1cc")
    # The plain tokenizer's state is as it was before the option existed.
    plain = fit_tokenizer(TokenizerConfig(kind="smiles"), smiles, "smiles")
    assert "kekulize" not in plain.state_dict() and "c" in plain.tokens
    # Large batches are rewritten on every core, with the same result.
    monkeypatch.setattr(base, "KEKULE_PARALLEL_MIN", 10)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert tok.encode_batch(smiles[:50]) == [tok.encode(s) for s in smiles[:50]]


def test_kekulize_is_for_the_smiles_tokenizer():
    with pytest.raises(SeqVAEError, match="kekulize"):
        fit_tokenizer(TokenizerConfig(kind="char", kekulize=True), ["CCO"], "smiles")
