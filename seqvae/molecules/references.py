"""The reference statistics the MOSES metrics compare samples with: fingerprints, fragment and
scaffold counts, property values and ChemNet activation moments of a reference set.

Two sources:

- For MOSES's own ``test`` and ``test_scaffolds`` splits, the statistics molsets 0.3.1 ships
  precomputed in the wheel seqvae already fetches for the splits
  (``moses/dataset/data/{split}_stats.npz``, the ``get_statistics`` output of
  ``moses.metrics``). Reading them takes seconds where computing them takes ~20 CPU-minutes a
  split, most of it ChemNet. They are the same quantities as ours; how closely they agree with
  what seqvae computes is measured in ``docs/results/performance.md``.
- For any other set (a user's own test file), computed here: the RDKit work in worker processes,
  ChemNet in one, then cached under ``<cache>/reference/``, keyed by a hash of the SMILES and
  :data:`STATISTICS_VERSION`.
"""
from __future__ import annotations

import hashlib
import io
import json
import pickle
import time
import zipfile
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from numpy.lib import format as npy_format

from ..errors import SeqVAEError
from ..files import atomic_write, cache_dir
from ..logs import to_stderr
from .moses_corpus import MOLSETS_VERSION, molsets_member
from .moses_metrics import WASSERSTEIN_PROPERTIES, chemnet_stats
from .set_statistics import set_statistics

# Part of the cache key of reference statistics: raise it whenever what they hold or how it is
# computed changes, so no evaluation reads statistics of an older definition. 2: fragments and
# scaffolds as molsets 0.3.1 counts them, and property values for the Wasserstein metrics.
STATISTICS_VERSION = 2
# The MOSES splits whose statistics the molsets wheel ships, and where.
MOLSETS_STATISTICS = {"test": "moses/dataset/data/test_stats.npz",
                      "test_scaffolds": "moses/dataset/data/test_scaffolds_stats.npz"}


@dataclass
class ReferenceSet:
    """What the MOSES metrics compare generated molecules with."""
    fingerprints: np.ndarray                 # (N, 1024) uint8
    fragments: Counter
    scaffolds: Counter
    chemnet: tuple[np.ndarray, np.ndarray]   # activation mean (512,) and covariance (512, 512)
    properties: dict[str, np.ndarray]        # {"logP", "SA", "QED", "weight"}: (N_valid,)
    source: str = "computed"                 # or "molsets 0.3.1" (read from its wheel)


def smiles_key(smiles: Sequence[str]) -> str:
    h = hashlib.sha1()
    for s in smiles:
        h.update(s.encode())
        h.update(b"\n")
    return h.hexdigest()[:20]


def reference_set(smiles: Sequence[str], log: Callable[[str], None] = to_stderr) -> ReferenceSet:
    """The statistics of a reference set (e.g. a user's test file), from the cache when possible."""
    path = cache_dir() / "reference" / f"v{STATISTICS_VERSION}-{smiles_key(smiles)}.npz"
    if path.exists():
        blob = np.load(path)
        return ReferenceSet(np.unpackbits(blob["fingerprints"], axis=1)[:, :1024],
                            Counter(json.loads(str(blob["fragments"]))),
                            Counter(json.loads(str(blob["scaffolds"]))),
                            (blob["chemnet_mu"], blob["chemnet_sigma"]),
                            {name: blob[f"property_{name}"] for name in WASSERSTEIN_PROPERTIES})
    started = time.perf_counter()
    log(f"seqvae: computing reference statistics of {len(smiles):,} molecules (once; cached)")
    stats = set_statistics(smiles)
    ref = ReferenceSet(stats.fingerprints, stats.fragments, stats.scaffolds,
                       chemnet_stats(smiles), stats.properties)
    with atomic_write(path, "wb") as fh:
        np.savez(fh, fingerprints=np.packbits(ref.fingerprints, axis=1),
                 fragments=json.dumps(ref.fragments), scaffolds=json.dumps(ref.scaffolds),
                 chemnet_mu=ref.chemnet[0], chemnet_sigma=ref.chemnet[1],
                 **{f"property_{name}": values for name, values in ref.properties.items()})
    log(f"seqvae: reference statistics ready in {time.perf_counter() - started:.0f} s ({path})")
    return ref


def molsets_reference(split: str, molecules: int,
                      log: Callable[[str], None] = to_stderr) -> ReferenceSet:
    """The statistics molsets 0.3.1 ships for MOSES's ``test`` or ``test_scaffolds`` split,
    read from the wheel. ``molecules``: the size of the split as loaded, checked against the
    file so that statistics of another set are never used."""
    if split not in MOLSETS_STATISTICS:
        raise SeqVAEError(f"molsets ships statistics for {sorted(MOLSETS_STATISTICS)}, not {split!r}")
    stats = read_statistics(molsets_member(MOLSETS_STATISTICS[split], log))
    fps = np.asarray(stats["SNN"]["fps"], dtype=np.uint8)
    if len(fps) != molecules:
        raise SeqVAEError(f"the molsets statistics of {split} describe {len(fps):,} molecules, "
                          f"the split holds {molecules:,}; evaluate with "
                          "--own-reference-statistics")
    return ReferenceSet(fps, Counter(stats["Frag"]["frag"]), Counter(stats["Scaf"]["scaf"]),
                        (np.asarray(stats["FCD"]["mu"], dtype=np.float64),
                         np.asarray(stats["FCD"]["sigma"], dtype=np.float64)),
                        {name: np.asarray(stats[name]["values"], dtype=np.float64)
                         for name in WASSERSTEIN_PROPERTIES},
                        source=f"molsets {MOLSETS_VERSION}")


# What a molsets statistics file may reference when unpickled: numpy arrays, Counters and the
# byte strings inside arrays. Anything else (a pickle's way to run code) is refused.
_ALLOWED_GLOBALS = {("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "Counter"),
                    ("_codecs", "encode"), ("numpy.core.multiarray", "_reconstruct"),
                    ("numpy._core.multiarray", "_reconstruct")}


class _StatisticsUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"a statistics file may not load {module}.{name}")
        if module == "numpy.core.multiarray":        # numpy 1's name; numpy 2 moved it
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return super().find_class(module, name)


def read_statistics(npz: bytes) -> dict:
    """The ``stats`` dict of a molsets statistics ``.npz`` (a 0-d object array: a pickle),
    unpickled with only numpy arrays, Counters, lists and dicts allowed, where ``np.load(...,
    allow_pickle=True)`` would run whatever the file names."""
    try:
        with zipfile.ZipFile(io.BytesIO(npz)) as zf, zf.open("stats.npy") as fh:
            version = npy_format.read_magic(fh)
            read_header = (npy_format.read_array_header_1_0 if version == (1, 0)
                           else npy_format.read_array_header_2_0)
            shape, _, dtype = read_header(fh)
            if dtype != np.dtype(object) or shape != ():
                raise ValueError(f"expected a 0-d object array, found {dtype} {shape}")
            array = _StatisticsUnpickler(fh).load()
    except (zipfile.BadZipFile, KeyError, ValueError, pickle.UnpicklingError, EOFError) as e:
        raise SeqVAEError(f"not a molsets statistics file ({e}); delete the molsets wheel from "
                          f"{cache_dir() / 'downloads'} and run again to fetch it anew") from None
    stats = array.item() if isinstance(array, np.ndarray) else array
    if not isinstance(stats, dict):
        raise SeqVAEError("not a molsets statistics file (no dict inside)")
    return stats
