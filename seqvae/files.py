"""Where seqvae keeps files it can rebuild (the cache), and how it writes any file that must
never be seen half-written (atomically: a temporary name beside the target, then a rename).

Every checkpoint, cache entry and rewritten metrics log goes through :func:`atomic_write`, so
a process killed mid-write leaves either the old file or the new one, never a mixture.
"""
from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


def cache_dir() -> Path:
    """``$SEQVAE_CACHE`` if set, else ``~/.cache/seqvae``; created on demand."""
    path = Path(os.environ.get("SEQVAE_CACHE") or Path.home() / ".cache" / "seqvae")
    path.mkdir(parents=True, exist_ok=True)
    return path


def temporary_name(path: Path) -> Path:
    """The hidden temporary name a write to ``path`` goes through (one per process)."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb", fsync: bool = False) -> Iterator[IO]:
    """Open a temporary file beside ``path``; when the block ends normally it replaces
    ``path`` in one rename, otherwise it is removed and ``path`` is left as it was.

    Args:
        mode: ``"wb"`` or ``"w"`` (text, newline="" so csv writes its own line ends).
        fsync: flush the data to disk before the rename, so even a power cut after the rename
            finds the whole file (checkpoints).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        with open(tmp, mode, **({} if "b" in mode else {"newline": ""})) as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def sha256_of(path: str | Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
