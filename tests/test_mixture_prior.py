"""The Gaussian mixture fitted to a model's codes (seqvae.mixture_prior)."""
import math

import pytest
import torch

from seqvae.mixture_prior import COVARIANCE_FLOOR, GaussianMixture, fit_gaussian_mixture


def one_dimensional(weights, means, stds) -> GaussianMixture:
    mixture = GaussianMixture(1, len(weights))
    mixture.log_weights.copy_(torch.tensor(weights).log())
    mixture.means.copy_(torch.tensor(means).view(-1, 1))
    mixture.scale_tril.copy_(torch.tensor(stds).view(-1, 1, 1))
    return mixture


def normal_density(x, mean, std):
    return math.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


def test_log_prob_of_a_one_dimensional_mixture_by_hand():
    mixture = one_dimensional([0.25, 0.75], [-2.0, 3.0], [1.0, 0.5])
    for x in (0.0, -2.0, 2.5):
        expected = math.log(0.25 * normal_density(x, -2.0, 1.0) + 0.75 * normal_density(x, 3.0, 0.5))
        assert mixture.log_prob(torch.tensor([[x]])).item() == pytest.approx(expected, abs=1e-5)


def test_log_prob_of_one_full_covariance_component_matches_torch():
    mixture = GaussianMixture(2, 1)
    mixture.means.copy_(torch.tensor([[1.0, -1.0]]))
    scale = torch.tensor([[[2.0, 0.0], [0.5, 0.3]]])
    mixture.scale_tril.copy_(scale)
    z = torch.tensor([[0.0, 0.0], [1.0, -1.0], [3.0, 2.0]])
    reference = torch.distributions.MultivariateNormal(mixture.means[0], scale_tril=scale[0])
    assert torch.allclose(mixture.log_prob(z), reference.log_prob(z), atol=1e-5)


def test_one_component_fit_is_the_sample_mean_and_covariance():
    codes = torch.tensor([[0.0, 1.0], [2.0, 1.0], [1.0, 4.0], [1.0, 2.0]])
    mixture = fit_gaussian_mixture(codes, 1)
    assert torch.allclose(mixture.means[0], torch.tensor([1.0, 2.0]))
    # by hand: centred rows (-1,-1), (1,-1), (0,2), (0,0); covariance over n = 4
    expected = torch.tensor([[0.5, 0.0], [0.0, 1.5]]) + COVARIANCE_FLOOR * torch.eye(2)
    scale = mixture.scale_tril[0]
    assert torch.allclose(scale @ scale.T, expected, atol=1e-5)
    assert mixture.log_weights.exp().item() == pytest.approx(1.0)


def test_fit_recovers_two_separated_clusters():
    generator = torch.Generator().manual_seed(0)
    first = torch.randn(600, 2, generator=generator) * 0.5 + torch.tensor([-4.0, 0.0])
    second = torch.randn(1400, 2, generator=generator) * 0.5 + torch.tensor([4.0, 1.0])
    mixture = fit_gaussian_mixture(torch.cat([first, second]), 2, seed=3)
    order = mixture.means[:, 0].argsort()
    weights = mixture.log_weights.exp()[order]
    assert torch.allclose(weights, torch.tensor([0.3, 0.7]), atol=0.01)
    assert torch.allclose(mixture.means[order], torch.tensor([[-4.0, 0.0], [4.0, 1.0]]), atol=0.1)
    variances = mixture.scale_tril[order].diagonal(dim1=1, dim2=2).pow(2)
    assert torch.allclose(variances, torch.full((2, 2), 0.25), atol=0.05)
    # a better fit than one Gaussian of the same codes
    one = fit_gaussian_mixture(torch.cat([first, second]), 1)
    codes = torch.cat([first, second])
    assert mixture.log_prob(codes).mean() > one.log_prob(codes).mean() + 1.0


def test_fit_is_deterministic_given_the_seed():
    codes = torch.randn(300, 3, generator=torch.Generator().manual_seed(1))
    a, b = fit_gaussian_mixture(codes, 4, seed=5), fit_gaussian_mixture(codes, 4, seed=5)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_samples_follow_the_mixture():
    mixture = one_dimensional([0.25, 0.75], [-2.0, 3.0], [1.0, 0.5])
    z = mixture.sample(40000, generator=torch.Generator().manual_seed(0))
    assert z.shape == (40000, 1)
    assert (z < 0.5).float().mean().item() == pytest.approx(0.25, abs=0.01)
    assert z[z > 0.5].mean().item() == pytest.approx(3.0, abs=0.02)
    assert z[z < 0.5].std().item() == pytest.approx(1.0, abs=0.03)


def test_fit_refuses_more_components_than_codes():
    with pytest.raises(ValueError, match="components"):
        fit_gaussian_mixture(torch.zeros(3, 2), 4)
