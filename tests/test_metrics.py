import math

import pytest
import torch

from seqvae.metrics import (
    active_units,
    corpus_bleu,
    dimension_usage,
    importance_weighted_log_likelihood,
    log_normal_diag,
    log_standard_normal,
    mutual_information,
    perplexity,
    unigram_f1,
)


def test_log_normal_diag_matches_torch_distributions():
    z, mu, logvar = torch.randn(5, 3), torch.randn(5, 3), torch.randn(5, 3)
    expected = torch.distributions.Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    assert torch.allclose(log_normal_diag(z, mu, logvar), expected, atol=1e-5)
    assert torch.allclose(log_standard_normal(z), log_normal_diag(z, torch.zeros(3), torch.zeros(3)))


class LinearGaussian:
    """z ~ N(0, I_2), x | z ~ N(W z + b, s2 I_3): log p(x) = log N(x; b, W W^T + s2 I) exactly.

    W has orthogonal columns, so the exact posterior p(z|x) is a diagonal Gaussian:
    precision I + W^T W / s2, mean cov W^T (x - b) / s2.
    """
    W = torch.tensor([[1.0, 2.0], [2.0, -1.0], [0.0, 1.5]], dtype=torch.float64)
    b = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    s2 = 0.5

    def __init__(self, n: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, 2, generator=g, dtype=torch.float64)
        self.x = z @ self.W.T + self.b + math.sqrt(self.s2) * torch.randn(n, 3, generator=g,
                                                                         dtype=torch.float64)

    def log_marginal(self) -> torch.Tensor:
        cov = self.W @ self.W.T + self.s2 * torch.eye(3, dtype=torch.float64)
        return torch.distributions.MultivariateNormal(self.b, cov).log_prob(self.x)

    def log_likelihood(self, z: torch.Tensor) -> torch.Tensor:   # (B, s, 2) -> (B, s)
        mean = z @ self.W.T + self.b
        var = torch.full_like(mean, self.s2)
        return log_normal_diag(self.x.unsqueeze(1), mean, var.log())

    def posterior(self) -> tuple[torch.Tensor, torch.Tensor]:
        precision = 1 + (self.W ** 2).sum(0) / self.s2            # diagonal, (2,)
        mu = ((self.x - self.b) @ self.W / self.s2) / precision
        return mu, (-precision.log()).expand_as(mu)


def test_iw_is_exact_for_every_k_when_q_is_the_true_posterior():
    model = LinearGaussian(20)
    mu, logvar = model.posterior()
    g = torch.Generator().manual_seed(0)
    iw, _ = importance_weighted_log_likelihood(model.log_likelihood, mu, logvar, k=1, generator=g)
    assert torch.allclose(iw, model.log_marginal(), atol=1e-9)


def test_iw_converges_to_the_marginal_likelihood_and_tightens_with_k():
    model = LinearGaussian(200)
    mu, logvar = model.posterior()
    mu, logvar = mu + 0.4, logvar + 0.7        # a poor q: shifted and too wide
    truth = model.log_marginal().mean().item()
    estimates = {}
    for k in (1, 10, 100, 5000):
        g = torch.Generator().manual_seed(1)
        iw, _ = importance_weighted_log_likelihood(model.log_likelihood, mu, logvar, k=k,
                                                   chunk=500, generator=g)
        estimates[k] = iw.mean().item()
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)
    g = torch.Generator().manual_seed(2)
    _, expected_log_lik = importance_weighted_log_likelihood(model.log_likelihood, mu, logvar,
                                                             k=2000, generator=g)
    elbo = (expected_log_lik - kl).mean().item()
    assert abs(estimates[1] - elbo) < 0.4       # IW_1 is a one-sample ELBO estimate
    assert elbo < estimates[10] < estimates[100] < estimates[5000]
    assert estimates[5000] <= truth + 0.02
    assert abs(estimates[5000] - truth) < 0.05
    assert truth - elbo > 0.3                   # the poor q leaves a real gap to close


