"""A diffusion model fitted to a trained model's codes: a sampling prior for codes that lie on
a thin part of the latent space, where a flow or a mixture spreads its mass too widely.

A denoising diffusion model (Ho et al. 2020) on the D-dimensional codes, as latent diffusion
models put one on a VAE's latent space (Vahdat et al. 2021; Rombach et al. 2022). A code z, once
standardised per dimension to x0, is noised to x_t = sqrt(a(t)) x0 + sqrt(1 - a(t)) eps with
the cosine schedule a(t) of Nichol & Dhariwal 2021 (t in [0, 1]); an MLP of residual blocks
learns to predict eps from (x_t, t). Sampling starts from x_1 ~ N(0, I) and takes ``steps``
DDIM steps (Song et al. 2021) down to t = 0, with fresh noise at each step (eta = 1, the
ancestral sampler of DDPM on a coarser grid of times). The weights used are an exponential
moving average of the trained ones, as diffusion models are usually sampled.

It has no log-density in closed form, so unlike the flow it cannot score a code (``seqvae
optimize --prior-weight`` needs a density) and it is judged by the validation denoising loss
and by what its samples decode to. ``seqvae fit-prior --kind diffusion`` fits it
(:mod:`seqvae.prior_fitting`).
"""
from __future__ import annotations

import copy
import math
from typing import Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .errors import SeqVAEError
from .gaussian import reparameterize
from .logs import to_stderr

SAMPLING_STEPS = 100      # DDIM steps per sample; chosen on validation (docs/results/moses.md)
TIME_FEATURES = 32        # sine and cosine features of t, each
SCHEDULE_OFFSET = 0.008   # s of the cosine schedule (Nichol & Dhariwal 2021)
ALPHA_BAR_MIN = 1e-5      # a(1) is 0 in theory; a floor keeps 1 / sqrt(a) finite


def alpha_bar(t: Tensor) -> Tensor:
    """The cosine schedule: the share of the signal's variance left at time t (any shape, t in
    [0, 1]); 1 at t = 0, falling to the floor at t = 1."""
    s = SCHEDULE_OFFSET
    value = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2 / math.cos(s / (1 + s) * math.pi / 2) ** 2
    return value.clamp(ALPHA_BAR_MIN, 1.0)


