"""Gradient-based optimisation of molecular properties in latent space
(Gómez-Bombarelli et al. 2018), with every proposed molecule checked by RDKit.

Starting codes (posterior means of given molecules, or prior samples) climb the property
head's prediction by gradient ascent, optionally held near the prior's mass by a penalty on
-log p(z) (so the search does not wander into regions the decoder never saw). Along the way the
codes are decoded several times (greedy plus samples); every decode is parsed and sanitised by
RDKit, and valid ones are scored with their true property, recomputed by RDKit. Invalid decodes
are counted, never returned.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from rdkit import Chem
from tqdm.auto import tqdm

from ..api import TrainedVAE
from ..errors import SeqVAEError
from ..logs import to_stderr
from ..parallel import parallel_map
from .chemistry import (
    TARGET_PROPERTIES,
    canonical,
    compute_properties,
    normalized_penalized_logp,
    target_properties,
)
from .moses_metrics import fingerprints, tanimoto

OBJECTIVES = ("qed", "logp", "plogp")
CSV_FIELDS = ["start", "step", "smiles", "valid", "true_property", "predicted_property",
              "similarity"]


@dataclass
class OptimizationResult:
    objective: str
    rows: list[dict[str, Any]] = field(default_factory=list)   # every decode, CSV_FIELDS
    decodes: int = 0
    valid_decodes: int = 0
    start_values: dict[str, float] = field(default_factory=dict)  # start molecule -> property

    @property
    def validity(self) -> float:
        return self.valid_decodes / self.decodes if self.decodes else 0.0

    def candidates(self, similarity_min: float | None = None) -> list[dict[str, Any]]:
        """Valid decodes, best true property first; with ``similarity_min``, only those at
        least that similar to their start molecule (prior starts have no similarity)."""
        rows = [r for r in self.rows if r["valid"] and (
            similarity_min is None or (r["similarity"] is not None
                                       and r["similarity"] >= similarity_min))]
        return sorted(rows, key=lambda r: -r["true_property"])

    def best(self, k: int = 10, similarity_min: float | None = None,
             max_heavy_atoms: int | None = None) -> list[dict[str, Any]]:
        """The k best distinct valid molecules by true property; with ``max_heavy_atoms``,
        only those with at most that many heavy atoms (GCPN and MolDQN cap their molecules at
        38, so that long chains cannot inflate penalised logP)."""
        seen, out = set(), []
        for r in self.candidates(similarity_min):
            if max_heavy_atoms is not None and heavy_atoms(r["smiles"]) > max_heavy_atoms:
                continue
            if r["smiles"] not in seen:
                seen.add(r["smiles"])
                out.append(r)
            if len(out) == k:
                break
        return out

    def constrained(self, delta: float) -> dict[str, float]:
        """The constrained-optimisation benchmark of Jin et al. 2018 (JT-VAE, section 4.3).

        For each start molecule, its best decode that is a different molecule with Morgan
        Tanimoto similarity >= delta to it; the start succeeds when that decode's true property
        beats the start's own. As in the paper, improvement and similarity are averaged over the
        successful starts.

        Returns:
            starts, success (share of starts), improvement and similarity (means over the
            successes, NaN when there are none) and improvement_all (mean over every start,
            failures counting as 0).
        """
        return constrained_summary(self.rows, self.start_values, delta)

    def normalized(self) -> "OptimizationResult":
        """The same decodes scored with JT-VAE's normalised penalised logP
        (:func:`~seqvae.molecules.chemistry.normalized_penalized_logp`), so that :meth:`constrained`
        gives figures on the scale of Jin et al. 2018's table. Only for the plogp objective."""
        if self.objective != "plogp":
            raise SeqVAEError("the JT-VAE normalisation is defined for --objective plogp only")
        smiles = sorted(set(self.start_values) | {r["smiles"] for r in self.rows if r["valid"]})
        score = dict(zip(smiles, parallel_map(normalized_penalized_logp, smiles, chunksize=500)))
        rows = [{**r, "true_property": score[r["smiles"]]} if r["valid"] else r for r in self.rows]
        return OptimizationResult(self.objective, rows, self.decodes, self.valid_decodes,
                                  {s: score[s] for s in self.start_values})

    def write_csv(self, path: str | Path) -> None:
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, CSV_FIELDS)
            writer.writeheader()
            for r in self.rows:
                writer.writerow({k: ("" if r[k] is None else r[k]) for k in CSV_FIELDS})