def test_iw_chunking_does_not_change_the_result():
    model = LinearGaussian(10)
    mu, logvar = model.posterior()
    mu = mu + 1.0
    a, la = importance_weighted_log_likelihood(model.log_likelihood, mu, logvar, k=64,
                                               generator=torch.Generator().manual_seed(3))
    b, lb = importance_weighted_log_likelihood(model.log_likelihood, mu, logvar, k=64, chunk=64,
                                               generator=torch.Generator().manual_seed(3))
    assert torch.allclose(a, b) and torch.allclose(la, lb)


# The estimator is a Monte Carlo one (one z per x), so these use enough x for its noise
# (standard deviation about 0.03 nats here) to sit well inside the tolerance.

def test_mutual_information_is_zero_when_every_posterior_is_the_same():
    g = torch.Generator().manual_seed(0)
    mu = torch.full((2000, 4), 0.3)
    logvar = torch.full((2000, 4), -1.0)
    z = mu + torch.randn(2000, 4, generator=g) * (0.5 * logvar).exp()
    assert abs(mutual_information(mu, logvar, z, chunk=512)) < 0.1


def test_mutual_information_reaches_log_n_for_separate_posteriors():
    # Posteriors 100 standard deviations apart: near each z_n, q(z) = q(z|x_n) / N.
    g = torch.Generator().manual_seed(0)
    mu = torch.arange(2000.0).unsqueeze(1) * 100
    logvar = torch.zeros(2000, 1)
    z = mu + torch.randn(2000, 1, generator=g)
    assert mutual_information(mu, logvar, z, chunk=300) == pytest.approx(math.log(2000), abs=0.1)


def test_active_units_counts_dimensions_whose_mean_varies():
    # variances across x (unbiased): dim 0: 0, dim 1: 1/3 (0,0,1,1), dim 2: 0.0012 (tiny)
    mu = torch.tensor([[1.0, 0.0, 0.00], [1.0, 0.0, 0.06],
                       [1.0, 1.0, 0.00], [1.0, 1.0, 0.06]])
    assert active_units(mu) == 1
    assert active_units(mu, threshold=0.001) == 2
    assert active_units(mu[:1]) == 0


def test_dimension_usage_by_hand():
    mu = torch.tensor([[1.0, 0.0], [1.0, 2.0]])
    logvar = torch.zeros(2, 2)
    usage = dimension_usage(mu, logvar)
    # variance across x (unbiased): dim 0: 0, dim 1: 2; KL with unit variance is mu^2 / 2
    assert torch.allclose(usage["variance"], torch.tensor([0.0, 2.0]))
    assert torch.allclose(usage["kl"], torch.tensor([0.5, 1.0]))
    assert int((usage["variance"] > 0.01).sum()) == active_units(mu)


def test_bleu_by_hand():
    assert corpus_bleu([[1, 2, 3, 4, 5]], [[1, 2, 3, 4, 5]]) == pytest.approx(1.0)
    # every n-gram matches, but the hypothesis is short: BP = exp(1 - 6/5)
    assert corpus_bleu([list("abcdef")], [list("abcde")]) == pytest.approx(math.exp(-0.2))
    # clipping: "the" counts once, as in the reference; precision 1/4, no brevity penalty
    assert corpus_bleu([["the", "cat"]], [["the"] * 4], max_n=1) == pytest.approx(0.25)
    # pooled over the corpus: unigrams 3/4 and bigrams 1/2 -> sqrt(3/8)
    refs, hyps = [["a", "b"], ["c", "d"]], [["a", "b"], ["c", "x"]]
    assert corpus_bleu(refs, hyps, max_n=2) == pytest.approx(math.sqrt(3 / 8))
    assert corpus_bleu([["a", "b", "c", "d"]], [["d", "c", "b", "a"]]) == 0.0
    with pytest.raises(ValueError):
        corpus_bleu([[1]], [])


def test_perplexity_by_hand():
    assert perplexity(10.0, 5) == pytest.approx(math.exp(2))


