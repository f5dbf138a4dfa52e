import dataclasses

import pytest
import torch

from seqvae.config import ModelConfig
from seqvae.model import SeqVAE

V = 17


def tiny(**changes) -> SeqVAE:
    config = dataclasses.replace(
        ModelConfig(embedding_dim=8, encoder_hidden=12, latent_dim=5, decoder_hidden=10), **changes)
    torch.manual_seed(0)
    return SeqVAE(config, V, pad_id=0).eval()


def batch(lengths, T=None, seed=1):
    g = torch.Generator().manual_seed(seed)
    T = T or max(lengths)
    tokens = torch.zeros(len(lengths), T, dtype=torch.long)
    for i, n in enumerate(lengths):
        tokens[i, :n] = torch.randint(4, V, (n,), generator=g)
        tokens[i, 0], tokens[i, n - 1] = 1, 2
    return tokens, torch.tensor(lengths)


@pytest.mark.parametrize("changes", [{}, {"bidirectional": True, "encoder_layers": 2},
                                     {"decoder_layers": 3, "tie_weights": True},
                                     {"embedding_dim": 0}])
def test_shapes(changes):
    model = tiny(**changes)
    tokens, lengths = batch([6, 4, 9])
    out = model(tokens, lengths, return_logits=True)
    assert out.logits.shape == (3, 8, V)
    assert out.rec.shape == (3,)
    assert model(tokens, lengths).logits is None     # scores only when asked for
    assert out.mu.shape == out.logvar.shape == out.z.shape == (3, 5)
    h = model.initial_hidden(out.z)
    assert h.shape == (model.config.decoder_layers, 3, 10)


def test_embedding_zero_means_vocabulary_sized():
    assert tiny(embedding_dim=0).embedding.weight.shape == (V, V)


def test_decoder_is_causal():
    model = tiny(decoder_layers=2)
    tokens, _ = batch([10])
    z = torch.randn(1, 5)
    logits, _ = model.forward_decoder(tokens, z)
    changed = tokens.clone()
    changed[0, 6:] = 5  # change the future
    logits2, _ = model.forward_decoder(changed, z)
    assert torch.allclose(logits[:, :6], logits2[:, :6], atol=1e-6)
    assert not torch.allclose(logits[:, 6:], logits2[:, 6:])


def test_decoder_uses_z():
    model = tiny()
    tokens, _ = batch([8])
    a, _ = model.forward_decoder(tokens, torch.zeros(1, 5))
    b, _ = model.forward_decoder(tokens, torch.ones(1, 5))
    assert not torch.allclose(a, b)


def test_step_by_step_equals_teacher_forcing():
    model = tiny(decoder_layers=2)
    tokens, _ = batch([7])
    z = torch.randn(1, 5)
    full, _ = model.forward_decoder(tokens, z)
    hidden, steps = None, []
    for t in range(tokens.size(1)):
        logits, hidden = model.forward_decoder(tokens[:, t:t + 1], z, hidden)
        steps.append(logits)
    assert torch.allclose(full, torch.cat(steps, dim=1), atol=1e-5)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_each_example_is_independent_of_its_batch(bidirectional):
    model = tiny(bidirectional=bidirectional, encoder_layers=2)
    tokens, lengths = batch([5, 9, 3, 7])
    mu, logvar = model.forward_encoder(tokens, lengths)
    logits, _ = model.forward_decoder(tokens, mu)
    for i, n in enumerate(lengths.tolist()):
        alone = tokens[i:i + 1, :n]  # no padding, no neighbours
        mu_i, logvar_i = model.forward_encoder(alone, lengths[i:i + 1])
        assert torch.allclose(mu[i], mu_i[0], atol=1e-5)
        assert torch.allclose(logvar[i], logvar_i[0], atol=1e-5)
        logits_i, _ = model.forward_decoder(alone, mu_i)
        assert torch.allclose(logits[i, :n], logits_i[0], atol=1e-5)
    # and changing a neighbour changes nothing for example 0
    other = tokens.clone()
    other[1, 1:8] = 4
    mu2, _ = model.forward_encoder(other, lengths)
    assert torch.allclose(mu[0], mu2[0], atol=1e-6)
    assert not torch.allclose(mu[1], mu2[1])


def test_padding_content_is_ignored_by_the_encoder():
    model = tiny(bidirectional=True)
    tokens, lengths = batch([4, 8])
    junk = tokens.clone()
    junk[0, 4:] = 7  # garbage after the end of sequence 0
    assert torch.allclose(model.forward_encoder(tokens, lengths)[0],
                          model.forward_encoder(junk, lengths)[0], atol=1e-6)


def test_reparameterize_statistics():
    torch.manual_seed(0)
    mu = torch.full((20000, 2), 3.0)
    logvar = torch.full((20000, 2), 2 * torch.log(torch.tensor(0.5)))
    z = SeqVAE.reparameterize(mu, logvar)
    assert z.mean().item() == pytest.approx(3.0, abs=0.02)
    assert z.std().item() == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("layers", [1, 3])
