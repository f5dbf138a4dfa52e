"""``seqvae evaluate`` for SMILES models: the MOSES metrics of prior samples, reconstruction
accuracy, and property distributions.

Reference statistics (fingerprints, fragments, scaffolds, property values, ChemNet activations)
of the test sets and the canonical training set are computed once per set and cached under
``<cache>/reference/``, keyed by a hash of the SMILES and :data:`STATISTICS_VERSION`, so later
evaluations start fast. The metrics are those of molsets 0.3.1 (see :mod:`seqvae.moses_metrics`).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .api import TrainedVAE
from .chemistry import PROPERTY_NAMES, canonical, properties
from .corpora import cache_dir
from .moses_metrics import (WASSERSTEIN_PROPERTIES, chemnet_stats, cosine_similarity,
                            filter_pass_rate, fingerprints, fragment_counts,
                            frechet_chemnet_distance, internal_diversity, moses_filters,
                            nearest_neighbour_similarity, novelty, property_values,
                            scaffold_counts, unique_at, valid_canonical, wasserstein_metric)
from .parallel import parallel_map


REFERENCE_CHUNK = 5000  # molecules per worker job when computing reference statistics
# Part of the cache key of reference statistics: raise it whenever what they hold or how it is
# computed changes, so no evaluation reads statistics of an older definition. 2: fragments and
# scaffolds as molsets 0.3.1 counts them, and property values for the Wasserstein metrics.
STATISTICS_VERSION = 2


@dataclass
class ReferenceSet:
    """What the MOSES metrics compare generated molecules with."""
    fingerprints: np.ndarray                 # (N, 1024) uint8
    fragments: Counter
    scaffolds: Counter
    chemnet: tuple[np.ndarray, np.ndarray]   # activation mean (512,) and covariance (512, 512)
    properties: dict[str, np.ndarray]        # {"logP", "SA", "QED", "weight"}: (N_valid,)


def _key(smiles: Sequence[str]) -> str:
    h = hashlib.sha1()
    for s in smiles:
        h.update(s.encode())
        h.update(b"\n")
    return h.hexdigest()[:20]


def reference_set(smiles: Sequence[str], log: Callable[[str], None] = print) -> ReferenceSet:
    """The statistics of a reference set (e.g. MOSES test), from the cache when possible."""
    path = cache_dir() / "reference" / f"v{STATISTICS_VERSION}-{_key(smiles)}.npz"
    if path.exists():
        blob = np.load(path)
        return ReferenceSet(np.unpackbits(blob["fingerprints"], axis=1)[:, :1024],
                            Counter(json.loads(str(blob["fragments"]))),
                            Counter(json.loads(str(blob["scaffolds"]))),
                            (blob["chemnet_mu"], blob["chemnet_sigma"]),
                            {name: blob[f"property_{name}"] for name in WASSERSTEIN_PROPERTIES})
    started = time.perf_counter()
    log(f"seqvae: computing reference statistics of {len(smiles):,} molecules (once; cached)")
    chunks = [list(smiles[i:i + REFERENCE_CHUNK]) for i in range(0, len(smiles), REFERENCE_CHUNK)]
    parts = parallel_map(_rdkit_statistics, chunks, chunksize=1)
    fragments, scaffolds = Counter(), Counter()
    for _, frags, scafs, _ in parts:
        fragments.update(frags)
        scaffolds.update(scafs)
    fps = np.concatenate([f for f, _, _, _ in parts]) if parts else np.zeros((0, 1024), np.uint8)
    props = {name: np.concatenate([p[name] for *_, p in parts]) if parts else np.zeros(0)
             for name in WASSERSTEIN_PROPERTIES}
    ref = ReferenceSet(fps, fragments, scaffolds, chemnet_stats(smiles), props)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.npz")
    np.savez(tmp, fingerprints=np.packbits(ref.fingerprints, axis=1),
             fragments=json.dumps(ref.fragments), scaffolds=json.dumps(ref.scaffolds),
             chemnet_mu=ref.chemnet[0], chemnet_sigma=ref.chemnet[1],
             **{f"property_{name}": values for name, values in ref.properties.items()})
    os.replace(tmp, path)
    log(f"seqvae: reference statistics ready in {time.perf_counter() - started:.0f} s ({path})")
    return ref


def _rdkit_statistics(smiles: list[str]) -> tuple[np.ndarray, Counter, Counter,
                                                  dict[str, np.ndarray]]:
    """Fingerprints, fragment counts, scaffold counts and property values of one chunk (a
    worker's job)."""
    return fingerprints(smiles), fragment_counts(smiles), scaffold_counts(smiles), \
        property_values(smiles)


def canonical_training_set(smiles: Sequence[str], log: Callable[[str], None] = print) -> set[str]:
    """RDKit-canonical forms of the training SMILES (for novelty), cached, in parallel."""
    path = cache_dir() / "reference" / f"train-{_key(smiles)}.txt.gz"
    if path.exists():
        with gzip.open(path, "rt") as fh:
            return set(fh.read().split("\n")) - {""}
    log(f"seqvae: canonicalising {len(smiles):,} training SMILES for novelty (once; cached)")
    canon = {c for c in parallel_map(canonical, smiles, chunksize=2000) if c}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with gzip.open(tmp, "wt") as fh:
        fh.write("\n".join(sorted(canon)))
    os.replace(tmp, path)
    return canon


def generation_metrics(samples: Sequence[str], train: set[str],
                       references: dict[str, ReferenceSet],
                       filters: Sequence[Any] | None = None) -> dict[str, Any]:
    """The MOSES metrics of generated SMILES against named reference sets, as molsets 0.3.1's
    ``get_all_metrics``: validity over all samples; everything else over the valid ones in
    canonical form, duplicates included. For each reference ``name``: fcd/, snn/, frag/, scaf/
    and the Wasserstein-1 distances logp/, sa/, qed/, weight/ (MOSES reports the last four
    against test only). ``filters``: the SMARTS patterns (default: MCF and PAINS from the
    molsets wheel)."""
    valid = valid_canonical(samples)
    result: dict[str, Any] = {"samples": len(samples), "valid_samples": len(valid),
                              "valid": len(valid) / max(len(samples), 1),
                              "unique@1k": unique_at(valid, 1000),
                              "unique@10k": unique_at(valid, 10000),
                              "novelty": novelty(valid, train)}
    if not valid:
        return result
    fps = fingerprints(valid)
    result.update({"intdiv1": internal_diversity(fps, 1), "intdiv2": internal_diversity(fps, 2),
                   "filters": filter_pass_rate(valid, moses_filters() if filters is None
                                               else filters)})
    frags, scafs = fragment_counts(valid), scaffold_counts(valid)
    props = _property_values(valid) if references else {}
    sample_stats = chemnet_stats(valid) if references and len(valid) > 1 else None
    for name, ref in references.items():
        result[f"fcd/{name}"] = (frechet_chemnet_distance(sample_stats, ref.chemnet)
                                 if sample_stats is not None else float("nan"))
        result[f"snn/{name}"] = nearest_neighbour_similarity(fps, ref.fingerprints)
        result[f"frag/{name}"] = cosine_similarity(frags, ref.fragments)
        result[f"scaf/{name}"] = cosine_similarity(scafs, ref.scaffolds)
        for prop in WASSERSTEIN_PROPERTIES:
            result[f"{prop.lower()}/{name}"] = wasserstein_metric(props[prop], ref.properties[prop])
    return result


def _property_values(smiles: Sequence[str]) -> dict[str, np.ndarray]:
    """:func:`property_values` of many molecules, in worker processes (QED and SA take ~1 ms
    a molecule)."""
    chunks = [list(smiles[i:i + REFERENCE_CHUNK]) for i in range(0, len(smiles), REFERENCE_CHUNK)]
    parts = parallel_map(property_values, chunks, chunksize=1)
    return {name: np.concatenate([p[name] for p in parts]) if parts else np.zeros(0)
            for name in WASSERSTEIN_PROPERTIES}


def reconstruction_accuracy(vae: TrainedVAE, smiles: Sequence[str]) -> float:
    """Share of molecules whose greedy decode of the posterior mean is the same molecule
    (canonical SMILES equal)."""
    smiles = [s for s in smiles if canonical(s)]
    decoded = vae.reconstruct(smiles, check=False)
    return float(np.mean([canonical(d) == canonical(s) for s, d in zip(smiles, decoded)])) \
        if smiles else 0.0


def property_table(smiles: Sequence[str]) -> dict[str, np.ndarray]:
    """logP, QED, SA and molecular weight of the valid molecules: {name: (n_valid,)}."""
    rows = [p for p in map(properties, smiles) if p is not None]
    return {name: np.array([r[name] for r in rows]) for name in PROPERTY_NAMES}


def evaluate_molecules(vae: TrainedVAE, n: int = 30000, seed: int = 0,
                       n_reconstruct: int = 1000, plot: Path | None = None,
                       log: Callable[[str], None] = print, progress: bool = False) -> dict[str, Any]:
    """Sample n molecules from the prior (temperature 1) and compute the MOSES metrics against
    the test sets of the model's corpus, reconstruction accuracy on ``n_reconstruct`` test
    molecules, and (with ``plot``) a PNG of the property distributions of samples and test."""
    from .data import prepare_data
    started = time.perf_counter()
    data = prepare_data(vae.config.data, vae.config.tokenizer, tokenizer=vae.tokenizer, log=log)
    ref_names = [name for name in ("test", "test_scaffolds") if data.texts.get(name)]
    references = {name: reference_set(data.texts[name], log) for name in ref_names}
    # The data pipeline already holds canonical SMILES unless told not to (files are
    # canonicalised, MOSES ships canonical ones), so novelty needs no second pass over them.
    dc = vae.config.data
    train = (set(data.texts["train"]) if dc.check_smiles is not False and dc.canonicalize is not False
             else canonical_training_set(data.texts["train"], log))
    samples = vae.sample(n, seed=seed, progress=progress)
    result = generation_metrics(samples, train, references)
    test = data.texts.get("test", [])
    if test and n_reconstruct:
        rng = np.random.default_rng(seed)
        chosen = rng.choice(len(test), size=min(n_reconstruct, len(test)), replace=False)
        result["reconstruction"] = reconstruction_accuracy(vae, [test[i] for i in chosen])
        result["reconstructed_molecules"] = len(chosen)
    if plot is not None and test:
        from .plots import plot_property_distributions
        rng = np.random.default_rng(seed)
        test_sample = [test[i] for i in rng.choice(len(test), size=min(n, len(test), 10000),
                                                    replace=False)]
        plot_property_distributions({"samples": property_table(samples[:10000]),
                                     "test": property_table(test_sample)}, plot)
        result["plot"] = str(plot)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


ROWS = [("samples from the prior", "samples", "{:,}"), ("valid", "valid", "{:.3f}"),
        ("unique@1k", "unique@1k", "{:.3f}"), ("unique@10k", "unique@10k", "{:.3f}"),
        ("novelty", "novelty", "{:.3f}"), ("IntDiv1", "intdiv1", "{:.3f}"),
        ("IntDiv2", "intdiv2", "{:.3f}"), ("filters (MCF, PAINS)", "filters", "{:.3f}"),
        ("FCD/Test", "fcd/test", "{:.3f}"), ("FCD/TestSF", "fcd/test_scaffolds", "{:.3f}"),
        ("SNN/Test", "snn/test", "{:.3f}"), ("SNN/TestSF", "snn/test_scaffolds", "{:.3f}"),
        ("Frag/Test", "frag/test", "{:.3f}"), ("Frag/TestSF", "frag/test_scaffolds", "{:.3f}"),
        ("Scaf/Test", "scaf/test", "{:.3f}"), ("Scaf/TestSF", "scaf/test_scaffolds", "{:.3f}"),
        ("logP (W1 to Test)", "logp/test", "{:.3f}"), ("SA (W1 to Test)", "sa/test", "{:.3f}"),
        ("QED (W1 to Test)", "qed/test", "{:.4f}"),
        ("weight (W1 to Test)", "weight/test", "{:.2f}"),
        ("reconstruction (greedy, test)", "reconstruction", "{:.3f}"),
        ("wall time (s)", "seconds", "{:.1f}")]


def format_molecule_table(results: dict[str, Any], title: str = "") -> str:
    width = max(len(label) for label, _, _ in ROWS)
    lines = [title] if title else []
    lines += [f"  {label:<{width}}  {fmt.format(results[key])}"
              for label, key, fmt in ROWS if key in results]
    return "\n".join(lines)