def test_active_units_edge_cases_by_hand():
    # one dimension, two codes: variance (unbiased) of (0, 1) is 0.5
    two = torch.tensor([[0.0], [1.0]])
    assert active_units(two) == 1
    assert active_units(two, threshold=0.5) == 0              # strictly above the threshold
    assert active_units(two, threshold=0.49) == 1
    assert active_units(torch.tensor([[0.0, 5.0], [1.0, 5.0], [2.0, 5.0]])) == 1
    assert active_units(torch.zeros(4, 0)) == 0


def test_bleu_edge_cases_by_hand():
    # four tokens, all matching: BLEU-4 (the default) is 1; BLEU-5 would have no 5-grams
    assert corpus_bleu([list("abcd")], [list("abcd")]) == pytest.approx(1.0)
    # a hypothesis too short for 3- and 4-grams adds nothing to their totals
    refs, hyps = [list("abcd"), list("xy")], [list("abcd"), list("xy")]
    assert corpus_bleu(refs, hyps) == pytest.approx(1.0)
    # one token, matching: unigram precision 1
    assert corpus_bleu([["a"]], [["a"]], max_n=1) == pytest.approx(1.0)
    # precisions 5/6, 4/5, 3/4, 2/3: BLEU = (1/3) ** (1/4), same length so no brevity penalty
    assert corpus_bleu([list("abcdef")], [list("abcdex")]) == pytest.approx((1 / 3) ** 0.25)
    assert corpus_bleu([[]], [[]]) == 0.0
    with pytest.raises(ValueError, match="^references and hypotheses must align$"):
        corpus_bleu([[1], [2]], [[1]])


def test_perplexity_counts_every_token_and_survives_none():
    assert perplexity(3.0, 1) == pytest.approx(math.exp(3.0))
    assert perplexity(6.0, 3) == pytest.approx(math.exp(2.0))
    assert perplexity(0.0, 0) == 1.0


def test_iw_draws_exactly_k_samples_per_x_in_any_chunking():
    # with q the exact posterior every log weight is log p(x): any extra or missing sample
    # would move the estimate by log(drawn / k)
    model = LinearGaussian(6)
    mu, logvar = model.posterior()
    for k, chunk in ((10, 3), (7, 7), (5, 2), (100, 32), (3, 8)):
        iw, log_lik = importance_weighted_log_likelihood(
            model.log_likelihood, mu, logvar, k=k, chunk=chunk,
            generator=torch.Generator().manual_seed(k))
        assert iw.shape == log_lik.shape == (6,)
        assert torch.allclose(iw, model.log_marginal(), atol=1e-9)


def test_iw_expected_log_likelihood_is_per_x_over_every_chunk():
    model = LinearGaussian(4)
    mu, logvar = model.posterior()
    drawn = []

    def recording(z):
        drawn.append(z)
        return model.log_likelihood(z)

    _, log_lik = importance_weighted_log_likelihood(recording, mu, logvar, k=12, chunk=5,
                                                    generator=torch.Generator().manual_seed(0))
    assert [z.shape[1] for z in drawn] == [4, 4, 4]      # three calls of at most 5, balanced
    z = torch.cat(drawn, dim=1)                                         # (4, 12, 2)
    assert torch.allclose(log_lik, model.log_likelihood(z).mean(dim=1))
    assert log_lik.shape == (4,)


def _mi_by_hand(mu, logvar, z):
    """I = mean_n [log q(z_n | x_n)] expectation in closed form minus mean_n log q(z_n),
    with torch.distributions and explicit loops."""
    N = mu.size(0)
    q = [torch.distributions.Normal(mu[m], (0.5 * logvar[m]).exp()) for m in range(N)]
    neg_entropy = -sum(q[n].entropy().sum() for n in range(N)) / N
    log_aggregate = [torch.logsumexp(torch.stack([q[m].log_prob(z[n]).sum() for m in range(N)]), 0)
                     - math.log(N) for n in range(N)]
    return float(neg_entropy - sum(log_aggregate) / N)


