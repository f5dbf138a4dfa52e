import math

import helpers
import pytest
import torch

from seqvae.config import ModelConfig
from seqvae.decoding import beam_candidates, decode, rerank_by_reencoding
from seqvae.model import SeqVAE

V, PAD, BOS, EOS = 11, 0, 1, 2


def tiny_model(seed=0) -> SeqVAE:
    torch.manual_seed(seed)
    return SeqVAE(ModelConfig(embedding_dim=8, encoder_hidden=8, latent_dim=4, decoder_hidden=16,
                              decoder_layers=2), V).eval()


def reference_greedy(model, z, max_len):
    """One example at a time, no batching tricks."""
    out, token, hidden = [], torch.tensor([[BOS]]), None
    for _ in range(max_len):
        logits, hidden = model.forward_decoder(token, z, hidden)
        logits[:, -1, [BOS, PAD]] = float("-inf")
        token = logits[:, -1].argmax(-1, keepdim=True)
        out.append(token.item())
        if out[-1] == EOS:
            break
    return out


def strip(row):
    row = row.tolist()
    return row[:row.index(EOS) + 1] if EOS in row else [t for t in row if t != PAD]


def test_greedy_batched_equals_one_by_one():
    model = tiny_model()
    z = torch.randn(6, 4) * 2
    ids = decode(model, z, BOS, EOS, PAD, method="greedy", max_len=25)
    for i in range(6):
        assert strip(ids[i]) == reference_greedy(model, z[i:i + 1], 25)


def test_padding_after_eos_and_max_len():
    model = tiny_model()
    ids = decode(model, torch.randn(32, 4), BOS, EOS, PAD, method="sample", max_len=12,
                 generator=torch.Generator().manual_seed(0))
    assert ids.size(1) <= 12
    for row in ids.tolist():
        if EOS in row:
            assert all(t == PAD for t in row[row.index(EOS) + 1:])
        assert PAD not in row[:row.index(EOS)] if EOS in row else PAD not in row


def test_stops_as_soon_as_every_sequence_has_ended():
    model = tiny_model()
    with torch.no_grad():  # make <eos> overwhelmingly likely from the first step
        model.output_projection.bias.zero_()
        model.output_projection.bias[EOS] = 100.0
    ids = decode(model, torch.randn(5, 4), BOS, EOS, PAD, method="greedy", max_len=50)
    assert ids.shape == (5, 1) and (ids == EOS).all()


