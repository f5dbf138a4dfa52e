"""``seqvae evaluate`` for SMILES models: the MOSES metrics of prior samples, reconstruction
accuracy, and property distributions.

The reference statistics of the test sets come from :mod:`seqvae.molecules.references` (MOSES's
own, precomputed in the molsets wheel; any other set computed once and cached). The canonical
training set for novelty is cached the same way. The metrics are those of molsets 0.3.1 (see
:mod:`seqvae.molecules.moses_metrics`).
"""
from __future__ import annotations

import gzip
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..api import TrainedVAE
from ..corpora import load_corpus
from ..corpus_files import Corpus
from ..files import atomic_write, cache_dir
from ..gaussian import reparameterize
from ..logs import to_stderr
from ..parallel import parallel_map
from ..plots import plot_property_distributions
from .chemistry import PROPERTY_NAMES, canonical, properties
from .moses_metrics import (
    WASSERSTEIN_PROPERTIES,
    FilterScreen,
    chemnet_stats,
    cosine_similarity,
    frechet_chemnet_distance,
    internal_diversities,
    moses_filter_screen,
    nearest_neighbour_similarity,
    novelty,
    unique_at,
    valid_canonical,
    wasserstein_metric,
)
from .reconstruction import greedy_reconstruction, stochastic_reconstruction
from .references import (
    MOLSETS_STATISTICS,
    ReferenceSet,
    molsets_reference,
    reference_set,
    smiles_key,
)
from .set_statistics import SetStatistics, set_statistics


def uses_molsets_statistics(corpus_name: str, split: str, own: bool = False) -> bool:
    return corpus_name == "moses" and split in MOLSETS_STATISTICS and not own


def canonical_training_set(smiles: Sequence[str], log: Callable[[str], None] = to_stderr) -> set[str]:
    """RDKit-canonical forms of the training SMILES (for novelty), cached, in parallel."""
    path = cache_dir() / "reference" / f"train-{smiles_key(smiles)}.txt.gz"
    if path.exists():
        with gzip.open(path, "rt") as fh:
            return set(fh.read().split("\n")) - {""}
    log(f"seqvae: canonicalising {len(smiles):,} training SMILES for novelty (once; cached)")
    canon = {c for c in parallel_map(canonical, smiles, chunksize=2000) if c}
    with atomic_write(path, "wb") as raw, gzip.open(raw, "wt") as fh:
        fh.write("\n".join(sorted(canon)))
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
    valid, stats = sample_statistics(samples, filters)
    return metrics_of_valid(len(samples), valid, stats, train, references)


def sample_statistics(samples: Sequence[str], filters: Sequence[Any] | None = None
                      ) -> tuple[list[str], SetStatistics | None]:
    """The valid canonical SMILES among ``samples`` and their :func:`set_statistics` with the
    filters (default: MCF and PAINS); None when nothing is valid."""
    valid = valid_canonical(samples)
    screen = moses_filter_screen() if filters is None else FilterScreen(filters)
    return valid, set_statistics(valid, filters=screen) if valid else None


def metrics_of_valid(samples: int, valid: Sequence[str], stats: SetStatistics | None,
                     train: set[str], references: dict[str, ReferenceSet]) -> dict[str, Any]:
    """:func:`generation_metrics` from the valid canonical SMILES of ``samples`` generated
    strings and their :func:`set_statistics` (with filters; None when nothing is valid)."""
    result: dict[str, Any] = {"samples": samples, "valid_samples": len(valid),
                              "valid": len(valid) / max(samples, 1),
                              "unique@1k": unique_at(valid, 1000),
                              "unique@10k": unique_at(valid, 10000),
                              "novelty": novelty(valid, train)}
    if not valid or stats is None:
        return result
    fps = stats.fingerprints
    intdiv1, intdiv2 = internal_diversities(fps, (1, 2))
    result.update({"intdiv1": intdiv1, "intdiv2": intdiv2,
                   "filters": float(stats.passes_filters.mean())})
    sample_stats = chemnet_stats(valid) if references and len(valid) > 1 else None
    for name, ref in references.items():
        result[f"fcd/{name}"] = (frechet_chemnet_distance(sample_stats, ref.chemnet)
                                 if sample_stats is not None else float("nan"))
        result[f"snn/{name}"] = nearest_neighbour_similarity(fps, ref.fingerprints)
        result[f"frag/{name}"] = cosine_similarity(stats.fragments, ref.fragments)
        result[f"scaf/{name}"] = cosine_similarity(stats.scaffolds, ref.scaffolds)
        for prop in WASSERSTEIN_PROPERTIES:
            result[f"{prop.lower()}/{name}"] = wasserstein_metric(stats.properties[prop],
                                                                  ref.properties[prop])
    return result


def reconstruction_molecules(vae: TrainedVAE, corpus: Corpus, n: int, seed: int = 0,
                             log: Callable[[str], None] = to_stderr) -> list[str]:
    """The test molecules the reconstruction protocols use: a seeded random choice of ``n``
    among the test split's lines as stored, put through the model's own data preparation
    (canonical forms where it uses them; those it would skip, e.g. longer than its
    ``max_length``, left out). Only the chosen lines are prepared: tokenising all 176k MOSES
    test molecules with a tokenizer that rewrites each with RDKit takes 20 s."""
    lines = corpus.splits.get("test", [])
    if not lines or not n:
        return []
    rng = np.random.default_rng(seed)
    picked = [lines[i] for i in rng.choice(len(lines), size=min(n, len(lines)), replace=False)]
    # its own fingerprint: a cache of the whole corpus must not be taken for these lines
    chosen = replace(corpus, splits={"test": picked},
                     fingerprint=f"{corpus.fingerprint}/reconstruction:{seed}:{n}")
    return vae.corpus(log, only=["test"], lines=chosen).texts["test"]


