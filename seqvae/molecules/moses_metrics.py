"""The MOSES benchmark metrics (Polykovskiy et al. 2020), as functions of SMILES lists.

Every definition is re-implemented from the reference implementation, molsets 0.3.1, and
checked against it (``tests/test_moses_metrics.py`` holds values molsets 0.3.1 computed on a
fixed set). Where each comes from (files of the molsets wheel; "metrics" is
``moses/metrics/metrics.py``, "utils" is ``moses/metrics/utils.py``):

    - validity (metrics ``fraction_valid``): the share of generated strings RDKit parses and
      sanitises; an empty string is invalid;
    - unique@k (metrics ``fraction_unique``): distinct canonical SMILES among the first k valid
      molecules, as a share of them;
    - novelty (metrics ``novelty``): the share of distinct valid molecules whose canonical
      SMILES is not in the training set (MOSES compares with its training SMILES as stored);
    - IntDiv_p (metrics ``internal_diversity``, utils ``average_agg_tanimoto`` with
      agg="mean"): 1 - mean_x (mean_y T(x, y)^p)^(1/p) over all pairs of valid generated
      molecules, duplicates and self-pairs included, T the Tanimoto similarity;
    - SNN (metrics ``SNNMetric``): mean over valid generated x of max_y T(x, y) over the
      reference set;
    - Frag (metrics ``FragMetric``, utils ``fragmenter``/``compute_fragments``): cosine
      similarity of the BRICS-fragment count vectors, every fragment occurrence counted;
    - Scaf (metrics ``ScafMetric``, utils ``compute_scaffold``/``compute_scaffolds``): cosine
      similarity of the Bemis-Murcko-scaffold count vectors, only scaffolds of two or more rings;
    - filters (metrics ``fraction_passes_filters``, utils ``mol_passes_filters``): the share of
      valid molecules passing the MCF and PAINS substructure filters and the MOSES rules (no
      charge, atoms C N S O F Cl Br H only, no ring of 8 or more atoms);
    - FCD (metrics ``FCDMetric``, from the ``fcd_torch`` package): Fréchet ChemNet Distance
      (Preuer et al. 2018); here from the ``fcd`` package, the same network and weights;
    - logP, SA, QED, weight (metrics ``WassersteinMetric``, utils ``logP``/``SA``/``QED``/
      ``weight``): the Wasserstein-1 distance between the property values of the valid
      generated molecules and those of the test set.
Fingerprints are Morgan, radius 2, 1,024 bits (utils ``fingerprint``, fp_type="morgan").
"""
from __future__ import annotations

import csv
import io
import math
from collections import Counter
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from rdkit import Chem, DataStructs, RDLogger
from rdkit.Chem import rdFingerprintGenerator
from rdkit.Chem.Scaffolds import MurckoScaffold
from torch import Tensor

from ..devices import fast_bf16
from .chemistry import canonical, properties, to_molecule
from .moses_corpus import molsets_member

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
    """Share of the strings that are molecules (molsets ``metrics.fraction_valid``)."""
    return len(valid_canonical(smiles)) / len(smiles) if smiles else 0.0


def unique_at(valid: Sequence[str], k: int) -> float:
    """Distinct molecules among the first k valid canonical SMILES, as a share of them.

    Fewer than k valid molecules: the share among those there are (molsets
    ``metrics.fraction_unique`` warns; ``evaluate_molecules`` reports the count)."""
    head = valid[:k]
    return len(set(head)) / len(head) if head else 0.0


def novelty(valid: Sequence[str], train: set[str]) -> float:
    """Share of the distinct valid molecules that are not in ``train`` (molsets
    ``metrics.novelty``). ``valid`` holds canonical SMILES; ``train`` is compared as given, as
    MOSES does: its training SMILES are RDKit-canonical already."""
    distinct = set(valid)
    return len(distinct - train) / len(distinct) if distinct else 0.0


def fingerprints(smiles: Sequence[str]) -> np.ndarray:
    """Morgan radius-2, 1,024-bit fingerprints: N SMILES -> (N, 1024) uint8 (0/1)."""
    generator = morgan_generator()
    out = np.zeros((len(smiles), FINGERPRINT_BITS), dtype=np.uint8)
    for i, s in enumerate(smiles):
        mol = to_molecule(s)
        if mol is not None:
            DataStructs.ConvertToNumpyArray(generator.GetFingerprint(mol), out[i])
    return out


@lru_cache(maxsize=1)
def morgan_generator():
    return rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=FINGERPRINT_BITS)


