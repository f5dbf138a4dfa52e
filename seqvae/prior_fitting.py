"""Fitting a prior to a trained model's codes (``seqvae fit-prior``) and writing it into a new
checkpoint. The densities: :mod:`seqvae.mixture_prior`, :mod:`seqvae.latent_flow` and
:mod:`seqvae.latent_diffusion`.

Each is fitted to the aggregate posterior q(z) = E_x q(z|x) of the training split (Hoffman &
Johnson 2016). The mixture and the flow are judged by the mean log-likelihood of draws
z ~ q(z|x) of validation sequences (the higher, the closer the density to where the decoder
was trained); the diffusion model, which has no likelihood, by its denoising loss on them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from .api import TrainedVAE
from .checkpoint import load_checkpoint, save_checkpoint
from .data import TokenizedSplit
from .devices import resolve_device, resolve_precision
from .errors import SeqVAEError
from .gaussian import reparameterize, standard_normal_log_prob
from .latent_diffusion import fit_diffusion
from .latent_flow import fit_flow
from .logs import to_stderr
from .mixture_prior import GaussianMixture, fit_gaussian_mixture

ENCODE_BATCH = 1024  # sequences per encoder call (no gradients: large is fine)


def posteriors(vae: TrainedVAE, split: TokenizedSplit, n: int,
               seed: int = 0) -> tuple[Tensor, Tensor]:
    """Posterior means and log-variances of n sequences chosen at random from ``split`` (n is
    capped at its size): two (n, D) fp32 tensors on the CPU."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(split), size=min(n, len(split)), replace=False))
    mu, logvar = vae.encode_split(split.select(rows), ENCODE_BATCH)
    return mu.float().cpu(), logvar.float().cpu()


def draw(mu: Tensor, logvar: Tensor, seed: int = 0) -> Tensor:
    """One z ~ N(mu, exp(logvar)) per row: (N, D) -> (N, D)."""
    return reparameterize(mu, logvar, generator=torch.Generator().manual_seed(seed))


def standard_log_likelihood(codes: Tensor) -> float:
    """Mean log N(z | 0, I) of codes (N, D), in nats per code."""
    return standard_normal_log_prob(codes).mean().item()


def score_name(kind: str, components: int = 0, layers: int = 0, hidden: int = 0) -> str:
    """A fitted density's short name, the key of its held-out score in the fit record and its
    row in the fit report: ``mixture K=4``, ``flow 8x256``, ``diffusion 4x256``."""
    return f"mixture K={components}" if kind == "mixture" else f"{kind} {layers}x{hidden}"


def choose_mixture(train_codes: Tensor, valid_codes: Tensor, components: Sequence[int],
                   seed: int = 0, iterations: int = 100, log: Callable[[str], None] = to_stderr,
                   ) -> tuple[GaussianMixture, dict[str, float]]:
    """Fit a mixture with each number of ``components`` to ``train_codes`` (N, D) and keep the
    one under which ``valid_codes`` (M, D) are most likely.

    Returns the chosen mixture and the held-out mean log-likelihood per code (nats) of each
    candidate, keyed ``"N(0, I)"`` for the standard prior and ``"mixture K=..."``.
    """
    standard = standard_log_likelihood(valid_codes)
    scores = {"N(0, I)": standard}
    best: tuple[float, GaussianMixture] | None = None
    for k in components:
        mixture = fit_gaussian_mixture(train_codes, k, iterations=iterations, seed=seed)
        with torch.no_grad():
            score = mixture.log_prob(valid_codes).mean().item()
        scores[score_name("mixture", components=k)] = score
        log(f"seqvae: mixture of {k}: held-out log-likelihood {score:.2f} nats per code "
            f"(N(0, I): {standard:.2f})")
        if best is None or score > best[0]:
            best = (score, mixture)
    if best is None:
        raise SeqVAEError("--components takes at least one number")
    return best[1], scores


# layers (couplings or residual blocks), hidden units and passes over the codes, by kind
SIZES = {"flow": (8, 256, 10), "diffusion": (4, 256, 30), "mixture": (0, 0, 0)}


DENSITY_SIZES = ("components", "layers", "hidden")


def kept_density(vae: TrainedVAE, kind: str) -> tuple[torch.nn.Module | None, dict[str, str | int]]:
    """The density to keep beside a new prior of ``kind``, and the config fields
    (``density_*``) that describe it. A diffusion model (no density) that replaces a fitted
    mixture or flow keeps that one to give log p(z); one that refits a diffusion model keeps the
    density it kept. Any other kind keeps none: (None, the fields of "none")."""
    c = vae.config.model
    if kind == "diffusion" and c.latent_prior in ("mixture", "flow"):
        module, source, prefix = vae.model.latent_prior, c.latent_prior, "prior"
    elif kind == "diffusion" and c.density_prior != "none":
        module, source, prefix = vae.model.latent_density, c.density_prior, "density"
    else:
        return None, {"density_prior": "none", **{f"density_{s}": 0 for s in DENSITY_SIZES}}
    return module, {"density_prior": source,
                    **{f"density_{s}": getattr(c, f"{prefix}_{s}") for s in DENSITY_SIZES}}


