"""The MOSES benchmark metrics (Polykovskiy et al. 2020), as functions of SMILES lists.

Definitions follow the MOSES paper and molsets 0.3.1:
    - validity: the share of generated strings RDKit parses and sanitises;
    - unique@k: distinct canonical SMILES among the first k valid molecules, as a share of k;
    - novelty: the share of distinct valid molecules not in the training set;
    - IntDiv_p = 1 - mean_x (mean_y T(x, y)^p)^(1/p) over all pairs of generated molecules
      (self-pairs included), T the Tanimoto similarity of Morgan fingerprints;
    - SNN: mean over generated x of max_y T(x, y) over the reference set;
    - Frag / Scaf: cosine similarity of BRICS-fragment / Bemis-Murcko-scaffold count vectors;
    - filters: the share passing the MCF and PAINS substructure filters plus the MOSES
      training-set rules (no charges, atoms C N S O F Cl Br H, no ring larger than 8);
    - FCD: Fréchet ChemNet Distance (Preuer et al. 2018), from the ``fcd`` package.
Fingerprints are Morgan, radius 2, 1,024 bits, as MOSES.
"""
from __future__ import annotations

import csv
import io
import math
from collections import Counter
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np
from rdkit import Chem, DataStructs, RDLogger
from rdkit.Chem import BRICS, rdFingerprintGenerator
from rdkit.Chem.Scaffolds import MurckoScaffold

from .chemistry import canonical, to_molecule

RDLogger.DisableLog("rdApp.*")
FINGERPRINT_BITS = 1024
ALLOWED_ATOMS = frozenset({"C", "N", "S", "O", "F", "Cl", "Br", "H"})


def valid_canonical(smiles: Iterable[str]) -> list[str]:
    """Canonical SMILES of the valid strings, in their order (invalid ones left out)."""
    out = []
    for s in smiles:
        c = canonical(s)
        if c is not None:
            out.append(c)
    return out


def fraction_valid(smiles: Sequence[str]) -> float:
    return len(valid_canonical(smiles)) / len(smiles) if smiles else 0.0


def unique_at(valid: Sequence[str], k: int) -> float:
    """Distinct molecules among the first k valid canonical SMILES, as a share of them.

    Fewer than k valid molecules: the share among those there are (MOSES warns, and so does
    ``evaluate_molecules`` by reporting the count)."""
    head = valid[:k]
    return len(set(head)) / len(head) if head else 0.0


def novelty(valid: Sequence[str], train: set[str]) -> float:
    """Share of the distinct valid molecules that are not in ``train`` (canonical SMILES)."""
    distinct = set(valid)
    return len(distinct - train) / len(distinct) if distinct else 0.0


def fingerprints(smiles: Sequence[str]) -> np.ndarray:
    """Morgan radius-2, 1,024-bit fingerprints: N SMILES -> (N, 1024) uint8 (0/1)."""
    generator = _morgan()
    out = np.zeros((len(smiles), FINGERPRINT_BITS), dtype=np.uint8)
    for i, s in enumerate(smiles):
        mol = to_molecule(s)
        if mol is not None:
            DataStructs.ConvertToNumpyArray(generator.GetFingerprint(mol), out[i])
    return out


@lru_cache(maxsize=1)
def _morgan():
    return rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=FINGERPRINT_BITS)


