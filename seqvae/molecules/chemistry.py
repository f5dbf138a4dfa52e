"""RDKit at the edge: is a SMILES a molecule, its canonical form, and its properties
(computed for a whole corpus once, in parallel, and cached)."""
from __future__ import annotations

import hashlib
import importlib
import os
import sys
import time
from typing import Callable, Iterable, Sequence

import numpy as np
from rdkit import Chem, RDLogger
from rdkit.Chem import QED, Crippen, Descriptors, RDConfig

from ..files import atomic_write, cache_dir
from ..logs import to_stderr
from ..parallel import parallel_map

RDLogger.DisableLog("rdApp.*")  # decoded junk would otherwise flood stderr with parse errors


def to_molecule(smiles: str) -> Chem.Mol | None:
    """The sanitised RDKit molecule of a SMILES, or None if it does not parse or sanitise."""
    if not smiles or not smiles.strip():
        return None
    return Chem.MolFromSmiles(smiles)  # sanitises by default


def is_valid(smiles: str) -> bool:
    """True when RDKit parses and sanitises the SMILES (the MOSES definition of validity)."""
    return to_molecule(smiles) is not None


def canonical(smiles: str) -> str | None:
    """RDKit's canonical SMILES, or None for an invalid one."""
    mol = to_molecule(smiles)
    return Chem.MolToSmiles(mol) if mol is not None else None


def kekule_smiles(smiles: str) -> str | None:
    """The canonical SMILES in Kekulé form (alternating single and double bonds, no aromatic
    atoms: c1ccccc1 -> C1=CC=CC=C1), or None where RDKit cannot parse or kekulise it."""
    mol = to_molecule(smiles)
    if mol is None:
        return None
    try:
        Chem.Kekulize(mol, clearAromaticFlags=True)
    except Exception:  # Chem.KekulizeException, which sanitised molecules should not raise
        return None
    return Chem.MolToSmiles(mol, kekuleSmiles=True)


def validity_and_uniqueness(smiles: Iterable[str]) -> dict[str, float]:
    """Share of valid SMILES, and share of distinct canonical molecules among the valid ones."""
    smiles = list(smiles)
    canon = [c for c in map(canonical, smiles) if c is not None]
    return {"n": len(smiles), "valid": len(canon) / max(len(smiles), 1),
            "unique": len(set(canon)) / max(len(canon), 1)}


PROPERTY_NAMES = ("logp", "qed", "sa", "mw")


def properties(smiles: str) -> dict[str, float] | None:
    """RDKit properties of a molecule, or None for an invalid SMILES:
    logP (Crippen, Wildman & Crippen 1999), QED (Bickerton et al. 2012), the synthetic
    accessibility score SA (Ertl & Schuffenhauer 2009; 1 easy .. 10 hard, from RDKit Contrib)
    and the molecular weight in daltons."""
    mol = to_molecule(smiles)
    return molecule_properties(mol) if mol is not None else None


def molecule_properties(mol: Chem.Mol) -> dict[str, float]:
    """:func:`properties` of a parsed, sanitised molecule."""
    return {"logp": Crippen.MolLogP(mol), "qed": QED.qed(mol), "sa": _sascorer().calculateScore(mol),
            "mw": Descriptors.MolWt(mol)}


def _sascorer():
    """RDKit ships the SA score in its Contrib folder, outside the importable package, so it
    is imported by path, on first use."""
    folder = os.path.join(RDConfig.RDContribDir, "SA_Score")
    if folder not in sys.path:
        sys.path.append(folder)
    return importlib.import_module("sascorer")


def randomized_smiles(smiles: str, seed: int) -> str | None:
    """A random valid SMILES of the same molecule (random atom order; Bjerrum 2017), the same
    for the same seed; None for an invalid input."""
    mol = to_molecule(smiles)
    if mol is None:
        return None
    return Chem.MolToRandomSmilesVect(mol, 1, randomSeed=seed)[0]


TARGET_PROPERTIES = ("logp", "qed", "sa", "plogp")


def ring_penalty(mol: Chem.Mol) -> int:
    """max(0, size of the largest ring - 6); 0 without rings."""
    return max(0, max((len(r) for r in mol.GetRingInfo().AtomRings()), default=0) - 6)