def add_fitted_prior(checkpoint: str | Path, out: str | Path, kind: str = "flow",
                     components: Sequence[int] = (1, 4, 16), layers: int | None = None,
                     hidden: int | None = None, epochs: int | None = None,
                     n_train: int = 200_000, n_valid: int = 10_000, seed: int = 0,
                     device: str = "auto",
                     log: Callable[[str], None] = to_stderr) -> dict[str, object]:
    """Fit a prior of ``kind`` (``flow``, ``diffusion`` or ``mixture``) to the aggregate
    posterior of a trained model's training split and write a new checkpoint ``out`` holding
    the model with it. A mixture's number of components is chosen among ``components`` on the
    validation split; ``layers``, ``hidden`` and ``epochs`` default to :data:`SIZES` of the
    kind. Returns what was measured (also kept in the checkpoint's train_state["prior"])."""
    if kind not in SIZES:
        raise SeqVAEError(f"the prior is a flow, a diffusion model or a mixture, not {kind!r}")
    default_layers, default_hidden, default_epochs = SIZES[kind]
    layers = default_layers if layers is None else layers
    hidden = default_hidden if hidden is None else hidden
    epochs = default_epochs if epochs is None else epochs
    if min([*components, n_train, n_valid]) < 1 or (
            kind != "mixture" and min(layers, hidden, epochs) < 1):
        raise SeqVAEError("--components, --layers, --hidden, --epochs, --train-codes and "
                          "--valid-codes must be at least 1")
    loaded = load_checkpoint(checkpoint, resolve_device(device))
    vae = TrainedVAE(loaded.config, loaded.tokenizer, loaded.model, prior="standard")
    vae.require_latent("fit a prior")
    if vae.model.has_learned_prior:
        raise SeqVAEError(f"{checkpoint} was trained with a learned prior (--learned-prior "
                          f"{vae.config.model.learned_prior}), which is already fitted to its "
                          "codes and is the p(z) of its ELBO; sample from it as it is")
    data = vae.corpus(log=log)
    if not len(data.splits.get("valid", [])):
        raise SeqVAEError(f"{checkpoint}: its corpus has no validation split to judge the "
                          "prior on")
    train_mu, train_logvar = posteriors(vae, data.splits["train"], n_train, seed)
    valid_codes = draw(*posteriors(vae, data.splits["valid"], n_valid, seed + 1), seed + 1)
    log(f"seqvae: encoded {len(train_mu):,} training and {len(valid_codes):,} validation "
        "sequences")
    measured: dict[str, float] = {}
    if kind == "mixture":
        prior, scores = choose_mixture(draw(train_mu, train_logvar, seed), valid_codes,
                                       components, seed, log=log)
        sizes = {"prior_components": prior.components}
    elif kind == "flow":
        prior, history = fit_flow(train_mu, train_logvar, valid_codes, layers=layers,
                                  hidden=hidden, epochs=epochs, seed=seed, log=log)
        scores = {"N(0, I)": standard_log_likelihood(valid_codes),
                  score_name("flow", layers=layers, hidden=hidden): history[-1]}
        sizes = {"prior_layers": layers, "prior_hidden": hidden}
    else:
        # bf16 where the CPU has a fast path (the codes are fitted on the CPU)
        precision, _ = resolve_precision("auto", torch.device("cpu"))
        prior, history = fit_diffusion(train_mu, train_logvar, valid_codes, blocks=layers,
                                       hidden=hidden, epochs=epochs, precision=precision,
                                       seed=seed, log=log)
        # it has no likelihood to compare: its own validation loss is recorded instead
        scores = {"N(0, I)": standard_log_likelihood(valid_codes)}
        sizes = {"prior_layers": layers, "prior_hidden": hidden}
        measured = {"held_out_denoising_loss": history[-1]}
    vae.model.latent_density, density = kept_density(vae, kind)
    kept = density if density["density_prior"] != "none" else {}
    if kept:
        log(f"seqvae: the {kept['density_prior']} fitted before is kept beside the "
            "diffusion model, for log p(z)")
    vae.model.latent_prior = prior.to(vae.model.device)
    config = vae.config.override("model", latent_prior=kind, **{
        "prior_components": 0, "prior_layers": 0, "prior_hidden": 0, **sizes, **density})
    record = {"kind": kind, **sizes, **measured, **kept, "train_codes": len(train_mu),
              "valid_codes": len(valid_codes), "held_out_log_likelihood": scores}
    save_checkpoint(out, config, vae.tokenizer, vae.model,
                    train_state={**loaded.blob.get("train_state", {}), "prior": record})
    return record