def test_mutual_information_bounds_its_memory_whatever_the_chunk(monkeypatch):
    import seqvae.metrics as metrics
    g = torch.Generator().manual_seed(6)
    mu = torch.randn(7, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(7, 3, generator=g, dtype=torch.float64) * 0.5
    z = mu + torch.randn(7, 3, generator=g, dtype=torch.float64) * (0.5 * logvar).exp()
    shapes, score = [], metrics.log_normal_diag

    def recording(x, m, lv):
        shapes.append(tuple(x.shape))
        return score(x, m, lv)

    monkeypatch.setattr(metrics, "log_normal_diag", recording)
    monkeypatch.setattr(metrics, "MI_ELEMENTS_PER_CHUNK", 2 * 7 * 3)   # two samples x N x D
    assert mutual_information(mu, logvar, z, chunk=1024) == pytest.approx(
        _mi_by_hand(mu, logvar, z), abs=1e-9)
    assert [s[0] for s in shapes] == [2, 2, 2, 1]


def test_mutual_information_by_hand_in_small_chunks():
    g = torch.Generator().manual_seed(5)
    mu = torch.randn(7, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(7, 3, generator=g, dtype=torch.float64) * 0.5
    z = mu + torch.randn(7, 3, generator=g, dtype=torch.float64) * (0.5 * logvar).exp()
    expected = _mi_by_hand(mu, logvar, z)
    for chunk in (1, 2, 3, 7, 1024):
        assert mutual_information(mu, logvar, z, chunk=chunk) == pytest.approx(expected, abs=1e-9)
    assert mutual_information(mu, logvar, z) == pytest.approx(expected, abs=1e-9)
    # one x: the estimator is log q(z_1|x_1) in expectation minus at the sample, not 0
    one = mutual_information(mu[:1], logvar[:1], z[:1])
    assert one == pytest.approx(_mi_by_hand(mu[:1], logvar[:1], z[:1]), abs=1e-9) and one != 0
    # nothing to measure
    assert mutual_information(torch.zeros(0, 3), torch.zeros(0, 3), torch.zeros(0, 3)) == 0.0
    assert mutual_information(torch.zeros(5, 0), torch.zeros(5, 0), torch.zeros(5, 0)) == 0.0



def test_unigram_f1_by_hand():
    assert unigram_f1([1, 2, 3], [3, 2, 1]) == pytest.approx(1.0)
    # one match in 2 + 4 tokens; the repeated 1 is clipped to its single count in the reference
    assert unigram_f1([1, 2], [1, 1, 5, 6]) == pytest.approx(2 * 1 / 6)
    assert unigram_f1([1], []) == 0.0 and unigram_f1([1], [2]) == 0.0


def test_iw_takes_the_models_own_prior():
    # the same linear-Gaussian model under the prior N(c, I): x ~ N(b + W c, W W^T + s2 I), and
    # the exact posterior moves by c minus what W c explains; IW_1 is exact again
    model = LinearGaussian(20)
    c = torch.tensor([1.0, -0.5], dtype=torch.float64)
    precision = 1 + (model.W ** 2).sum(0) / model.s2
    mu = c + ((model.x - model.b - model.W @ c) @ model.W / model.s2) / precision
    logvar = (-precision.log()).expand_as(mu)
    cov = model.W @ model.W.T + model.s2 * torch.eye(3, dtype=torch.float64)
    truth = torch.distributions.MultivariateNormal(model.b + model.W @ c, cov).log_prob(model.x)

    def shifted_prior(z):                                   # (N, 2) -> (N,)
        assert z.dim() == 2
        return log_normal_diag(z, c, torch.zeros(2, dtype=torch.float64))
    iw, _ = importance_weighted_log_likelihood(model.log_likelihood, mu, logvar, k=3, chunk=2,
                                               generator=torch.Generator().manual_seed(0),
                                               prior_log_prob=shifted_prior)
    assert torch.allclose(iw, truth, atol=1e-9)
    # under N(0, I) the same q and x give another (wrong) value
    plain, _ = importance_weighted_log_likelihood(model.log_likelihood, mu, logvar, k=3,
                                                  generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(plain, truth, atol=1e-3)
