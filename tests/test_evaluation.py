import math

import numpy as np
import pytest

import seqvae
from seqvae.data import TokenizedSplit
from seqvae.evaluation import endpoint_recovery, evaluate_sequences, format_table
from seqvae.errors import SeqVAEError


@pytest.fixture(scope="module")
def vae(trained_text_run):
    return seqvae.load(trained_text_run / "model.pt", device="cpu")


@pytest.fixture(scope="module")
def lm(trained_text_lm):
    return seqvae.load(trained_text_lm / "model.pt", device="cpu")


@pytest.fixture(scope="module")
def sentences(vae):
    lines = ["the company said it will sell its unit", "the market fell sharply",
             "mr. smith is chairman", "shares rose N cents to $ N", "he did n't say"]
    return TokenizedSplit.from_lists(vae.tokenizer.encode_batch(lines))


def test_vae_results_are_consistent(vae, sentences):
    r = evaluate_sequences(vae, sentences, k=64, batch_size=2)
    assert r["n"] == 5 and r["k"] == 64
    assert r["tokens"] == int(sentences.lengths.sum()) + 5          # <eos> counted, <bos> not
    assert r["elbo"] == pytest.approx(-(r["rec"] + r["kl"]))
    assert r["kl"] > 0
    assert r["nll"] <= -r["elbo"] + 0.5                             # IW bound above the ELBO
    assert r["perplexity"] == pytest.approx(math.exp(r["nll"] * 5 / r["tokens"]))
    assert 0 <= r["mutual_information"] <= math.log(5) + 0.5
    assert 0 <= r["active_units"] <= r["latent_dim"] == 4
    assert 0 <= r["exact_match"] <= 1 and 0 <= r["bleu"] <= 1
    assert "perplexity" in format_table(r)


def test_vae_results_are_seeded_and_batch_independent(vae, sentences):
    a = evaluate_sequences(vae, sentences, k=16, batch_size=5, seed=3)
    b = evaluate_sequences(vae, sentences, k=16, batch_size=5, seed=3)
    assert a["nll"] == b["nll"] and a["mutual_information"] == b["mutual_information"]
    # the KL and the greedy reconstructions do not depend on the samples or the batching
    c = evaluate_sequences(vae, sentences, k=16, batch_size=1, seed=4)
    assert c["kl"] == pytest.approx(a["kl"], rel=1e-5)
    assert c["bleu"] == pytest.approx(a["bleu"]) and c["active_units"] == a["active_units"]


def test_language_model_is_exact_with_one_sample(lm, sentences):
    r = evaluate_sequences(lm, sentences, k=500)
    assert r["k"] == 1 and r["latent_dim"] == 0
    assert r["kl"] == 0 and r["mutual_information"] == 0 and r["active_units"] == 0
    assert r["nll"] == pytest.approx(r["rec"], rel=1e-6)          # log p(x) is exact


def test_endpoint_recovery(vae):
    texts = ["the market fell", "he said", "mr. smith is chairman", "shares rose"]
    r = endpoint_recovery(vae, texts, pairs=10, seed=0)
    assert r["pairs"] == 10 and len(r["chosen"]) == 10
    assert all(a != b for a, b in r["chosen"])
    assert 0 <= r["share"] <= 1 and 0 <= r["sentences_recovered"] <= 1
    assert r["recovered_pairs"] == round(r["share"] * 10)
    with pytest.raises(SeqVAEError):
        endpoint_recovery(vae, ["one"], pairs=1)


def test_interpolation_goes_from_start_to_end(vae):
    path = vae.interpolate("the market fell", "he said it was fine", steps=5)
    assert len(path) == 5 and all(isinstance(t, str) for t in path)
    ends = vae.reconstruct(["the market fell", "he said it was fine"])
    assert [path[0], path[-1]] == ends
    z = vae.prior_codes(2, seed=0)
    assert vae.interpolate(z[0], z[1], steps=3, path="slerp") == \
        vae.interpolate(z[0], z[1], steps=3, path="slerp")


def test_words_outside_the_vocabulary_do_not_crash(vae):
    path = vae.interpolate("Zyxwv qqqq the market", "xylophone!!", steps=3)
    assert len(path) == 3


def test_a_language_model_cannot_interpolate(lm):
    with pytest.raises(SeqVAEError, match="without a latent"):
        lm.interpolate("a", "b")
