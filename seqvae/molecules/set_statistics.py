"""The per-molecule RDKit work behind the MOSES metrics, for a whole set at once.

Fingerprints, BRICS fragments, scaffolds, the four Wasserstein properties and the filters all
start from the same RDKit molecule. Here each SMILES is parsed once and everything is computed
from it, chunk by chunk in worker processes (one per core): the metric functions of
:mod:`seqvae.molecules.moses_metrics` each parse the set again, one process at a time. The
values are theirs exactly (``tests/molecules/test_set_statistics.py``).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from rdkit import DataStructs

from ..parallel import parallel_map
from .chemistry import molecule_properties, to_molecule
from .moses_metrics import (
    FINGERPRINT_BITS,
    WASSERSTEIN_PROPERTIES,
    FilterScreen,
    fragments,
    morgan_generator,
    passes_filters,
    scaffold,
)

CHUNK = 2000   # molecules per worker job: 15 jobs for 30,000 samples, balanced over the cores


@dataclass
class SetStatistics:
    """The RDKit side of the MOSES metrics for a set of SMILES."""
    fingerprints: np.ndarray                 # (N, 1024) uint8 0/1; zeros where a SMILES fails
    fragments: Counter                       # BRICS fragments, every occurrence
    scaffolds: Counter                       # Bemis-Murcko scaffolds of two or more rings
    properties: dict[str, np.ndarray]        # {"logP", "SA", "QED", "weight"}: (N_valid,)
    passes_filters: np.ndarray | None = None  # (N,) bool, where filters were asked for


def set_statistics(smiles: Sequence[str], filters: FilterScreen | None = None,
                   chunk: int | None = None) -> SetStatistics:
    """:class:`SetStatistics` of ``smiles``, in worker processes, ``chunk`` molecules (default
    :data:`CHUNK`) a job; with ``filters`` also which molecules pass
    :func:`~seqvae.molecules.moses_metrics.passes_filters`."""
    chunk = chunk or CHUNK
    jobs = [(list(smiles[i:i + chunk]), filters) for i in range(0, len(smiles), chunk)]
    parts = parallel_map(_chunk_statistics, jobs, chunksize=1)
    fragment_counts, scaffold_counts = Counter(), Counter()
    for part in parts:
        fragment_counts.update(part.fragments)
        scaffold_counts.update(part.scaffolds)
    return SetStatistics(
        np.concatenate([p.fingerprints for p in parts]) if parts
        else np.zeros((0, FINGERPRINT_BITS), np.uint8),
        fragment_counts, scaffold_counts,
        {name: np.concatenate([p.properties[name] for p in parts]) if parts else np.zeros(0)
         for name in WASSERSTEIN_PROPERTIES},
        (np.concatenate([p.passes_filters for p in parts]) if parts else np.zeros(0, bool))
        if filters is not None else None)


def _chunk_statistics(job: tuple[list[str], FilterScreen | None]) -> SetStatistics:
    """One worker's job: the statistics of one chunk, each molecule parsed once."""
    smiles, filters = job
    generator = morgan_generator()
    fps = np.zeros((len(smiles), FINGERPRINT_BITS), dtype=np.uint8)
    fragment_counts, scaffold_counts = Counter(), Counter()
    values: dict[str, list[float]] = {name: [] for name in WASSERSTEIN_PROPERTIES}
    passes = np.zeros(len(smiles), dtype=bool)
    for i, s in enumerate(smiles):
        mol = to_molecule(s)
        if mol is None:
            continue
        DataStructs.ConvertToNumpyArray(generator.GetFingerprint(mol), fps[i])
        fragment_counts.update(fragments(mol))
        found = scaffold(mol)
        if found is not None:
            scaffold_counts[found] += 1
        props = molecule_properties(mol)
        for name, key in WASSERSTEIN_PROPERTIES.items():
            values[name].append(props[key])
        if filters is not None:
            passes[i] = passes_filters(mol, filters)
    return SetStatistics(fps, fragment_counts, scaffold_counts,
                         {name: np.array(v, dtype=np.float64) for name, v in values.items()},
                         passes if filters is not None else None)
