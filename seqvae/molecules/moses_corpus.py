"""The MOSES benchmark splits (Polykovskiy et al. 2020), unpacked from the molsets 0.3.1 wheel.

The wheel is fetched with pip into :func:`~seqvae.files.cache_dir` and only its data files are
read: ``moses`` itself and its old dependencies are never imported or installed.
"""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import DataConfig
from ..corpus_files import Corpus, check_fractions, fingerprint, read_sequences
from ..errors import SeqVAEError
from ..files import atomic_write, cache_dir, sha256_of
from ..logs import to_stderr

COPY_CHUNK = 1 << 20  # bytes per read when unpacking the MOSES splits
MOLSETS_VERSION = "0.3.1"
# SHA-256 of molsets-0.3.1-py3-none-any.whl as PyPI serves it (51,584,291 bytes); a fetched
# wheel that differs is deleted, not read.
MOLSETS_WHEEL_SHA256 = "7f4450e3ebecebe79c3a2a55950c93daddee071120daf64a163d03481e811d34"
MOSES_MEMBERS = {name: f"moses/dataset/data/{name}.csv.gz"
                 for name in ("train", "test", "test_scaffolds")}


def load_moses(config: DataConfig, log: Callable[[str], None]) -> Corpus:
    check_fractions(config)
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
    fp = fingerprint(source="moses", version=f"molsets-{MOLSETS_VERSION}",
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
    found_sha = sha256_of(found[0])
    if found_sha != MOLSETS_WHEEL_SHA256:
        found[0].unlink()
        raise SeqVAEError(f"the fetched {found[0].name} has SHA-256 {found_sha[:12]}..., not the "
                          f"recorded {MOLSETS_WHEEL_SHA256[:12]}...; it was deleted. Check pip's "
                          "index settings (a mirror serving another file?) and run again")
    return found[0]


def molsets_member(member: str, log: Callable[[str], None] = to_stderr) -> bytes:
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