def constrained_summary(rows: Sequence[dict[str, Any]], start_values: dict[str, float],
                        delta: float) -> dict[str, float]:
    """See :meth:`OptimizationResult.constrained`.

    Args:
        rows: decodes, as :attr:`OptimizationResult.rows`.
        start_values: true property of each start molecule, keyed by its canonical SMILES.
    """
    best: dict[str, dict[str, Any]] = {}
    for r in rows:
        if (r["valid"] and r["start"] in start_values and r["smiles"] != r["start"]
                and r["similarity"] is not None and r["similarity"] >= delta
                and (r["start"] not in best or r["true_property"] > best[r["start"]]["true_property"])):
            best[r["start"]] = r
    gains, sims = [], []
    for start, value in start_values.items():
        r = best.get(start)
        if r is not None and r["true_property"] > value:
            gains.append(r["true_property"] - value)
            sims.append(r["similarity"])
    n = len(start_values)
    return {"delta": delta, "starts": n, "success": len(gains) / n if n else float("nan"),
            "improvement": float(np.mean(gains)) if gains else float("nan"),
            "improvement_std": float(np.std(gains)) if gains else float("nan"),
            "similarity": float(np.mean(sims)) if sims else float("nan"),
            "improvement_all": float(np.sum(gains) / n) if n else float("nan")}


def lowest_test_molecules(vae: TrainedVAE, objective: str, n: int,
                          log=to_stderr) -> list[tuple[str, float]]:
    """The n molecules of the model's test split with the lowest true ``objective`` (RDKit,
    computed once and cached), lowest first: the starts of the constrained benchmark
    (Jin et al. 2018 use the 800 lowest penalised-logP molecules of their test set)."""
    if objective not in OBJECTIVES:
        raise SeqVAEError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    data = vae.corpus(log=log)
    test = data.texts.get("test") or []
    if not test:
        raise SeqVAEError("the model's corpus has no test split to take start molecules from")
    values = compute_properties(test, log=log)[:, TARGET_PROPERTIES.index(objective)]
    order = [i for i in np.argsort(values, kind="stable") if np.isfinite(values[i])]
    picked, seen = [], set()
    for i in order:
        canon = canonical(test[i])
        if canon and canon not in seen:
            seen.add(canon)
            picked.append((canon, float(values[i])))
        if len(picked) == n:
            break
    if not picked:
        raise SeqVAEError(f"no test molecule has a finite {objective}; RDKit could not score any")
    return picked


def optimize(vae: TrainedVAE, objective: str, starts: Sequence[str] | None = None,
             from_prior: int = 0, steps: int = 100, lr: float = 0.05, prior_weight: float = 0.0,
             decode_every: int = 10, samples_per_point: int = 3, temperature: float = 1.0,
             seed: int = 0, restarts: int = 1, progress: bool = False) -> OptimizationResult:
    """Climb ``objective`` (qed, logp or plogp) from each start by gradient ascent on z.

    Args:
        starts: SMILES to start from (their posterior means); all must be valid molecules.
        from_prior: also start from this many codes drawn from the prior.
        steps: Adam steps on z (all starts at once, one batch).
        lr: Adam learning rate on z.
        prior_weight: lambda of the penalty -lambda * log p(z) under the model's prior
            (:meth:`TrainedVAE.prior_log_prob`; for N(0, I), lambda * ||z||^2 / 2 + const).
        decode_every: decode the codes every this many steps (and at step 0 and the end).
        samples_per_point: decodes by temperature sampling per point, besides the greedy one.
        restarts: paths per start molecule: one from its posterior mean, the others from
            draws z ~ q(z|x) of it (seeded), each climbing on its own; a start's decodes are
            pooled over its paths.
    Returns:
        every decode (with its start, step, validity, true and predicted property and
        Tanimoto similarity to the start molecule) and the decode counts.
    """
    if objective not in OBJECTIVES:
        raise SeqVAEError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    head = vae.model.property_head
    if head is None:
        raise SeqVAEError("this model has no property head; train with --property-head N, or "
                          "fit one with: seqvae fit-properties CHECKPOINT")
    starts = list(starts or [])
    bad = vae.problems(starts)
    if bad:
        i, reason = next(iter(bad.items()))
        raise SeqVAEError(f"start molecule {starts[i]!r} is {reason}")
    if not starts and from_prior < 1:
        raise SeqVAEError("nothing to optimise: give start molecules or --from-prior N")
    if restarts < 1:
        raise SeqVAEError("restarts must be at least 1")
    column = TARGET_PROPERTIES.index(objective)
    codes = [_start_codes(vae, starts, restarts, seed)] if starts else []
    if from_prior:
        codes.append(vae.prior_codes(from_prior, seed=seed))
    unique_starts = [canonical(s) for s in starts]
    molecules = unique_starts * restarts                       # the start of each path
    names = molecules + [f"prior:{i}" for i in range(from_prior)]
    start_fps = np.tile(fingerprints(unique_starts), (restarts, 1)) if starts else None

    device = vae.model.device
    z = torch.tensor(np.concatenate(codes), device=device, requires_grad=True)
    optimizer = torch.optim.Adam([z], lr=lr)
    result = OptimizationResult(objective)
    result.start_values = {name: _true_properties(name)[column] for name in unique_starts}
    for p in vae.model.parameters():  # only z moves
        p.requires_grad_(False)
    checkpoints = sorted(set(range(0, steps + 1, max(1, decode_every))) | {steps})
    for step in tqdm(range(steps + 1), disable=not progress, unit="step", desc=f"optimising {objective}"):
        if step in checkpoints:
            _decode_and_score(vae, z.detach(), step, names, start_fps, len(molecules), column,
                              samples_per_point, temperature, seed + step, result)
        if step == steps:
            break
        loss = -head.predict(z)[:, column].sum()
        if prior_weight:   # a diffusion prior has no log p(z): only ask for it when used
            loss = loss - prior_weight * vae.prior_log_prob(z).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    for p in vae.model.parameters():
        p.requires_grad_(True)
    return result