def test_unrolled_gru_equals_nn_gru_values_and_gradients(layers):
    from seqvae.cells import unrolled_gru
    torch.manual_seed(0)
    gru = torch.nn.GRU(7 + 3, 6, num_layers=layers, batch_first=True)
    x, z, h0 = torch.randn(4, 9, 7), torch.randn(4, 3), torch.randn(layers, 4, 6)
    ref_out, ref_h = gru(torch.cat([x, z.unsqueeze(1).expand(-1, 9, -1)], -1), h0)
    out, h = unrolled_gru(gru, x, h0, static_input=z)
    assert torch.allclose(out, ref_out, atol=1e-5) and torch.allclose(h, ref_h, atol=1e-5)
    ref_grads = torch.autograd.grad(ref_out.square().sum() + ref_h.sum(), list(gru.parameters()))
    grads = torch.autograd.grad(out.square().sum() + h.sum(), list(gru.parameters()))
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(grads, ref_grads))
    plain_out, _ = unrolled_gru(torch.nn.GRU(7, 6, num_layers=layers, batch_first=True), x, h0)
    assert plain_out.shape == (4, 9, 6)


@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, True), (3, True)])
def test_unrolled_encoder_equals_packed_nn_gru(layers, bidirectional):
    from torch.nn.utils.rnn import pack_padded_sequence

    from seqvae.cells import unrolled_encoder
    torch.manual_seed(0)
    gru = torch.nn.GRU(5, 4, num_layers=layers, bidirectional=bidirectional, batch_first=True)
    x, lengths = torch.randn(3, 8, 5), torch.tensor([8, 3, 6])
    _, h_n = gru(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    dirs = 2 if bidirectional else 1
    expected = h_n.view(layers, dirs, 3, 4)[-1]
    got = unrolled_encoder(gru, x, lengths)
    assert torch.allclose(got, expected, atol=1e-5)
    g1 = torch.autograd.grad(expected.square().sum(), list(gru.parameters()))
    g2 = torch.autograd.grad(got.square().sum(), list(gru.parameters()))
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(g1, g2))


@pytest.mark.parametrize("changes", [{}, {"tie_weights": True, "decoder_layers": 2}])
def test_log_likelihood_matches_the_teacher_forced_scores(changes):
    from seqvae.cross_entropy import reconstruction_nll
    model = tiny(**changes)
    tokens, lengths = batch([6, 4, 9])
    z = torch.randn(3, 5)
    with torch.no_grad():
        logits, _ = model.forward_decoder(tokens[:, :-1], z)
        expected = -reconstruction_nll(logits, tokens[:, 1:], pad_id=0)
        assert torch.allclose(model.log_likelihood(tokens, z), expected, atol=1e-5)
        # scored a few tokens at a time: the same sums
        assert torch.allclose(model.log_likelihood(tokens, z, max_scores=2 * V), expected, atol=1e-5)


def test_latent_dim_zero_is_a_language_model():
    model = tiny(latent_dim=0)
    assert not model.has_latent
    assert not any(name.startswith(("encoder", "to_mu")) for name, _ in model.named_parameters())
    tokens, lengths = batch([6, 4, 9])
    model.train()
    out = model(tokens, lengths, return_logits=True)  # training path (unrolled GRU)
    assert out.mu.shape == out.z.shape == (3, 0)
    out.rec.sum().backward()
    assert model.initial_state.grad is not None
    model.eval()
    with torch.no_grad():                             # inference path (nn.GRU) agrees
        again = model(tokens, lengths, return_logits=True)
        assert torch.allclose(again.logits, out.logits.detach(), atol=1e-5)
        assert torch.allclose(again.rec, out.rec.detach(), atol=1e-5)


def test_embedding_dropout_acts_on_the_decoder_inputs_in_training_only():
    # With every input embedding dropped, the decoder sees only z: two different token
    # sequences get the same scores in training mode, and their own scores in eval mode.
    model = tiny(embedding_dropout=1.0)
    z = torch.randn(1, 5)
    a, b = batch([6], seed=1)[0], batch([6], seed=2)[0]
    assert not torch.equal(a, b)
    model.train()
    assert torch.equal(model.forward_decoder(a, z)[0], model.forward_decoder(b, z)[0])
    model.eval()
    assert not torch.allclose(model.forward_decoder(a, z)[0], model.forward_decoder(b, z)[0])


