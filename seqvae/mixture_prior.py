"""A Gaussian mixture fitted to a trained model's codes: a prior that matches the aggregate
posterior.

A VAE trained at a high rate leaves regions of N(0, I) that no training code visits, and
decodes of prior samples from those regions are unlike the data. Fitting a density to the
codes after training (an "ex-post" density estimate, Ghosh et al. 2020, "From Variational to
Deterministic Autoencoders") and sampling from it instead draws codes where the decoder was
trained. Here the density is a mixture of full-covariance Gaussians fitted by EM (Dempster et
al. 1977) to one draw z ~ q(z|x) per training sequence: a sample of the aggregate posterior
q(z) = E_x q(z|x) (Hoffman & Johnson 2016).

The mixture lives in the model as buffers (``SeqVAE.latent_prior``), so it travels inside the
checkpoint; ``seqvae fit-prior`` fits it (:mod:`seqvae.prior_fitting`).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

# Added to every covariance's diagonal in the fit: keeps a component that collapses onto a few
# codes positive definite (the "reg_covar" of common EM implementations).
COVARIANCE_FLOOR = 1e-4


class GaussianMixture(nn.Module):
    """A mixture of K full-covariance Gaussians on R^D, held as buffers.

    Buffers: ``log_weights`` (K,) log mixing weights, ``means`` (K, D), ``scale_tril`` (K, D, D)
    lower Cholesky factors of the covariances.
    """

    def __init__(self, dim: int, components: int):
        super().__init__()
        self.register_buffer("log_weights", torch.full((components,), -math.log(components)))
        self.register_buffer("means", torch.zeros(components, dim))
        self.register_buffer("scale_tril", torch.eye(dim).repeat(components, 1, 1))

    @property
    def components(self) -> int:
        return self.means.size(0)

    @property
    def dim(self) -> int:
        return self.means.size(1)

    def component_log_probs(self, z: Tensor) -> Tensor:
        """log w_k + log N(z | mu_k, Sigma_k) for each code and component: (N, D) -> (N, K)."""
        return self.log_weights + _gaussian_log_probs(z.float(), self.means.float(),
                                                      self.scale_tril.float())

    def log_prob(self, z: Tensor) -> Tensor:
        """log p(z) under the mixture: (N, D) -> (N,)."""
        return torch.logsumexp(self.component_log_probs(z), dim=1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n codes drawn from the mixture: (n, D) float32 on the buffers' device."""
        device = self.means.device
        weights = self.log_weights.float().exp().cpu()
        which = torch.multinomial(weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, generator=generator)
        which, noise = which.to(device), noise.to(device)
        scale = self.scale_tril.float()[which]                          # (n, D, D)
        return self.means.float()[which] + (scale @ noise.unsqueeze(-1)).squeeze(-1)


def _gaussian_log_probs(z: Tensor, means: Tensor, scale_tril: Tensor) -> Tensor:
    """log N(z_i | mu_k, L_k L_k^T) for every pair: z (N, D), means (K, D), scale_tril
    (K, D, D) -> (N, K)."""
    n, d = z.shape
    diff = (z.unsqueeze(0) - means.unsqueeze(1)).transpose(1, 2)          # (K, D, N)
    solved = torch.linalg.solve_triangular(scale_tril, diff, upper=False)  # (K, D, N)
    mahalanobis = solved.pow(2).sum(dim=1)                                 # (K, N)
    log_det = scale_tril.diagonal(dim1=1, dim2=2).log().sum(dim=1)         # (K,)
    return (-0.5 * (mahalanobis + d * math.log(2 * math.pi)) - log_det.unsqueeze(1)).T


def fit_gaussian_mixture(codes: Tensor, components: int, iterations: int = 100,
                         tolerance: float = 1e-4, seed: int = 0,
                         covariance_floor: float = COVARIANCE_FLOOR) -> GaussianMixture:
    """Fit a K-component full-covariance mixture to codes (N, D) by EM.

    Starts from K distinct codes chosen at random as means, equal weights and the codes'
    overall covariance; stops after ``iterations`` or when the mean log-likelihood per code
    improves by less than ``tolerance`` nats. Deterministic given ``seed``.
    """
    codes = codes.detach().float().cpu()
    n, d = codes.shape
    if not 1 <= components <= n:
        raise ValueError(f"need 1 <= components <= codes ({n}), got {components}")
    generator = torch.Generator().manual_seed(seed)
    mixture = GaussianMixture(d, components)
    mixture.means.copy_(codes[torch.randperm(n, generator=generator)[:components]])
    overall = _covariance(codes, torch.ones(n) / n, codes.mean(0), covariance_floor)
    mixture.scale_tril.copy_(torch.linalg.cholesky(overall).expand(components, d, d))
    previous = -math.inf
    for _ in range(iterations):
        joint = mixture.component_log_probs(codes)                       # (N, K)
        log_likelihood = torch.logsumexp(joint, dim=1, keepdim=True)     # (N, 1)
        responsibilities = (joint - log_likelihood).exp()                # E step (N, K)
        mean_log_likelihood = log_likelihood.mean().item()
        if mean_log_likelihood - previous < tolerance:
            break
        previous = mean_log_likelihood
        mass = responsibilities.sum(0) + 1e-10                           # M step (K,)
        mixture.log_weights.copy_((mass / n).log())
        mixture.means.copy_((responsibilities.T @ codes) / mass.unsqueeze(1))
        for k in range(components):
            covariance = _covariance(codes, responsibilities[:, k] / mass[k], mixture.means[k],
                                     covariance_floor)
            mixture.scale_tril[k] = torch.linalg.cholesky(covariance)
    return mixture


def _covariance(codes: Tensor, weights: Tensor, mean: Tensor, floor: float) -> Tensor:
    """Weighted covariance sum_i w_i (z_i - m)(z_i - m)^T + floor I: codes (N, D), weights (N,)
    summing to 1, mean (D,) -> (D, D)."""
    centred = codes - mean
    covariance = (centred * weights.unsqueeze(1)).T @ centred
    return covariance + floor * torch.eye(codes.size(1))