def tanimoto(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Tanimoto similarity of every pair of binary fingerprints: (N, F), (M, F) -> (N, M).

    |a & b| / |a | b|; two empty fingerprints have similarity 1 (they are identical)."""
    a, b = a.astype(np.float32), b.astype(np.float32)
    both = a @ b.T
    either = a.sum(1, keepdims=True) + b.sum(1)[None] - both
    return np.where(either > 0, both / np.maximum(either, 1), 1.0)


def internal_diversity(fps: np.ndarray, p: int = 1, chunk: int = 2048) -> float:
    """IntDiv_p = 1 - mean_x (mean_y T(x, y)^p)^(1/p), y over all of the set (x included)."""
    if len(fps) == 0:
        return 0.0
    per_molecule = []
    for start in range(0, len(fps), chunk):
        sims = tanimoto(fps[start:start + chunk], fps)
        per_molecule.append((sims ** p).mean(axis=1) ** (1 / p))
    return float(1 - np.concatenate(per_molecule).mean())


def nearest_neighbour_similarity(fps: np.ndarray, reference: np.ndarray,
                                 chunk: int = 2048) -> float:
    """SNN: mean over the rows of ``fps`` of the largest Tanimoto similarity to ``reference``."""
    if len(fps) == 0 or len(reference) == 0:
        return 0.0
    best = [tanimoto(fps[s:s + chunk], reference).max(axis=1) for s in range(0, len(fps), chunk)]
    return float(np.concatenate(best).mean())


def fragment_counts(smiles: Iterable[str]) -> Counter:
    """BRICS fragments (Degen et al. 2008) of each molecule, counted over the set."""
    counts: Counter = Counter()
    for s in smiles:
        mol = to_molecule(s)
        if mol is not None:
            counts.update(BRICS.BRICSDecompose(mol))
    return counts


def scaffold_counts(smiles: Iterable[str]) -> Counter:
    """Bemis-Murcko scaffolds (canonical SMILES) counted over the set; acyclic molecules,
    whose scaffold is empty, are not counted (as MOSES)."""
    counts: Counter = Counter()
    for s in smiles:
        mol = to_molecule(s)
        if mol is None:
            continue
        scaffold = Chem.MolToSmiles(MurckoScaffold.GetScaffoldForMol(mol))
        if scaffold:
            counts[scaffold] += 1
    return counts


def cosine_similarity(a: Counter, b: Counter) -> float:
    """Cosine of the angle between two count vectors over the union of their keys."""
    dot = sum(v * b.get(k, 0) for k, v in a.items())
    norm = math.sqrt(sum(v * v for v in a.values())) * math.sqrt(sum(v * v for v in b.values()))
    return dot / norm if norm else 0.0


def passes_filters(smiles: str, patterns: Sequence[Chem.Mol]) -> bool:
    """The MOSES medicinal-chemistry filters: no charged atom, only C N S O F Cl Br H, no ring
    of 8 or more atoms, and none of the MCF/PAINS substructures."""
    mol = to_molecule(smiles)
    if mol is None:
        return False
    if any(len(ring) >= 8 for ring in mol.GetRingInfo().AtomRings()):
        return False
    if any(atom.GetFormalCharge() != 0 or atom.GetSymbol() not in ALLOWED_ATOMS
           for atom in mol.GetAtoms()):
        return False
    with_h = Chem.AddHs(mol)
    return not any(with_h.HasSubstructMatch(p) for p in patterns)


def filter_pass_rate(smiles: Sequence[str], patterns: Sequence[Chem.Mol]) -> float:
    return float(np.mean([passes_filters(s, patterns) for s in smiles])) if smiles else 0.0


def smarts_patterns(text: str, column: int, header: bool) -> list[Chem.Mol]:
    """SMARTS patterns from one column of a CSV table; rows RDKit cannot read are skipped."""
    rows = list(csv.reader(io.StringIO(text)))[1 if header else 0:]
    patterns = (Chem.MolFromSmarts(row[column].strip()) for row in rows if len(row) > column)
    return [p for p in patterns if p is not None]


@lru_cache(maxsize=1)
def moses_filters() -> tuple[Chem.Mol, ...]:
    """The MCF (22) and PAINS (480) SMARTS that MOSES filters with, read from the molsets wheel
    that also carries the MOSES data (fetched once with pip, see :mod:`seqvae.corpora`)."""
    from .corpora import molsets_member
    mcf = smarts_patterns(molsets_member("moses/metrics/mcf.csv").decode(), 1, header=True)
    pains = smarts_patterns(molsets_member("moses/metrics/wehi_pains.csv").decode(), 0, header=False)
    return tuple(mcf + pains)


def frechet_chemnet_distance(smiles: Sequence[str] | tuple[np.ndarray, np.ndarray],
                             reference_stats: tuple[np.ndarray, np.ndarray], model=None) -> float:
    """FCD of ``smiles`` (or of their :func:`chemnet_stats`, to compare one set with several
    references without running ChemNet again) to a reference set given by its ChemNet
    activation mean and covariance."""
    from fcd import calculate_frechet_distance
    mu, sigma = smiles if isinstance(smiles, tuple) else chemnet_stats(smiles, model)
    return float(calculate_frechet_distance(mu, sigma, *reference_stats))


def chemnet_stats(smiles: Sequence[str], model=None) -> tuple[np.ndarray, np.ndarray]:
    """Mean (512,) and covariance (512, 512) of ChemNet's penultimate activations."""
    from fcd import get_predictions
    if len(smiles) < 2:
        raise ValueError("FCD needs at least two molecules")
    activations = get_predictions(model or chemnet(), list(smiles))
    return activations.mean(axis=0), np.cov(activations.T)


@lru_cache(maxsize=1)
def chemnet():
    """The ChemNet weights shipped with the ``fcd`` package, loaded once."""
    from fcd import load_ref_model
    return load_ref_model()