def reconstruction_metrics(vae: TrainedVAE, molecules: Sequence[str],
                           n_stochastic: int = 100, seed: int = 0) -> dict[str, Any]:
    """Greedy reconstruction of ``molecules`` (from :func:`reconstruction_molecules`), the
    stochastic protocol on the first ``n_stochastic`` of them, and their mean
    KL(q(z|x) || p(z)): the rate the codes carry."""
    greedy = greedy_reconstruction(vae, molecules)
    mu, logvar = vae.encode_posterior(molecules, check=False)
    device = vae.model.device
    mu, logvar = torch.from_numpy(mu).to(device), torch.from_numpy(logvar).to(device)
    with torch.no_grad():   # z matters only under a learned prior (SeqVAE.kl)
        z = reparameterize(mu, logvar, generator=torch.Generator(device).manual_seed(seed))
        kl = vae.model.kl(mu, logvar, z)
    result = {"reconstruction": greedy["share"], "reconstructed_molecules": greedy["molecules"],
              "kl": float(kl.mean())}
    if n_stochastic:
        stochastic = stochastic_reconstruction(vae, molecules[:n_stochastic], seed=seed)
        result.update({"reconstruction_stochastic": stochastic["share"],
                       "reconstruction_stochastic_any": stochastic["any"],
                       "stochastic_protocol": {k: stochastic[k] for k in
                                               ("molecules", "encodings", "decodes")}})
    return result


def property_table(smiles: Sequence[str]) -> dict[str, np.ndarray]:
    """logP, QED, SA and molecular weight of the valid molecules: {name: (n_valid,)}."""
    rows = [p for p in map(properties, smiles) if p is not None]
    return {name: np.array([r[name] for r in rows]) for name in PROPERTY_NAMES}


def evaluate_molecules(vae: TrainedVAE, n: int = 30000, seed: int = 0,
                       n_reconstruct: int = 1000, n_stochastic: int = 100,
                       plot: Path | None = None, log: Callable[[str], None] = to_stderr,
                       progress: bool = False,
                       own_reference_statistics: bool = False) -> dict[str, Any]:
    """Sample n molecules from the prior (temperature 1) and compute the MOSES metrics against
    the test sets of the model's corpus; reconstruction of test molecules, greedy from the
    posterior mean (``n_reconstruct`` molecules) and by the stochastic protocol of Jin et al.
    2018 (``n_stochastic`` molecules, 10 codes x 10 decodes each), with their mean KL; and
    (with ``plot``) a PNG of the property distributions of samples and test.

    On the MOSES corpus the reference statistics are those molsets ships, unless
    ``own_reference_statistics`` asks for seqvae's own (computed once, ~20 CPU-minutes a
    split, then cached)."""
    started = time.perf_counter()
    corpus = load_corpus(vae.config.data, log=log)          # the lines as stored: quick
    ref_names = [name for name in ("test", "test_scaffolds") if corpus.splits.get(name)]
    # Only the splits whose molecules are needed are tokenised (when no full tokenisation is
    # cached): test for reconstruction, and any reference computed from its molecules. A
    # tokenizer that rewrites each SMILES with RDKit (Kekulé) takes minutes over all of MOSES.
    computed = [name for name in ref_names
                if not uses_molsets_statistics(corpus.name, name, own_reference_statistics)]
    data = vae.corpus(log, only=computed, lines=corpus) if computed else None
    references = {name: reference_set(data.texts[name], log) if name in computed
                  else molsets_reference(name, len(corpus.splits[name]), log)
                  for name in ref_names}
    # Novelty is against every training molecule, as MOSES defines it (those the model's
    # max_length left out included). MOSES ships canonical SMILES; other corpora are put in
    # canonical form once, and cached.
    train_lines = corpus.splits["train"]
    train = (set(train_lines) if corpus.name == "moses"
             else canonical_training_set(train_lines, log))
    samples = vae.sample(n, seed=seed, progress=progress)
    valid, stats = sample_statistics(samples)
    result = metrics_of_valid(len(samples), valid, stats, train, references)
    result["reference_statistics"] = {name: ref.source for name, ref in references.items()}
    result["sampling_precision"] = vae.precision
    test = reconstruction_molecules(vae, corpus, n_reconstruct, seed, log)
    if test:
        result.update(reconstruction_metrics(vae, test, n_stochastic, seed))
    if plot is not None and "test" in references:
        # the values the Wasserstein distances compared: every valid sample, the whole test set
        by_key = {key: name for name, key in WASSERSTEIN_PROPERTIES.items()}
        plot_property_distributions(
            {"samples": {k: stats.properties[n] if stats else np.zeros(0) for k, n in by_key.items()},
             "test": {k: references["test"].properties[n] for k, n in by_key.items()}}, plot)
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
        ("reconstruction (10 z x 10 sampled decodes)", "reconstruction_stochastic", "{:.3f}"),
        ("KL of the test molecules (nats)", "kl", "{:.1f}"),
        ("wall time (s)", "seconds", "{:.1f}")]


def format_molecule_table(results: dict[str, Any], title: str = "") -> str:
    width = max(len(label) for label, _, _ in ROWS)
    lines = [title] if title else []
    lines += [f"  {label:<{width}}  {fmt.format(results[key])}"
              for label, key, fmt in ROWS if key in results]
    return "\n".join(lines)
