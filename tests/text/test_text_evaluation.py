"""Interpolation quality (seqvae.text.evaluation) and the API's interpolation, on a tiny
trained sentence VAE."""
from pathlib import Path

import pytest

from seqvae.errors import SeqVAEError
from seqvae.metrics import unigram_f1
from seqvae.text.evaluation import (
    comes_back,
    endpoint_recovery,
    invented_word_share,
    language_model_nll,
    path_resemblance,
    sample_fluency,
    vocabulary,
    words,
)

PTB_SAMPLE = Path(__file__).resolve().parents[2] / "data" / "ptb_sample.txt"


def test_endpoint_recovery(text_vae):
    texts = ["the market fell", "he said", "mr. smith is chairman", "shares rose"]
    r = endpoint_recovery(text_vae, texts, pairs=10, seed=0)
    assert r["pairs"] == 10 and len(r["chosen"]) == 10
    assert all(a != b for a, b in r["chosen"])
    assert 0 <= r["share"] <= 1 and 0 <= r["sentences_recovered"] <= 1
    assert r["recovered_pairs"] == round(r["share"] * 10)
    with pytest.raises(SeqVAEError):
        endpoint_recovery(text_vae, ["one"], pairs=1)


def test_endpoints_can_be_required_to_come_back_under_beam_search(text_vae):
    texts = ["the market fell", "he said", "mr. smith is chairman", "shares rose"]
    tok = text_vae.tokenizer
    by_beam = text_vae.reconstruct(texts, check=False, method="beam", beam_size=3)
    by_hand = [tok.encode(a) == tok.encode(b) for a, b in zip(texts, by_beam)]
    assert comes_back(text_vae, texts, method="beam", beam_size=3) == by_hand
    r = endpoint_recovery(text_vae, texts, pairs=10, seed=0, method="beam", beam_size=3)
    assert r["method"] == "beam" and r["beam_size"] == 3
    from seqvae.cli.report import format_test_pairs
    assert "(beam-search decoding, 3 beams, of the posterior mean" in format_test_pairs(r, [])
    assert r["recovered_pairs"] == sum(by_hand[a] and by_hand[b] for a, b in r["chosen"])
    assert endpoint_recovery(text_vae, texts, pairs=10, seed=0)["method"] == "greedy"
    with pytest.raises(SeqVAEError, match="greedy, beam or rerank"):
        comes_back(text_vae, texts, method="sample")


def test_path_resemblance_scores_each_point_against_both_ends(text_vae):
    texts = ["the market fell", "he said it was fine", "shares rose"]
    scores = path_resemblance(text_vae, texts, [(0, 1), (2, 0)], steps=4, kind="slerp")
    assert scores.shape == (2, 4, 2) and ((scores >= 0) & (scores <= 1)).all()
    # the first point of a path is the greedy decode of its start's posterior mean
    tok = text_vae.tokenizer
    start = text_vae.reconstruct(["the market fell"])[0]
    assert scores[0, 0, 0] == pytest.approx(unigram_f1(tok.encode(texts[0]), tok.encode(start)))
    assert scores[1, -1, 1] == pytest.approx(scores[0, 0, 0])
    assert path_resemblance(text_vae, texts, [], steps=4).shape == (0, 4, 2)


def test_interpolation_goes_from_start_to_end(text_vae):
    path = text_vae.interpolate("the market fell", "he said it was fine", steps=5)
    assert len(path) == 5 and all(isinstance(t, str) for t in path)
    # the ends decode as the sentences reconstruct under the same decoding (rerank by default)
    ends = text_vae.reconstruct(["the market fell", "he said it was fine"], method="rerank")
    assert [path[0], path[-1]] == ends
    greedy = text_vae.interpolate("the market fell", "he said it was fine", steps=5,
                                  method="greedy")
    assert [greedy[0], greedy[-1]] == text_vae.reconstruct(["the market fell",
                                                            "he said it was fine"])
    z = text_vae.prior_codes(2, seed=0)
    assert text_vae.interpolate(z[0], z[1], steps=3, path="slerp") == \
        text_vae.interpolate(z[0], z[1], steps=3, path="slerp")


def test_words_outside_the_vocabulary_do_not_crash(text_vae):
    path = text_vae.interpolate("Zyxwv qqqq the market", "xylophone!!", steps=3)
    assert len(path) == 3


