"""Does a molecule's latent code carry the molecule? Reconstruction, measured the two ways the
literature measures it.

- :func:`greedy_reconstruction`: the greedy decode of the posterior mean is the same molecule
  (canonical SMILES equal), as in the MOSES results (docs/results/moses.md).
- :func:`stochastic_reconstruction`: the protocol of Kusner et al. 2017 (GVAE) and Jin et al.
  2018 (JT-VAE): ``encodings`` draws z ~ q(z|x) per molecule, ``decodes`` stochastic decodes of
  each, and the share of all decodes that are the input molecule.

Text reconstruction (exact match, BLEU) lives with the likelihood metrics in
:mod:`seqvae.evaluation`.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..api import TrainedVAE
from .chemistry import canonical


def _parsable(smiles: Sequence[str]) -> tuple[list[str], list[str], int]:
    """The inputs RDKit can parse, their canonical forms, and how many were left out."""
    pairs = [(s, c) for s, c in ((s, canonical(s)) for s in smiles) if c]
    return [s for s, _ in pairs], [c for _, c in pairs], len(smiles) - len(pairs)


def greedy_reconstruction(vae: TrainedVAE, smiles: Sequence[str]) -> dict[str, Any]:
    """Share of molecules whose greedy decode of the posterior mean is the same molecule.

    Returns ``share``, the number of ``molecules`` scored, and how many inputs were
    ``skipped`` because RDKit cannot parse them.
    """
    inputs, targets, skipped = _parsable(smiles)
    decoded = vae.reconstruct(inputs, check=False) if inputs else []
    hits = [canonical(d) == t for d, t in zip(decoded, targets)]
    return {"share": float(np.mean(hits)) if hits else 0.0, "molecules": len(hits),
            "skipped": skipped}


def stochastic_reconstruction(vae: TrainedVAE, smiles: Sequence[str], encodings: int = 10,
                              decodes: int = 10, temperature: float = 1.0,
                              seed: int = 0) -> dict[str, Any]:
    """Kusner et al. 2017 / Jin et al. 2018: draw ``encodings`` codes z ~ q(z|x) per molecule,
    decode each ``decodes`` times by sampling at ``temperature``, and count the decodes that
    are the input molecule.

    Returns ``share`` (of all decodes), ``any`` (the share of molecules reconstructed by at
    least one decode), and the counts: ``molecules``, ``encodings``, ``decodes`` per encoding,
    ``skipped`` inputs that RDKit cannot parse.
    """
    inputs, targets, skipped = _parsable(smiles)
    counts = {"molecules": len(inputs), "encodings": encodings, "decodes": decodes,
              "skipped": skipped}
    if not inputs:
        return {"share": 0.0, "any": 0.0, **counts}
    mu, logvar = vae.encode_posterior(inputs, check=False)                  # (n, D) each
    eps = torch.randn((len(inputs), encodings, vae.latent_dim),
                      generator=torch.Generator().manual_seed(seed)).numpy()
    z = mu[:, None, :] + eps * np.exp(0.5 * logvar)[:, None, :]              # (n, E, D)
    z = np.repeat(z, decodes, axis=1).reshape(-1, vae.latent_dim)           # (n * E * R, D)
    decoded = vae.decode(z, method="sample", temperature=temperature, seed=seed)
    per_molecule = encodings * decodes
    hits = np.array([canonical(d) == targets[i // per_molecule] for i, d in enumerate(decoded)])
    hits = hits.reshape(len(inputs), per_molecule)
    return {"share": float(hits.mean()), "any": float(hits.any(axis=1).mean()), **counts}