def tanimoto(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Tanimoto similarity of every pair of binary fingerprints: (N, F), (M, F) -> (N, M).

    |a & b| / |a | b|; two empty fingerprints have similarity 1 (they are identical)."""
    out = np.empty((len(a), len(b)), dtype=np.float32)
    for r, c, sims in _similarity_blocks(a, b, ROW_BLOCK, COLUMN_BLOCK):
        out[r:r + sims.size(0), c:c + sims.size(1)] = sims.numpy()
    return out


# Common bits are counted by an embedding-bag sum: each fingerprint adds up the reference
# columns of its own set bits (about 40 of 1,024 for Morgan fingerprints), a twenty-fifth of
# the work of the dense product and no multiplication at all. The columns are stored in
# bfloat16 where the CPU has bf16 support (half the memory to read), which is exact while no
# count exceeds 256: bfloat16's 8-bit significand holds every integer up to 256, and Morgan
# radius-2 fingerprints of drug-like molecules set 20-80 bits.
BF16_EXACT_COUNT = 256

# Blocks of the (N, M) similarities computed at once: rows of the set x columns of the
# reference. 1,024 x 8,192 float32 is 32 MB, so memory stays flat whatever N and M are (the full
# matrix of 30,000 samples against the 176k MOSES test molecules would be 21 GB).
ROW_BLOCK = 1024
COLUMN_BLOCK = 8192


@lru_cache(maxsize=1)
def _bf16_products() -> bool:
    """Whether this CPU has bfloat16 support (AMX or AVX512-BF16), where bf16 columns were
    measured to pay; elsewhere float32 columns are kept."""
    return fast_bf16(torch.device("cpu"))[0]


def _bf16_exact(*bit_counts: np.ndarray) -> bool:
    return _bf16_products() and all(len(c) == 0 or c.max() <= BF16_EXACT_COUNT for c in bit_counts)


def _bags(block: np.ndarray) -> tuple[Tensor, Tensor]:
    """The set bits of each fingerprint of ``block`` (n, F) as ``F.embedding_bag`` takes
    them: flat bit ids and the offset where each row's begin."""
    _, bits = np.nonzero(block)
    starts = np.zeros(len(block), dtype=np.int64)
    np.cumsum(block.sum(1, dtype=np.int64)[:-1], out=starts[1:])
    return torch.from_numpy(bits.astype(np.int64)), torch.from_numpy(starts)


def _columns(fps: np.ndarray, dtype: torch.dtype) -> Tensor:
    """Fingerprints (m, F) as the (F, m) table whose row f says which of them hold bit f."""
    return torch.from_numpy(np.ascontiguousarray(fps.T)).to(dtype)


def _count_blocks(fps: np.ndarray, reference: np.ndarray, rows: int, columns: int):
    """(first row, first column, counts) for each block of ``rows`` x ``columns`` of the
    common-bit counts of fps x reference, counts a (n, m) tensor of whole numbers. Column
    blocks are the outer loop, so each reference block is converted once."""
    dtype = torch.bfloat16 if _bf16_exact(fps.sum(1)) else torch.float32   # counts <= |a|
    blocks = [(r, *_bags(fps[r:r + rows])) for r in range(0, len(fps), rows)]
    for c in range(0, len(reference), columns):
        b_t = _columns(reference[c:c + columns], dtype)
        for r, bits, offsets in blocks:
            yield r, c, F.embedding_bag(bits, b_t, offsets, mode="sum")


def _similarity_blocks(fps: np.ndarray, reference: np.ndarray, rows: int, columns: int):
    """(first row, first column, float32 Tanimoto block) over fps x reference, from
    :func:`_count_blocks`."""
    a_bits = torch.from_numpy(fps.sum(1, dtype=np.float32))
    b_bits = torch.from_numpy(reference.sum(1, dtype=np.float32))
    for r, c, counts in _count_blocks(fps, reference, rows, columns):
        both = counts.float()
        a, b = a_bits[r:r + both.size(0), None], b_bits[c:c + both.size(1)]
        either = (a + b).sub_(both).clamp_(min=1)       # 0 only where both fingerprints are empty
        sims = both.div_(either)
        if bool((a == 0).any()) and bool((b == 0).any()):   # two empty fingerprints are identical
            sims = torch.where((a == 0) & (b == 0), 1.0, sims)
        yield r, c, sims


def internal_diversity(fps: np.ndarray, p: int = 1, rows: int = ROW_BLOCK,
                       columns: int = COLUMN_BLOCK) -> float:
    """IntDiv_p = 1 - mean_x (mean_y T(x, y)^p)^(1/p), y over all of the set (x included);
    molsets ``metrics.internal_diversity``. Computed block by block (``rows`` x ``columns``
    similarities at a time), summed in float64."""
    return internal_diversities(fps, (p,), rows, columns)[0]


def internal_diversities(fps: np.ndarray, ps: Sequence[int] = (1, 2), rows: int = ROW_BLOCK,
                         columns: int = COLUMN_BLOCK) -> tuple[float, ...]:
    """:func:`internal_diversity` for each p in ``ps``, from one pass over the similarities."""
    if len(fps) == 0:
        return tuple(0.0 for _ in ps)
    sums = torch.zeros(len(ps), len(fps), dtype=torch.float64)
    for r, _, sims in _similarity_blocks(fps, fps, rows, columns):
        sims = sims.double()
        for i, p in enumerate(ps):
            sums[i, r:r + sims.size(0)] += (sims if p == 1 else sims ** p).sum(dim=1)
    means = sums.numpy() / len(fps)
    return tuple(float(1 - (means[i] ** (1 / p)).mean()) for i, p in enumerate(ps))


def nearest_neighbour_similarity(fps: np.ndarray, reference: np.ndarray, rows: int = ROW_BLOCK,
                                 columns: int = COLUMN_BLOCK) -> float:
    """SNN: mean over the rows of ``fps`` of the largest Tanimoto similarity to ``reference``
    (molsets ``metrics.SNNMetric``; two empty fingerprints count as similarity 1, as there).

    The N x M similarities are never formed. For fixed bit counts |a| and |b|, Tanimoto
    c / (|a| + |b| - c) rises with the count c of common bits, so each row needs only its
    largest c among the reference fingerprints of each bit count: with the reference sorted by
    bit count, a block of ``rows`` x ``columns`` counts becomes one maximum per distinct |b|
    (about a hundred) before any division. The result is the same float32 similarity the full
    matrix would give, so the same SNN to the bit.
    """
    if len(fps) == 0 or len(reference) == 0:
        return 0.0
    b_bits = reference.sum(1, dtype=np.int64)
    order = np.argsort(b_bits, kind="stable")
    reference, b_bits = reference[order], b_bits[order]
    a_bits = torch.from_numpy(fps.sum(1, dtype=np.float32))
    best = torch.full((len(fps),), -1.0)
    groups = {c: _bit_count_groups(b_bits[c:c + columns])
              for c in range(0, len(reference), columns)}
    for r, c, counts in _count_blocks(fps, reference, rows, columns):
        group, b = groups[c]
        n = counts.size(0)
        most = torch.zeros(n, len(b), dtype=counts.dtype).scatter_reduce_(
            1, group.expand(n, -1), counts, "amax").float()                  # (n, groups)
        a = a_bits[r:r + n, None]
        sims = most / (a + b - most).clamp_(min=1)     # 0 only where both are empty
        sims = torch.where((a == 0) & (b == 0), 1.0, sims)
        torch.maximum(best[r:r + n], sims.amax(dim=1), out=best[r:r + n])
    return float(best.double().mean())


def _bit_count_groups(bit_counts: np.ndarray) -> tuple[Tensor, Tensor]:
    """For a column block's bit counts (m,): each column's group (m,) and the distinct bit
    count of each group (groups,)."""
    values, group = np.unique(bit_counts, return_inverse=True)
    return torch.from_numpy(group.astype(np.int64)), torch.from_numpy(values.astype(np.float32))


def fragments(mol: Chem.Mol) -> list[str]:
    """BRICS fragments (Degen et al. 2008) of one molecule, every occurrence listed.

    Molsets ``utils.fragmenter``: all BRICS bonds are cut at once (``FragmentOnBRICSBonds``),
    each cut end gets a dummy atom labelled with its BRICS environment (``[16*]``), and the
    canonical SMILES of the cut molecule is split at the dots. A molecule without BRICS bonds
    is its own single fragment. (``BRICS.BRICSDecompose``, used before, returns each distinct
    fragment once per molecule, so repeated fragments were undercounted.)"""
    return Chem.MolToSmiles(Chem.FragmentOnBRICSBonds(mol)).split(".")


def fragment_counts(smiles: Iterable[str]) -> Counter:
    """BRICS fragments counted over the set, every occurrence in every molecule (molsets
    ``utils.compute_fragments``); invalid SMILES are skipped."""
    counts: Counter = Counter()
    for s in smiles:
        mol = to_molecule(s)
        if mol is not None:
            counts.update(fragments(mol))
    return counts


MIN_SCAFFOLD_RINGS = 2


def scaffold(mol: Chem.Mol, min_rings: int = MIN_SCAFFOLD_RINGS) -> str | None:
    """The Bemis-Murcko scaffold (Bemis & Murcko 1996) of a molecule as canonical SMILES, or
    None when it has fewer than ``min_rings`` rings (molsets ``utils.compute_scaffold``, whose
    default is 2: acyclic molecules and single rings such as benzene have no scaffold there)."""
    try:
        core = MurckoScaffold.GetScaffoldForMol(mol)
    except (ValueError, RuntimeError):
        return None
    smiles = Chem.MolToSmiles(core)
    if not smiles or core.GetRingInfo().NumRings() < min_rings:
        return None
    return smiles


def scaffold_counts(smiles: Iterable[str], min_rings: int = MIN_SCAFFOLD_RINGS) -> Counter:
    """Bemis-Murcko scaffolds counted over the set, molecules without one (fewer than
    ``min_rings`` rings) and invalid SMILES left out (molsets ``utils.compute_scaffolds``)."""
    counts: Counter = Counter()
    for s in smiles:
        mol = to_molecule(s)
        found = scaffold(mol, min_rings) if mol is not None else None
        if found is not None:
            counts[found] += 1
    return counts


def cosine_similarity(a: Counter, b: Counter) -> float:
    """Cosine of the angle between two count vectors over the union of their keys (molsets
    ``metrics.cos_similarity``). NaN when either is empty, as there: a set without a single
    scaffold has no scaffold distribution to compare."""
    if not a or not b:
        return float("nan")
    dot = sum(v * b.get(k, 0) for k, v in a.items())
    norm = math.sqrt(sum(v * v for v in a.values())) * math.sqrt(sum(v * v for v in b.values()))
    return dot / norm if norm else float("nan")


class FilterScreen:
    """Does a molecule hold any of a set of SMARTS substructures? Each pattern is tried only
    where RDKit's pattern fingerprint of the molecule holds every bit of the pattern's: a
    substructure match implies that, so the screen changes no answer (RDKit's SubstructLibrary
    screens the same way), and of the 502 MOSES patterns about 25 are left to try per molecule
    (measured 5.5x faster over 3,000 MOSES test molecules, the same answers for all)."""

    BITS = 2048

    def __init__(self, patterns: Sequence[Chem.Mol], screen: bool = True):
        self.patterns = tuple(patterns)
        self.pattern_bits = (np.stack([self._bits(p) for p in self.patterns]) if screen and
                             self.patterns else None)

    @classmethod
    def _bits(cls, mol: Chem.Mol) -> np.ndarray:
        bits = np.zeros(cls.BITS, dtype=np.uint8)
        DataStructs.ConvertToNumpyArray(Chem.PatternFingerprint(mol, fpSize=cls.BITS), bits)
        return bits.astype(bool)

    def matches_any(self, mol: Chem.Mol) -> bool:
        """Whether ``mol`` (as matched: MOSES adds explicit hydrogens first) holds a pattern."""
        candidates: Iterable[int] = range(len(self.patterns))
        if self.pattern_bits is not None:
            missing = self.pattern_bits & ~self._bits(mol)[None]     # (P, BITS)
            candidates = np.flatnonzero(~missing.any(axis=1))
        return any(mol.HasSubstructMatch(self.patterns[i]) for i in candidates)


def passes_filters(smiles: str | Chem.Mol, patterns: Sequence[Chem.Mol] | FilterScreen) -> bool:
    """The MOSES medicinal-chemistry filters (molsets ``utils.mol_passes_filters``): no ring
    of 8 or more atoms, no charged atom, only C N S O F Cl Br H, none of the MCF/PAINS
    substructures (matched with explicit hydrogens), and a non-stereo SMILES that RDKit reads
    back. ``smiles``: a SMILES or a parsed molecule."""
    mol = to_molecule(smiles) if isinstance(smiles, str) else smiles
    if mol is None:
        return False
    if any(len(ring) >= 8 for ring in mol.GetRingInfo().AtomRings()):
        return False
    if any(atom.GetFormalCharge() != 0 or atom.GetSymbol() not in ALLOWED_ATOMS
           for atom in mol.GetAtoms()):
        return False
    screen = patterns if isinstance(patterns, FilterScreen) else FilterScreen(patterns, False)
    if screen.matches_any(Chem.AddHs(mol)):
        return False
    flat = Chem.MolToSmiles(mol, isomericSmiles=False)
    return bool(flat) and Chem.MolFromSmiles(flat) is not None


def filter_pass_rate(smiles: Sequence[str], patterns: Sequence[Chem.Mol] | FilterScreen) -> float:
    """Share of ``smiles`` (the valid generated molecules) that pass :func:`passes_filters`
    (molsets ``metrics.fraction_passes_filters``)."""
    if not isinstance(patterns, FilterScreen):
        patterns = FilterScreen(patterns)
    return float(np.mean([passes_filters(s, patterns) for s in smiles])) if smiles else 0.0


def smarts_patterns(text: str, column: int, header: bool) -> list[Chem.Mol]:
    """SMARTS patterns from one column of a CSV table; rows RDKit cannot read are skipped."""
    rows = list(csv.reader(io.StringIO(text)))[1 if header else 0:]
    patterns = (Chem.MolFromSmarts(row[column].strip()) for row in rows if len(row) > column)
    return [p for p in patterns if p is not None]


@lru_cache(maxsize=1)
def moses_filters() -> tuple[Chem.Mol, ...]:
    """The MCF (22) and PAINS (480) SMARTS that MOSES filters with (molsets ``utils._filters``:
    the "smarts" column of ``mcf.csv`` and the first column of ``wehi_pains.csv``), read from
    the molsets wheel that also carries the MOSES data (fetched once with pip, see
    :mod:`seqvae.corpora`)."""
    mcf = smarts_patterns(molsets_member("moses/metrics/mcf.csv").decode(), 1, header=True)
    pains = smarts_patterns(molsets_member("moses/metrics/wehi_pains.csv").decode(), 0, header=False)
    return tuple(mcf + pains)


@lru_cache(maxsize=1)
def moses_filter_screen() -> FilterScreen:
    """:func:`moses_filters` with their pattern fingerprints, built once per process."""
    return FilterScreen(moses_filters())


# The property distributions MOSES compares (molsets ``utils.logP``, ``SA``, ``QED``, ``weight``:
# Crippen logP, the RDKit Contrib SA score, QED and the average molecular weight), under the
# names MOSES reports them by, mapped to the keys of :func:`seqvae.molecules.chemistry.properties`.
WASSERSTEIN_PROPERTIES = {"logP": "logp", "SA": "sa", "QED": "qed", "weight": "mw"}


def property_values(smiles: Iterable[str]) -> dict[str, np.ndarray]:
    """logP, SA, QED and weight of each valid molecule: {MOSES name: (n_valid,) float64}.
    Duplicates keep their weight, as in molsets (``WassersteinMetric.precalc`` maps the
    property over every valid molecule)."""
    rows = [p for p in map(properties, smiles) if p is not None]
    return {name: np.array([r[key] for r in rows], dtype=np.float64)
            for name, key in WASSERSTEIN_PROPERTIES.items()}


def wasserstein_metric(generated: np.ndarray, reference: np.ndarray) -> float:
    """Wasserstein-1 (earth mover's) distance between two samples of one property, with
    ``scipy.stats.wasserstein_distance`` as molsets ``metrics.WassersteinMetric``. NaN when
    either sample is empty."""
    if len(generated) == 0 or len(reference) == 0:
        return float("nan")
    from scipy.stats import wasserstein_distance  # lazy on purpose: 0.9 s to import
    return float(wasserstein_distance(reference, generated))


def frechet_chemnet_distance(smiles: Sequence[str] | tuple[np.ndarray, np.ndarray],
                             reference_stats: tuple[np.ndarray, np.ndarray], model=None) -> float:
    """FCD of ``smiles`` (or of their :func:`chemnet_stats`, to compare one set with several
    references without running ChemNet again) to a reference set given by its ChemNet
    activation mean and covariance.

    Molsets ``metrics.FCDMetric`` is ``fcd_torch.FCD``, a PyTorch port of ChemNet; the ``fcd``
    package used here runs the same network and weights. On the same molecules the two agree
    to about 0.05% (see ``tests/test_moses_metrics.py``)."""
    from fcd import (
        calculate_frechet_distance,  # lazy on purpose: fcd takes 1.7 s to import
    )
    mu, sigma = smiles if isinstance(smiles, tuple) else chemnet_stats(smiles, model)
    return float(calculate_frechet_distance(mu, sigma, *reference_stats))


def chemnet_stats(smiles: Sequence[str], model=None) -> tuple[np.ndarray, np.ndarray]:
    """Mean (512,) and covariance (512, 512) of ChemNet's penultimate activations."""
    from fcd import get_predictions  # lazy on purpose, as above
    if len(smiles) < 2:
        raise ValueError("FCD needs at least two molecules")
    activations = get_predictions(model or chemnet(), list(smiles))
    return activations.mean(axis=0), np.cov(activations.T)


@lru_cache(maxsize=1)
def chemnet():
    """The ChemNet weights shipped with the ``fcd`` package, loaded once."""
    from fcd import load_ref_model  # lazy on purpose, as above
    return load_ref_model()