class ResidualBlock(nn.Module):
    """h + W2 silu(W1 LayerNorm(h) + T t_features): a two-layer MLP that reads the time."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.inner = nn.Linear(width, 2 * width)
        self.time = nn.Linear(width, 2 * width)
        self.outer = nn.Linear(2 * width, width)

    def forward(self, h: Tensor, time: Tensor) -> Tensor:
        """(N, W), (N, W) -> (N, W)."""
        return h + self.outer(nn.functional.silu(self.inner(self.norm(h)) + self.time(time)))


class LatentDiffusion(nn.Module):
    """A density on R^D that can only be sampled: a noise predictor of ``blocks`` residual
    blocks of ``hidden`` units, and the per-dimension centre and scale of the codes it was
    fitted to (buffers, so that they travel in the checkpoint).

    Args:
        dim: D. blocks: residual blocks. hidden: their width.
    """

    def __init__(self, dim: int, blocks: int, hidden: int):
        super().__init__()
        self.dim = dim
        self.register_buffer("center", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        # the largest standardised code seen in fitting, per dimension: each step's estimate
        # of the clean code is clipped to it ("static thresholding", Saharia et al. 2022).
        # Near t = 1 that estimate divides the noisy code by sqrt(a(t)) ~ 0.003, so an
        # unclipped error in the predicted noise grows into codes far off the data.
        self.register_buffer("limit", torch.full((dim,), math.inf))
        # not saved: in a half-precision export its rounding (5e-4) would move the fastest
        # time feature, t * 1000 rad, by up to half a radian
        self.register_buffer("frequencies",
                             torch.exp(-math.log(10_000) * torch.arange(TIME_FEATURES) / TIME_FEATURES),
                             persistent=False)
        self.embed = nn.Linear(dim, hidden)
        self.embed_time = nn.Sequential(nn.Linear(2 * TIME_FEATURES, hidden), nn.SiLU(),
                                        nn.Linear(hidden, hidden))
        self.blocks = nn.ModuleList(ResidualBlock(hidden) for _ in range(blocks))
        self.head = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, dim))
        nn.init.zeros_(self.head[1].weight)   # predicts no noise at first
        nn.init.zeros_(self.head[1].bias)

    def forward(self, noisy: Tensor, t: Tensor) -> Tensor:
        """The predicted noise eps of standardised noisy codes: (N, D), t (N,) -> (N, D).

        A 0-dim ``t`` is one time for every code (sampling): its features are computed once
        and broadcast, which saves a third of each block's products."""
        angles = t.reshape(-1, 1) * 1000 * self.frequencies
        time = self.embed_time(torch.cat([angles.sin(), angles.cos()], dim=-1))
        h = self.embed(noisy)
        for block in self.blocks:
            h = block(h, time)
        return self.head(h)

    def standardize(self, z: Tensor) -> Tensor:
        """Codes to the model's coordinates: (N, D) -> (N, D)."""
        return (z - self.center) / self.scale

    def denoising_loss(self, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The mean squared error of the predicted noise at a uniform random time, per code:
        codes (N, D) -> (N,) (the simple loss of Ho et al. 2020)."""
        x0 = self.standardize(z.float())
        t = torch.rand(x0.size(0), generator=generator).to(x0.device)
        eps = torch.randn(x0.shape, generator=generator).to(x0.device)
        a = alpha_bar(t).unsqueeze(1)
        noisy = a.sqrt() * x0 + (1 - a).sqrt() * eps
        return (self(noisy, t) - eps).pow(2).mean(-1)

    def log_prob(self, z: Tensor) -> Tensor:
        raise SeqVAEError("a diffusion prior has no density to score codes with, which "
                          "optimize's --prior-weight needs: pass --prior-weight 0, or --prior "
                          "standard for N(0, I)'s, or fit a flow (seqvae fit-prior --kind flow)")

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None,
               steps: int = SAMPLING_STEPS, batch_size: int = 4096,
               progress: bool = False) -> Tensor:
        """n codes (n, D) float32 on the model's device, each from ``steps`` denoising steps
        (a progress bar over the steps on stderr with ``progress``)."""
        device = self.center.device
        x = torch.randn(n, self.dim, generator=generator).to(device)
        times = torch.linspace(1.0, 0.0, steps + 1)
        for now, then in tqdm(list(zip(times[:-1], times[1:])), disable=not progress,
                              unit="step", desc=f"denoising {n:,} codes"):
            a_now, a_then = alpha_bar(now), alpha_bar(then)
            eps = torch.cat([self(chunk, now.to(device)) for chunk in x.split(batch_size)])
            x0 = ((x - (1 - a_now).sqrt() * eps) / a_now.sqrt()).clamp(-self.limit, self.limit)
            # DDIM with eta = 1: the DDPM posterior's variance on this grid of times
            sigma = ((1 - a_then) / (1 - a_now) * (1 - a_now / a_then)).clamp(min=0).sqrt()
            direction = (1 - a_then - sigma ** 2).clamp(min=0).sqrt()
            noise = torch.randn(x.shape, generator=generator).to(device)
            x = a_then.sqrt() * x0 + direction * eps + sigma * noise
        return x * self.scale + self.center


def fit_diffusion(train_mu: Tensor, train_logvar: Tensor, valid_codes: Tensor, blocks: int = 4,
                  hidden: int = 256, epochs: int = 30, batch_size: int = 1024, lr: float = 1e-3,
                  ema: float = 0.999, precision: str = "fp32", seed: int = 0,
                  log: Callable[[str], None] = to_stderr) -> tuple[LatentDiffusion, list[float]]:
    """Fit a :class:`LatentDiffusion` to draws from the posteriors N(train_mu,
    exp(train_logvar)) (each (N, D)), a fresh draw of each batch's codes, with AdamW, a one-cycle
    learning rate and gradient clipping at 1. ``epochs`` passes of N codes each; ``precision``
    ``bf16`` runs the training passes under bf16 autocast (about twice as fast on a CPU with a
    bf16 path; the weights and their average stay fp32). Returns the averaged model (in eval
    mode) and the validation denoising loss of ``valid_codes`` (M, D) after each epoch (lower
    is better; the same noise each time, in fp32)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    mu, logvar = train_mu.detach().float().cpu(), train_logvar.detach().float().cpu()
    model = LatentDiffusion(mu.size(1), blocks, hidden)
    variance = logvar.exp()
    model.center.copy_(mu.mean(0))
    # the spread of the codes themselves: of the means, plus the posteriors' own variance
    model.scale.copy_((mu.var(0) + variance.mean(0)).sqrt().clamp(min=1e-4))
    spread = (variance.sqrt() / model.scale).amax(0)     # the widest posterior, standardised
    model.limit.copy_(model.standardize(mu).abs().amax(0) + 3 * spread)
    averaged = copy.deepcopy(model)
    steps_per_epoch = max(1, len(mu) // batch_size)
    total = epochs * steps_per_epoch
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total,
                                                   pct_start=0.02)
    history: list[float] = []
    for epoch in range(epochs):
        model.train()
        for _ in range(steps_per_epoch):
            rows = torch.randint(len(mu), (batch_size,), generator=generator)
            codes = reparameterize(mu[rows], logvar[rows], generator=generator)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = model.denoising_loss(codes, generator).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            with torch.no_grad():
                for kept, new in zip(averaged.parameters(), model.parameters()):
                    kept.lerp_(new, 1 - ema)
        averaged.eval()
        with torch.no_grad():
            history.append(averaged.denoising_loss(
                valid_codes, torch.Generator().manual_seed(seed + 1)).mean().item())
        log(f"seqvae: diffusion epoch {epoch + 1}/{epochs}: held-out denoising loss "
            f"{history[-1]:.4f}")
    return averaged, history