def test_sampling_is_seeded_and_temperature_zero_is_greedy():
    model = tiny_model()
    z = torch.randn(8, 4)
    a = decode(model, z, BOS, EOS, PAD, "sample", 20, generator=torch.Generator().manual_seed(3))
    b = decode(model, z, BOS, EOS, PAD, "sample", 20, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    cold = decode(model, z, BOS, EOS, PAD, "sample", 20, temperature=1e-4,
                  generator=torch.Generator().manual_seed(3))
    greedy = decode(model, z, BOS, EOS, PAD, "greedy", 20)
    assert torch.equal(cold, greedy)


def sequence_logprob(model, z, seq):
    inputs = torch.tensor([[BOS] + seq[:-1]])
    logits, _ = model.forward_decoder(inputs, z)
    logits[0, :, [BOS, PAD]] = float("-inf")
    logp = torch.log_softmax(logits[0], -1)
    return sum(logp[t, tok].item() for t, tok in enumerate(seq))


A, B, C = 3, 4, 5
# A bigram language model written into the weights, with greedy's first choice a trap:
# after <bos>, A (0.55) beats B (0.45); after A nothing is likely (<eos> 0.4), after B <eos> is
# almost certain (0.98). Greedy decodes "A <eos>", p = 0.55 * 0.4 = 0.22; the best sequence is
# "B <eos>", p = 0.45 * 0.98 = 0.441, which a beam of width 2 keeps and finds.
BIGRAM = {BOS: {A: 0.55, B: 0.45}, A: {EOS: 0.4, A: 0.3, C: 0.3}, B: {EOS: 0.98, C: 0.02},
          C: {EOS: 1.0}, EOS: {EOS: 1.0}}


def bigram_model() -> SeqVAE:
    return helpers.bigram_model(BIGRAM, V, PAD)


def test_beam_search_finds_the_likelier_sequence_that_greedy_misses():
    model = bigram_model()
    z = torch.zeros(3, 1)
    greedy = decode(model, z, BOS, EOS, PAD, "greedy", 10)
    assert [strip(r) for r in greedy] == [[A, EOS]] * 3
    for k in (2, 5):
        beam = decode(model, z, BOS, EOS, PAD, "beam", 10, beam_size=k)
        assert [strip(r) for r in beam] == [[B, EOS]] * 3
    assert [strip(r) for r in decode(model, z, BOS, EOS, PAD, "beam", 10, beam_size=1)] \
        == [[A, EOS]] * 3                                   # width 1 falls into the same trap
    lg = sequence_logprob(model, z[:1], [A, EOS])
    lb = sequence_logprob(model, z[:1], [B, EOS])
    assert lg == pytest.approx(math.log(0.55 * 0.4), abs=1e-4)
    assert lb == pytest.approx(math.log(0.45 * 0.98), abs=1e-4)


def test_beam_candidates_are_scored_by_their_log_probability():
    model = bigram_model()
    candidates, scores = beam_candidates(model, torch.zeros(1, 1), BOS, EOS, PAD, 10, 2)
    assert [strip(r) for r in candidates[0]] == [[B, EOS], [A, EOS]]
    assert scores[0].tolist() == pytest.approx([math.log(0.45 * 0.98), math.log(0.55 * 0.4)],
                                               abs=1e-4)


def first_token_encoder(seen: list):
    """An encoder that maps a sequence starting with A to +1 and any other to -1, recording
    the (tokens, lengths) it is given in ``seen``."""
    def encoder(tokens, lengths):
        seen.append((tokens.tolist(), lengths.tolist()))
        mu = torch.where(tokens[:, 1:2] == A, 1.0, -1.0)
        return mu, torch.zeros_like(mu)
    return encoder


def test_rerank_keeps_the_candidate_the_encoder_maps_nearest_to_the_code():
    # Beam search prefers "B <eos>" (0.441) to "A <eos>" (0.22). An encoder that maps a
    # sequence starting with A to +1 and any other to -1 makes the code decide instead.
    model = bigram_model()
    seen = []
    model.forward_encoder = first_token_encoder(seen)
    z = torch.tensor([[0.9], [-0.8]])
    chosen = decode(model, z, BOS, EOS, PAD, "rerank", 10, beam_size=2)
    assert [strip(r) for r in chosen] == [[A, EOS], [B, EOS]]
    # every candidate reached the encoder as <bos> tokens <eos>, padded, with its length
    tokens, lengths = seen[0]
    assert sorted(zip(map(tuple, tokens), lengths)) == sorted(
        [((BOS, B, EOS, PAD), 3), ((BOS, A, EOS, PAD), 3)] * 2)


def test_rerank_gives_a_cut_off_candidate_its_eos_and_never_picks_an_empty_slot():
    model = bigram_model()
    candidates = torch.tensor([[[A, A, A], [B, EOS, PAD], [A, EOS, PAD]]])
    scores = torch.tensor([[-1.0, -2.0, float("-inf")]])
    seen = []
    model.forward_encoder = first_token_encoder(seen)
    # the third slot, an A sequence, would be nearest to +1 but holds no hypothesis
    chosen = rerank_by_reencoding(model, torch.tensor([[1.0]]), candidates, scores, BOS, EOS, PAD)
    assert chosen.tolist() == [[A, A, A]]
    assert seen[0][0][0] == [BOS, A, A, A, EOS] and seen[0][1][0] == 5
    chosen = rerank_by_reencoding(model, torch.tensor([[-1.0]]), candidates, scores, BOS, EOS, PAD)
    assert chosen.tolist() == [[B, EOS, PAD]]


def test_rerank_equals_reencoding_each_candidate_alone():
    model = tiny_model(seed=5)
    z = torch.randn(3, 4) * 2
    candidates, scores = beam_candidates(model, z, BOS, EOS, PAD, 6, 4)   # some cut off at 6
    chosen = decode(model, z, BOS, EOS, PAD, "rerank", 6, beam_size=4)
    for i in range(3):
        distances = []
        for row in candidates[i].tolist():
            body = row[:row.index(EOS)] if EOS in row else row
            with torch.no_grad():
                mu, _ = model.forward_encoder(torch.tensor([[BOS, *body, EOS]]),
                                              torch.tensor([len(body) + 2]))
            distances.append(float((mu[0] - z[i]).pow(2).sum()))
        best = min(range(4), key=distances.__getitem__)
        assert strip(chosen[i]) == strip(candidates[i, best])


def test_beam_width_one_is_greedy():
    model = tiny_model(seed=2)
    z = torch.randn(6, 4)
    greedy = decode(model, z, BOS, EOS, PAD, "greedy", 15)
    beam1 = decode(model, z, BOS, EOS, PAD, "beam", 15, beam_size=1)
    assert [strip(r) for r in beam1] == [strip(r) for r in greedy]


def test_beam_batched_equals_one_by_one():
    model = tiny_model(seed=4)
    z = torch.randn(4, 4)
    together = decode(model, z, BOS, EOS, PAD, "beam", 15, beam_size=3)
    for i in range(4):
        alone = decode(model, z[i:i + 1], BOS, EOS, PAD, "beam", 15, beam_size=3)
        assert strip(together[i]) == strip(alone[0])


def test_unknown_method():
    with pytest.raises(ValueError, match="greedy"):
        decode(tiny_model(), torch.randn(1, 4), BOS, EOS, PAD, method="nucleus")


@pytest.mark.parametrize("method", ["greedy", "sample", "beam", "rerank"])
def test_bf16_decoding_is_well_formed_and_seeded(method):
    # bf16 changes the arithmetic, not the contract: padded after <eos>, at most max_len,
    # the same draws from the same seed
    model, z = tiny_model(), torch.randn(16, 4) * 2
    runs = [decode(model, z, BOS, EOS, PAD, method=method, max_len=12, beam_size=3,
                   generator=torch.Generator().manual_seed(5), precision="bf16")
            for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
    assert runs[0].size(1) <= 12 and runs[0].dtype == torch.long
    for row in runs[0].tolist():
        if EOS in row:
            assert all(t == PAD for t in row[row.index(EOS) + 1:])
        assert BOS not in row
    with pytest.raises(ValueError, match="fp32 or bf16"):
        decode(model, z, BOS, EOS, PAD, precision="fp16")