def test_a_language_model_cannot_interpolate(text_lm):
    with pytest.raises(SeqVAEError, match="without a latent"):
        text_lm.interpolate("a", "b")


def test_language_model_nll_is_the_exact_nll_per_token_and_counts_distinct_sentences(text_vae, text_lm):
    import math

    import torch
    tok = text_lm.tokenizer
    sentences = ["the market fell", "he said", "the market fell", "shares rose sharply"]
    r = language_model_nll(text_lm, sentences)
    # by hand: teacher-force each sentence alone through the LM, sum -log p, count tokens
    nll = tokens = 0.0
    for s in sentences:
        x = torch.tensor([[tok.bos_id, *tok.encode(s), tok.eos_id]])
        logits, _ = text_lm.model.forward_decoder(x[:, :-1], torch.zeros(1, 0))
        nll -= torch.log_softmax(logits, -1).gather(2, x[:, 1:, None]).sum().item()
        tokens += x.size(1) - 1
    assert r["nll_per_token"] == pytest.approx(nll / tokens, rel=1e-5)
    assert r["distinct"] == 3 / 4 and r["sentences"] == 4
    assert math.isfinite(r["nll_per_token"]) and r["nll_per_token"] > 0
    with pytest.raises(SeqVAEError, match="language model"):
        language_model_nll(text_vae, sentences)


def test_sample_fluency_scores_the_seeded_prior_samples(text_vae, text_lm):
    r = sample_fluency(text_vae, text_lm, n=12, seed=3)
    assert r["sentences"] == 12 and r["method"] == "sample"
    again = language_model_nll(text_lm, text_vae.sample(12, method="sample", seed=3))
    assert r["nll_per_token"] == pytest.approx(again["nll_per_token"], rel=1e-6)
    assert r["distinct"] == again["distinct"]
    with pytest.raises(SeqVAEError):
        sample_fluency(text_lm, text_lm, n=2)


def test_exact_reconstruction_counts_the_sentences_that_come_back_token_for_token():
    from types import SimpleNamespace

    from seqvae.text.evaluation import exact_reconstruction
    decoded = {"the cat sat": "the cat sat", "a dog ran": "a dog sat", "it rained": "it  rained"}
    fake_vae = SimpleNamespace(reconstruct=lambda texts, check, **_: [decoded[t] for t in texts],
                               tokenizer=SimpleNamespace(encode=str.split))
    # the third differs only in spacing, which the tokenizer does not see: 2 of 3 come back
    assert exact_reconstruction(fake_vae, list(decoded)) == pytest.approx(2 / 3)
    with pytest.raises(SeqVAEError):
        exact_reconstruction(fake_vae, [])


def test_words_are_lower_cased_letters_with_inner_apostrophes():
    assert words("Don't stop, Mary! It's 1961 -- the year's end.") == [
        "don't", "stop", "mary", "it's", "the", "year's", "end"]
    assert words("12 , ; --") == []


def test_invented_word_share_counts_words_absent_from_the_training_sentences():
    known = vocabulary(["The cat sat.", "A dog ran home!"])
    assert known == {"the", "cat", "sat", "a", "dog", "ran", "home"}
    # 2 of 7 words are unknown ("supplementence", "catz"); case and punctuation do not count
    assert invented_word_share(["The supplementence sat,", "a catz ran home."], known) == 2 / 7
    assert invented_word_share(["", "42 !"], known) == 0.0


def test_sample_fluency_counts_the_invented_words_of_the_same_samples(text_vae, text_lm):
    known = {"the", "company"}
    r = sample_fluency(text_vae, text_lm, n=12, seed=3, known_words=known)
    assert r["invented_words"] == invented_word_share(
        text_vae.sample(12, method="sample", seed=3), known)
    assert "invented_words" not in sample_fluency(text_vae, text_lm, n=2, seed=3)


def test_a_literal_unk_of_the_corpus_is_not_an_unknown_word(text_vae):
    # the PTB writes rare words as "<unk>": the model has seen that token, not a new word
    training_text = PTB_SAMPLE.read_text()
    assert "<unk>" in training_text and "zzqxv" not in training_text
    texts = ["the <unk> said", "the zzqxv said", "<unk> zzqxv <unk>"]
    assert text_vae.unknown_tokens(texts) == [0, 1, 1]