def plogp_terms(mol: Chem.Mol) -> dict[str, float]:
    """The three terms penalised logP adds up: Crippen logP, minus the SA score, minus
    :func:`ring_penalty`."""
    return {"logp": Crippen.MolLogP(mol), "minus_sa": -_sascorer().calculateScore(mol),
            "minus_ring": -ring_penalty(mol)}


def penalized_logp(mol: Chem.Mol) -> float:
    """Penalised logP, unnormalised: the sum of :func:`plogp_terms`. This is the variant of
    You et al. 2018 (GCPN) without the ZINC normalisation of Jin et al. 2018's JT-VAE code
    (:func:`normalized_penalized_logp`)."""
    return sum(plogp_terms(mol).values())


# Jin et al. 2018 (JT-VAE) standardise each term of penalised logP by its mean and standard
# deviation over ZINC-250k; these are the constants of their code. With them, scores are on
# the scale of JT-VAE's and MoFlow's tables.
JTVAE_PLOGP_NORMALISATION = {"logp": (2.4570953396190123, 1.434324401111988),
                             "minus_sa": (-3.0525811293166134, 0.8335207024513095),
                             "minus_ring": (-0.0485696876403053, 0.2860212110245455)}


def normalized_penalized_logp(smiles: str) -> float | None:
    """Penalised logP as JT-VAE scores it: the sum of the standardised terms logP, -SA and
    -ring penalty (:data:`JTVAE_PLOGP_NORMALISATION`); None when RDKit cannot parse it."""
    mol = to_molecule(smiles)
    if mol is None:
        return None
    terms = plogp_terms(mol)
    return sum((terms[k] - mean) / sd for k, (mean, sd) in JTVAE_PLOGP_NORMALISATION.items())


def target_properties(smiles: str) -> tuple[float, float, float, float] | None:
    """(logP, QED, SA, penalised logP) of a SMILES, or None when RDKit cannot parse it."""
    mol = to_molecule(smiles)
    if mol is None:
        return None
    terms = plogp_terms(mol)  # logP and SA once: SA is the slow one (~1 ms)
    return (terms["logp"], QED.qed(mol), -terms["minus_sa"], sum(terms.values()))


def draw_molecules(smiles: Sequence[str], legends: Sequence[str] | None = None,
                   per_row: int = 4, size: int = 250):
    """A grid image (PIL) of molecules, with optional captions; invalid SMILES are left out.
    None when there is nothing to draw."""
    # Lazy on purpose: drawing needs Pillow (and RDKit's drawing code), only notebooks draw.
    from rdkit.Chem import Draw
    pairs = [(to_molecule(s), legends[i] if legends else s) for i, s in enumerate(smiles)]
    pairs = [(m, legend) for m, legend in pairs if m is not None]
    if not pairs:
        return None
    return Draw.MolsToGridImage([m for m, _ in pairs], molsPerRow=per_row,
                                subImgSize=(size, size), legends=[legend for _, legend in pairs])


# Below this many molecules starting worker processes costs more than it saves.
PARALLEL_FROM = 2001
# Above this many molecules the computation takes long enough to say so.
ANNOUNCE_FROM = 10_001


def _target_row(smiles: str) -> tuple[float, ...]:
    values = target_properties(smiles)
    return values if values is not None else (float("nan"),) * len(TARGET_PROPERTIES)


def compute_properties(smiles: Sequence[str], log: Callable[[str], None] = to_stderr,
                       workers: int | None = None) -> np.ndarray:
    """(N, 4) float32 logP, QED, SA, penalised logP; NaN rows for invalid SMILES. Computed in
    parallel once per list of SMILES and cached under ``<cache>/properties/``."""
    h = hashlib.sha1("\n".join(smiles).encode()).hexdigest()[:20]
    path = cache_dir() / "properties" / f"{h}.npy"
    if path.exists():
        return np.load(path)
    started = time.perf_counter()
    workers = workers or os.cpu_count() or 1
    big = len(smiles) >= ANNOUNCE_FROM
    if big:
        log(f"seqvae: computing logP, QED, SA and penalised logP of {len(smiles):,} molecules "
            f"on {workers} processes (once; cached)")
    rows = parallel_map(_target_row, smiles, chunksize=1000,
                        min_items=PARALLEL_FROM, workers=workers)
    values = np.asarray(rows, dtype=np.float32).reshape(len(smiles), len(TARGET_PROPERTIES))
    with atomic_write(path) as fh:
        np.save(fh, values)
    if big:
        log(f"seqvae: properties ready in {time.perf_counter() - started:.0f} s")
    return values
