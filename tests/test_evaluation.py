import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from seqvae.data import TokenizedSplit
from seqvae.errors import SeqVAEError
from seqvae.evaluation import bleu_units, evaluate_sequences, format_table


@pytest.fixture(scope="module")
def sentences(text_vae):
    lines = ["the company said it will sell its unit", "the market fell sharply",
             "mr. smith is chairman", "shares rose N cents to $ N", "he did n't say"]
    return TokenizedSplit.from_lists(text_vae.tokenizer.encode_batch(lines))


def _one_by_one(text_vae, sentences):
    """Each sentence alone, as [<bos>, ids, <eos>] (1, T), with no batching or padding."""
    tok = text_vae.tokenizer
    return [torch.tensor([[tok.bos_id, *sentences[i].tolist(), tok.eos_id]])
            for i in range(len(sentences))]


def _log_p_x_given_z(model, x, z):
    """log p(x|z) by teacher forcing, summed over the targets: x (1, T), z (S, D) -> (S,)."""
    x = x.expand(z.size(0), -1)
    logits, _ = model.forward_decoder(x[:, :-1], z)
    return torch.log_softmax(logits, -1).gather(2, x[:, 1:, None]).squeeze(2).sum(1)


@torch.no_grad()
def test_vae_results_against_hand_computed_terms(text_vae, sentences):
    r = evaluate_sequences(text_vae, sentences, k=64, batch_size=2)
    assert r["n"] == 5 and r["k"] == 64
    model, xs = text_vae.model, _one_by_one(text_vae, sentences)
    assert r["tokens"] == sum(x.size(1) - 1 for x in xs)            # <eos> counted, <bos> not
    # KL(N(mu, sigma^2) || N(0, I)) in closed form, one sentence at a time
    kls, recs = [], []
    gen = torch.Generator().manual_seed(123)
    for x in xs:
        mu, logvar = model.forward_encoder(x, torch.tensor([x.size(1)]))
        kls.append(0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum().item())
        z = mu + (0.5 * logvar).exp() * torch.randn(4000, mu.size(1), generator=gen)
        recs.append(-_log_p_x_given_z(model, x, z).mean().item())   # E_q[-log p(x|z)], 4000 draws
    assert r["kl"] == pytest.approx(np.mean(kls), rel=1e-4)
    assert r["kl"] > 0
    assert r["rec"] == pytest.approx(np.mean(recs), abs=0.3)        # 64 draws against 4000
    assert r["elbo"] == pytest.approx(-(np.mean(recs) + np.mean(kls)), abs=0.3)
    assert -r["elbo"] - 1.0 <= r["nll"] <= -r["elbo"] + 0.5         # IW bound at or above the ELBO
    assert r["perplexity"] == pytest.approx(math.exp(r["nll"] * 5 / r["tokens"]))
    assert 0 <= r["mutual_information"] <= math.log(5) + 0.5
    assert 0 <= r["active_units"] <= r["latent_dim"] == 4
    # exact match: the greedy decodes of the means, compared with the inputs by hand
    lines = [text_vae.tokenizer.decode(sentences[i].tolist()) for i in range(5)]
    back = text_vae.reconstruct(lines)
    assert r["exact_match"] == pytest.approx(np.mean([a == b for a, b in zip(back, lines)]))
    assert 0 <= r["bleu"] <= 1
    assert "perplexity" in format_table(r)