def _start_codes(vae: TrainedVAE, starts: Sequence[str], restarts: int, seed: int) -> np.ndarray:
    """(restarts * len(starts), D) codes: the posterior means, then ``restarts - 1`` rounds of
    draws from each posterior, in that order."""
    mu, logvar = vae.encode_posterior(starts, check=False)
    rng = np.random.default_rng(seed)
    draws = [mu + np.exp(0.5 * logvar) * rng.standard_normal(mu.shape).astype(np.float32)
             for _ in range(restarts - 1)]
    return np.concatenate([mu, *draws])


@lru_cache(maxsize=200_000)
def heavy_atoms(smiles: str) -> int:
    """Number of heavy (non-hydrogen) atoms of a valid SMILES."""
    return Chem.MolFromSmiles(smiles).GetNumHeavyAtoms()


@lru_cache(maxsize=200_000)
def _true_properties(canonical_smiles: str) -> tuple[float, ...]:
    """RDKit properties of a valid canonical SMILES, memoised: decodes repeat a lot."""
    return tuple(float(v) for v in target_properties(canonical_smiles))


def _decode_and_score(vae: TrainedVAE, z: torch.Tensor, step: int, names: list[str],
                      start_fps: np.ndarray | None, n_molecule_starts: int, column: int,
                      samples_per_point: int, temperature: float, seed: int,
                      result: OptimizationResult) -> None:
    with torch.no_grad():
        predicted = vae.model.property_head.predict(z)[:, column].cpu().numpy()
    codes = z.cpu().numpy()
    decoded = [vae.decode(codes)]
    if samples_per_point:
        repeated = np.repeat(codes, samples_per_point, axis=0)
        sampled = vae.decode(repeated, method="sample", temperature=temperature, seed=seed)
        decoded += [sampled[j::samples_per_point] for j in range(samples_per_point)]
    for texts in decoded:
        for i, smiles in enumerate(texts):
            result.decodes += 1
            canon = canonical(smiles)
            row = {"start": names[i], "step": step, "smiles": canon or smiles, "valid": canon is not None,
                   "true_property": None, "predicted_property": float(predicted[i]),
                   "similarity": None}
            if canon is not None:
                result.valid_decodes += 1
                row["true_property"] = _true_properties(canon)[column]
                if start_fps is not None and i < n_molecule_starts:
                    row["similarity"] = float(tanimoto(fingerprints([canon]), start_fps[i:i + 1])[0, 0])
            result.rows.append(row)


def neighbourhood(vae: TrainedVAE, smiles: str, n: int = 50, scale: float = 0.3,
                  seed: int = 0) -> list[dict[str, Any]]:
    """Molecules decoded (greedily) from n codes around a molecule's posterior mean,
    z = mu + scale * eps: each with its validity and Morgan Tanimoto similarity to the molecule.
    Distinct valid ones first, most similar first; invalid decodes are dropped but counted in
    the last field ``valid_share`` of every row."""
    bad = vae.problems([smiles])
    if bad:
        raise SeqVAEError(f"{smiles!r} is {bad[0]}")
    vae.require_latent("explore a neighbourhood")
    mu = vae.encode([smiles], check=False)
    noise = np.random.default_rng(seed).standard_normal((n, mu.shape[1])).astype(np.float32)
    decoded = vae.decode(mu + scale * noise)
    canon = [canonical(d) for d in decoded]
    valid = sorted({c for c in canon if c})
    share = sum(c is not None for c in canon) / n
    sims = tanimoto(fingerprints(valid), fingerprints([canonical(smiles)]))[:, 0] if valid else []
    rows = [{"smiles": s, "similarity": float(t), "times_decoded": canon.count(s),
             "valid_share": share} for s, t in zip(valid, sims)]
    return sorted(rows, key=lambda r: -r["similarity"])