def test_weight_drop_is_one_recurrent_mask_per_pass_in_training_only():
    """Weight drop (Merity et al. 2018) equals running the GRU with its hidden-to-hidden
    weights dropped once, by the same draw, for the whole sequence; it never acts in eval."""
    from seqvae.cells import make_cell, unrolled_gru
    p = 0.5
    x, h0 = torch.randn(3, 8, 5), torch.randn(2, 3, 4)
    cell = make_cell("gru", 5, 4, 2, 0.0, weight_drop=p)
    plain = make_cell("gru", 5, 4, 2, 0.0)
    plain.load_state_dict(cell.state_dict())
    cell.train()
    torch.manual_seed(7)
    out, h = cell.run(x, h0)
    # The same draws, by hand: layer 0's mask, then layer 1's.
    torch.manual_seed(7)
    with torch.no_grad():
        for k in range(2):
            w = getattr(plain, f"weight_hh_l{k}")
            w.copy_(torch.nn.functional.dropout(w, p, training=True))
    want_out, want_h = unrolled_gru(plain, x, h0)
    assert torch.allclose(out, want_out, atol=1e-6) and torch.allclose(h, want_h, atol=1e-6)
    assert not torch.allclose(out, cell.eval().run(x, h0)[0], atol=1e-3)
    # In eval mode (decoding, scoring) it is the plain GRU, with nn.GRU's kernel.
    plain.load_state_dict(cell.state_dict())
    with torch.no_grad():
        assert torch.allclose(cell.run(x, h0)[0], plain(x, h0)[0], atol=1e-6)
    # The model passes the setting to its decoder only.
    model = tiny(weight_drop=0.3)
    assert model.decoder.weight_drop == 0.3 and model.encoder.weight_drop == 0.0


def test_a_learned_prior_starts_at_n01_and_its_kl_follows_the_flow():
    from seqvae.gaussian import gaussian_kl, standard_normal_log_prob
    model = tiny(learned_prior=2, learned_prior_hidden=8).train()
    tokens, lengths = batch([5, 3, 6])
    out = model(tokens, lengths)
    # an unfitted flow is the identity: log p(z) = log N(z; 0, I), the KL the analytic one
    assert torch.allclose(out.prior_log_prob, standard_normal_log_prob(out.z), atol=1e-6)
    assert torch.allclose(model.kl(out.mu, out.logvar, out.z),
                          gaussian_kl(out.mu, out.logvar).sum(-1), atol=1e-5)
    out.rec.sum().add(-out.prior_log_prob.sum()).backward()
    flow_grads = [p.grad for p in model.latent_prior.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in flow_grads)   # it trains
    with torch.no_grad():
        for p in model.latent_prior.parameters():
            p.add_(0.1 * torch.randn_like(p))
    z = out.z.detach()
    expected = (gaussian_kl(out.mu, out.logvar).sum(-1) + standard_normal_log_prob(z)
                - model.latent_prior.log_prob(z))
    kl = model.kl(out.mu, out.logvar, z)
    assert torch.allclose(kl, expected, atol=1e-5)
    assert not torch.allclose(kl, gaussian_kl(out.mu, out.logvar).sum(-1), atol=1e-3)
    # under bf16 autocast the flow still scores in fp32
    exact = model.latent_prior.log_prob(z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scored = model.prior_log_prob(z)
    assert scored.dtype == torch.float32 and torch.allclose(scored, exact, atol=1e-5)


def test_without_a_learned_prior_the_kl_is_analytic_and_the_output_has_no_prior():
    from seqvae.gaussian import gaussian_kl
    model = tiny()
    out = model(*batch([4, 5]))
    assert out.prior_log_prob is None and not model.has_learned_prior
    assert torch.equal(model.kl(out.mu, out.logvar, out.z), gaussian_kl(out.mu, out.logvar).sum(-1))


def test_bag_of_words_loss_by_hand():
    model = tiny(bag_of_words=6)
    probs = torch.full((V,), 0.02)
    probs[5], probs[6] = 0.4, 0.3
    probs = probs / probs.sum()
    with torch.no_grad():                 # scores independent of z: log softmax = log probs
        model.bag_of_words[-1].weight.zero_()
        model.bag_of_words[-1].bias.copy_(probs.log())
    tokens = torch.tensor([[1, 5, 6, 5, 2, 0], [1, 6, 2, 0, 0, 0]])
    z = torch.randn(2, 5)
    expected = torch.stack([-(2 * probs[5].log() + probs[6].log()), -probs[6].log()])
    assert torch.allclose(model.bag_of_words_nll(z, tokens), expected, atol=1e-5)
    out = model(tokens, torch.tensor([5, 3]))
    assert torch.allclose(out.bag_of_words_nll, expected, atol=1e-5)
    assert tiny()(tokens, torch.tensor([5, 3])).bag_of_words_nll is None


def test_the_bag_of_words_loss_needs_a_latent():
    from seqvae.config import Config
    from seqvae.errors import SeqVAEError
    config = Config().override("model", bag_of_words=8, latent_dim=0)
    with pytest.raises(SeqVAEError, match="--bag-of-words"):
        config.validate()