def test_vae_results_are_seeded_and_batch_independent(text_vae, sentences, monkeypatch):
    a = evaluate_sequences(text_vae, sentences, k=16, batch_size=5, seed=3)
    b = evaluate_sequences(text_vae, sentences, k=16, batch_size=5, seed=3)
    assert a["nll"] == b["nll"] and a["mutual_information"] == b["mutual_information"]
    # the KL and the greedy reconstructions do not depend on the samples or the batching
    c = evaluate_sequences(text_vae, sentences, k=16, batch_size=1, seed=4)
    assert c["kl"] == pytest.approx(a["kl"], rel=1e-5)
    assert c["bleu"] == pytest.approx(a["bleu"]) and c["active_units"] == a["active_units"]
    # NLL: the importance samples differ with the batching, but with k = 256 the estimates of
    # 5 sentences agree to well within 0.15 nats (their spread over seeds is about 0.02);
    # padding leaking into a sum would move them by nats
    nll = {bs: evaluate_sequences(text_vae, sentences, k=256, batch_size=bs, seed=5)["nll"]
           for bs in (1, 2, 5)}
    assert max(nll.values()) - min(nll.values()) < 0.15
    # MI: its one random input is the one sample z_n ~ q(z|x_n); its other inputs, the
    # posteriors, must not depend on the batching, so with the samples held the same the
    # estimate is the same
    import seqvae.evaluation as ev
    seen = {}
    real = ev.mutual_information
    for bs in (1, 2, 5):
        monkeypatch.setattr(ev, "mutual_information",
                            lambda mu, logvar, z, bs=bs: seen.setdefault(bs, (mu, logvar, z))
                            and real(mu, logvar, z))
        evaluate_sequences(text_vae, sentences, k=4, batch_size=bs, seed=5)
    mu, logvar, z = seen[5]
    held = {bs: real(seen[bs][0], seen[bs][1], z) for bs in seen}
    assert max(held.values()) - min(held.values()) < 1e-4
    assert all(torch.allclose(seen[bs][0], mu, atol=1e-5) for bs in seen)


@torch.no_grad()
def test_language_model_is_exact_with_one_sample(text_lm, sentences):
    r = evaluate_sequences(text_lm, sentences, k=500)
    assert r["k"] == 1 and r["latent_dim"] == 0
    assert r["kl"] == 0 and r["mutual_information"] == 0 and r["active_units"] == 0
    # log p(x) of a language model, by teacher forcing one sentence at a time
    exact = [-_log_p_x_given_z(text_lm.model, x, torch.zeros(1, 0)).item()
             for x in _one_by_one(text_lm, sentences)]
    assert r["nll"] == pytest.approx(np.mean(exact), rel=1e-5)
    assert r["rec"] == pytest.approx(np.mean(exact), rel=1e-5)


def test_bf16_scores_the_importance_samples_under_autocast_and_stays_close(text_vae, sentences,
                                                                           monkeypatch):
    seen = []
    real = type(text_vae.model).log_likelihood

    def spy(self, tokens, z, *args, **kwargs):
        seen.append(torch.is_autocast_enabled("cpu"))
        return real(self, tokens, z, *args, **kwargs)

    monkeypatch.setattr(type(text_vae.model), "log_likelihood", spy)
    fp32 = evaluate_sequences(text_vae, sentences, k=32, batch_size=5, seed=2, precision="fp32")
    assert seen and not any(seen)
    seen.clear()
    bf16 = evaluate_sequences(text_vae, sentences, k=32, batch_size=5, seed=2, precision="bf16")
    assert seen and all(seen)
    assert (fp32["precision"], bf16["precision"]) == ("fp32", "bf16")
    # the same samples: only the rounding of the decoder's products differs (bf16 keeps 8 bits
    # of mantissa, so a few tenths of a nat on sentences of ~30 nats at most)
    assert bf16["nll"] == pytest.approx(fp32["nll"], abs=0.5)
    # the encoder, KL and greedy decodes stay fp32
    assert bf16["kl"] == fp32["kl"] and bf16["exact_match"] == fp32["exact_match"]
    with pytest.raises(SeqVAEError, match="fp32 or bf16"):
        evaluate_sequences(text_vae, sentences, k=2, precision="fp16")


def _stub_model(kind, pieces):
    tokenizer = SimpleNamespace(decode=lambda ids: "".join(pieces[i] for i in ids).strip())
    return SimpleNamespace(config=SimpleNamespace(tokenizer=SimpleNamespace(kind=kind)),
                           tokenizer=tokenizer)


def test_bleu_counts_words_for_subword_models_and_tokens_otherwise():
    pieces = {1: " un", 2: "believ", 3: "able", 4: " day", 5: "known"}
    references, hypotheses = [[1, 2, 3, 4]], [[1, 5, 4]]
    # pieces "un believ able day" against "un known day": as words, one of two words matches
    words = bleu_units(_stub_model("sentencepiece", pieces), references, hypotheses)
    assert words == ([["unbelievable", "day"]], [["unknown", "day"]])
    assert bleu_units(_stub_model("word", pieces), references, hypotheses) == \
        (references, hypotheses)
