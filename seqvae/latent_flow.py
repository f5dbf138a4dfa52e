"""A normalising flow fitted to a trained model's codes: a prior that matches the aggregate
posterior more closely than a Gaussian mixture can.

RealNVP (Dinh et al. 2017): a stack of affine coupling layers, each of which keeps half of the
coordinates (a fixed random mask) and scales and shifts the other half by functions of the kept
half, so that the map is invertible with a triangular Jacobian. A code z is mapped to u = f(z)
and scored as log p(z) = log N(u | 0, I) + log |det df/dz|; sampling runs the layers backwards
from u ~ N(0, I). The last layer of every coupling starts at zero, so an unfitted flow is the
identity and its density N(0, I).

Fitted after training by maximum likelihood on draws z ~ q(z|x) of training sequences, fresh
draws each epoch (:func:`fit_flow`). ``seqvae fit-prior`` fits it (:mod:`seqvae.prior_fitting`).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

from .gaussian import reparameterize
from .logs import to_stderr


class AffineCoupling(nn.Module):
    """y = m * x + (1 - m) * (x * exp(s(m * x)) + t(m * x)), with the mask m (D,) of 0s and 1s
    and s squashed by tanh into (-1, 1) so that no step can scale by more than e."""

    def __init__(self, mask: Tensor, hidden: int):
        super().__init__()
        dim = mask.numel()
        self.register_buffer("mask", mask.float())
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, 2 * dim))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def _scale_shift(self, kept: Tensor) -> tuple[Tensor, Tensor]:
        scale, shift = self.net(kept).chunk(2, dim=-1)
        free = 1 - self.mask
        return torch.tanh(scale) * free, shift * free

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(N, D) -> y (N, D) and log |det dy/dx| (N,)."""
        scale, shift = self._scale_shift(x * self.mask)
        return x * self.mask + (1 - self.mask) * (x * scale.exp() + shift), scale.sum(-1)

    def inverse(self, y: Tensor) -> Tensor:
        """The x of :meth:`forward` given its y: (N, D) -> (N, D)."""
        scale, shift = self._scale_shift(y * self.mask)  # the kept half is the same in x and y
        return y * self.mask + (1 - self.mask) * (y - shift) * (-scale).exp()


class RealNVP(nn.Module):
    """A density on R^D: ``layers`` affine couplings on N(0, I).

    Args:
        dim: D. layers: coupling layers. hidden: units of each coupling's two hidden layers.
        seed: seeds the masks (each keeps a random half of the coordinates).
    """

    def __init__(self, dim: int, layers: int, hidden: int, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        masks = [torch.randperm(dim, generator=generator) < dim // 2 for _ in range(layers)]
        self.couplings = nn.ModuleList(AffineCoupling(m, hidden) for m in masks)
        self.dim = dim

    def to_base(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """u = f(z) and log |det df/dz|: (N, D) -> (N, D), (N,)."""
        log_det = torch.zeros(z.size(0), device=z.device)
        for coupling in self.couplings:
            z, step = coupling(z)
            log_det = log_det + step
        return z, log_det

    def log_prob(self, z: Tensor) -> Tensor:
        """log p(z): (N, D) -> (N,)."""
        u, log_det = self.to_base(z.float())
        return -0.5 * (u.pow(2).sum(-1) + self.dim * math.log(2 * math.pi)) + log_det

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n codes (n, D) float32 on the flow's device: u ~ N(0, I) mapped back through the
        couplings."""
        device = next(self.parameters()).device
        x = torch.randn(n, self.dim, generator=generator).to(device)
        for coupling in reversed(self.couplings):
            x = coupling.inverse(x)
        return x


def fit_flow(train_mu: Tensor, train_logvar: Tensor, valid_codes: Tensor, layers: int = 8,
             hidden: int = 256, epochs: int = 10, batch_size: int = 512, lr: float = 1e-3,
             seed: int = 0, log: Callable[[str], None] = to_stderr) -> tuple[RealNVP, list[float]]:
    """Fit a :class:`RealNVP` by maximum likelihood to draws from the posteriors
    N(train_mu, exp(train_logvar)) (each (N, D)), a fresh draw of every code each epoch, with
    Adam and a cosine learning rate. Returns the flow (in eval mode) and the mean
    log-likelihood per code of ``valid_codes`` (M, D) after each epoch."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    mu, logvar = train_mu.detach().float().cpu(), train_logvar.detach().float().cpu()
    flow = RealNVP(mu.size(1), layers, hidden, seed)
    optimizer = torch.optim.Adam(flow.parameters(), lr=lr)
    steps = max(1, len(mu) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps)
    history = []
    for epoch in range(epochs):
        flow.train()
        codes = reparameterize(mu, logvar, generator=generator)
        order = torch.randperm(len(codes), generator=generator)
        for step in range(steps):
            batch = codes[order[step * batch_size:(step + 1) * batch_size]]
            loss = -flow.log_prob(batch).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        flow.eval()
        with torch.no_grad():
            history.append(flow.log_prob(valid_codes.float()).mean().item())
        log(f"seqvae: flow epoch {epoch + 1}/{epochs}: held-out log-likelihood "
            f"{history[-1]:.2f} nats per code")
    return flow, history
