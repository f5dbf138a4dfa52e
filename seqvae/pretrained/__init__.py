"""Pretrained models shipped inside the package, by name.

``seqvae.load("moses")`` and every command that takes a checkpoint accept a name from
:data:`MODELS`, a checkpoint file, or a run folder (``runs/moses`` means
``runs/moses/model.pt``); :func:`resolve` turns each into a file, so a shipped model and a
user's own checkpoint load through the same code. Shipped files are ordinary seqvae
checkpoints with half-precision weights and no optimiser state (at most 10 MB each); the
SHA-256 of each is recorded in ``models.json`` and checked before the file is read.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import SeqVAEError
from ..files import sha256_of

HERE = Path(__file__).resolve().parent
REGISTRY_FILE = HERE / "models.json"


@dataclass(frozen=True)
class PretrainedModel:
    """One shipped model: its file, checksum, model card and headline figures."""
    name: str
    file: str
    sha256: str
    description: str
    headline: str

    @property
    def path(self) -> Path:
        return HERE / self.file

    @property
    def card_path(self) -> Path:
        return HERE / f"{self.name}.md"

    def card(self) -> str:
        return self.card_path.read_text()


def models() -> dict[str, PretrainedModel]:
    """The shipped models by name, as recorded in ``models.json``."""
    if not REGISTRY_FILE.exists():
        return {}
    entries = json.loads(REGISTRY_FILE.read_text())
    return {name: PretrainedModel(name=name, **entry) for name, entry in entries.items()}


def register(name: str, file: str | Path, description: str, headline: str) -> PretrainedModel:
    """Record a shipped model (a file already in this folder) in ``models.json``, with its
    checksum. Its model card is ``NAME.md`` beside it."""
    path = Path(file)
    if path.resolve().parent != HERE:
        raise SeqVAEError(f"{path}: a shipped model must be in {HERE}")
    entries = json.loads(REGISTRY_FILE.read_text()) if REGISTRY_FILE.exists() else {}
    entries[name] = {"file": path.name, "sha256": sha256_of(path), "description": description,
                     "headline": headline}
    REGISTRY_FILE.write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")
    return models()[name]


@lru_cache(maxsize=None)
def _verified(path: Path, expected: str, stamp: tuple[int, float]) -> None:
    """Check a shipped file once per process (``stamp``: size and mtime, so an edited file is
    checked again)."""
    found = sha256_of(path)
    if found != expected:
        raise SeqVAEError(f"{path}: the shipped model's SHA-256 is {found[:12]}..., but "
                          f"{REGISTRY_FILE.name} records {expected[:12]}...; the file is damaged "
                          "or was replaced. Reinstall seqvae (pip install --force-reinstall "
                          "seqvae) or load your own checkpoint instead")


def verify_shipped(entry: PretrainedModel) -> None:
    """Raise :class:`SeqVAEError` unless a shipped file has its recorded SHA-256."""
    stat = entry.path.stat()
    _verified(entry.path, entry.sha256, (stat.st_size, stat.st_mtime))


def is_shipped(path: str | Path) -> bool:
    """Whether a checkpoint file is one of the shipped models (its folder is read-only in an
    installed package: commands write their outputs elsewhere)."""
    return Path(path).resolve().parent == HERE


def resolve(name_or_path: str | Path) -> Path:
    """The checkpoint file meant by a shipped model's name, a file, or a run folder.

    A bare shipped name (``"moses"``) always means the shipped model, even where the current
    folder holds a file or folder of that name: the same command must not load different
    models in different folders. Such a local one is reached as a path (``./moses``). A shipped
    model's checksum is verified here, before anything reads the file, whether it is named or
    given by its path.
    """
    text = str(name_or_path)
    shipped = models()
    if isinstance(name_or_path, str) and text in shipped:
        entry = shipped[text]
        if not entry.path.is_file():
            raise SeqVAEError(f"the shipped model {text!r} is missing from this installation "
                              f"({entry.path}); reinstall seqvae")
        verify_shipped(entry)
        return entry.path
    path = Path(name_or_path)
    if path.is_file() and is_shipped(path):
        entry = next((e for e in shipped.values() if e.file == path.name), None)
        if entry is not None:
            verify_shipped(entry)
    if path.is_dir():
        if (path / "model.pt").is_file():
            return path / "model.pt"
        raise SeqVAEError(f"{path} is a folder without a model.pt; pass a run folder written "
                          "by `seqvae train --out DIR`, a checkpoint file, or a shipped model "
                          f"({', '.join(shipped) or 'none installed'})")
    if not path.exists() and not path.suffix and shipped:
        raise SeqVAEError(f"{text!r} is neither a file nor a shipped model; the shipped models "
                          f"are: {', '.join(shipped)} (see `seqvae models`)")
    return path
