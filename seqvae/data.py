"""From a corpus to training batches: tokenise once (cached), bucket by length, pad.

A tokenised split is stored as one flat int32 array plus offsets (a ragged array), so 1.5M
molecules take a few tens of MB and load in well under a second from the cache.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from itertools import chain
from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from .config import DataConfig, TokenizerConfig
from .corpora import load_corpus
from .corpus_files import Corpus
from .errors import SeqVAEError
from .files import atomic_write, cache_dir
from .logs import to_stderr
from .molecules.chemistry import canonical, is_valid, randomized_smiles
from .tokenizers import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    Tokenizer,
    fit_tokenizer,
    tokenizer_from_state,
)

CACHE_FORMAT = 3
# Seeds of per-item draws are seed * SEED_STRIDE + index: a prime above any corpus size, so
# two (seed, index) pairs never share a seed. RDKit takes seeds below 2^31.
SEED_STRIDE = 1_000_003
RDKIT_MAX_SEED = 2 ** 31
BUCKET_FACTOR = 50  # batches per length-sorted chunk: little padding, yet a well-mixed order


class Batch(NamedTuple):
    """One training batch, on the device the step runs on."""
    tokens: Tensor                  # (B, T) padded ``[<bos>, ..., <eos>]`` ids
    lengths: Tensor                 # (B,) real lengths, <bos> and <eos> included
    targets: Tensor | None = None   # (B, P) standardised properties for a property head
    noise: Tensor | None = None     # (B, D) the eps of z = mu + sigma * eps (None: drawn)
    uniforms: Tensor | None = None  # (B, T-1) word-dropout draws (None: drawn)
    encoder_uniforms: Tensor | None = None  # (B, T) encoder-noise draws (None: drawn)


@dataclass
class TokenizedSplit:
    """A ragged array of token-id sequences, without <bos>/<eos>.

    ``ids[offsets[i]:offsets[i + 1]]`` is sequence i.
    """
    ids: np.ndarray      # (total tokens,) int32
    offsets: np.ndarray  # (N + 1,) int64

    @classmethod
    def from_lists(cls, seqs: Sequence[Sequence[int]]) -> "TokenizedSplit":
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        ids = np.fromiter(chain.from_iterable(seqs), dtype=np.int32, count=int(offsets[-1]))
        return cls(ids, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i]:self.offsets[i + 1]]

    def subset(self, n: int) -> "TokenizedSplit":
        """The first n sequences."""
        n = min(n, len(self))
        return TokenizedSplit(self.ids[:self.offsets[n]], self.offsets[:n + 1])

    def select(self, rows: Sequence[int]) -> "TokenizedSplit":
        """The sequences at ``rows``, in that order."""
        return TokenizedSplit.from_lists([self[int(i)] for i in rows])


@dataclass
class PreparedData:
    corpus_name: str
    kind: str                        # "smiles" | "text"
    tokenizer: Tokenizer
    splits: dict[str, TokenizedSplit]
    texts: dict[str, list[str]]      # the kept raw sequences, aligned with ``splits``
    dropped: dict[str, int]          # per split: sequences skipped as too long
    truncated: dict[str, int]        # per split: sequences cut to max_length
    split_note: str
    invalid: dict[str, int]          # per split: SMILES skipped because RDKit cannot parse them
    invalid_examples: list[str]      # a few of those, for the message


def tokenize_split(tokenizer: Tokenizer, texts: Sequence[str], max_length: int,
                   long_sequences: str, usable: np.ndarray | None = None,
                   ) -> tuple[TokenizedSplit, np.ndarray, int, int]:
    """Tokenise texts; sequences longer than ``max_length`` tokens are skipped or truncated.

    Empty sequences (no tokens) are always skipped, and so are those where the boolean mask
    ``usable`` is False (they are not counted here). Returns the split, the positions in
    ``texts`` of the kept sequences, and the numbers skipped and truncated.
    """
    if long_sequences not in ("skip", "truncate"):
        raise ValueError(f"long_sequences must be 'skip' or 'truncate', not {long_sequences!r}")
    kept_ids, kept, skipped, truncated = [], [], 0, 0
    for i, ids in enumerate(tokenizer.encode_batch(texts)):
        if usable is not None and not usable[i]:
            continue
        if not ids:
            skipped += 1
            continue
        if len(ids) > max_length:
            if long_sequences == "skip":
                skipped += 1
                continue
            ids = ids[:max_length]
            truncated += 1
        kept_ids.append(ids)
        kept.append(i)
    return TokenizedSplit.from_lists(kept_ids), np.asarray(kept, dtype=np.int64), skipped, truncated


def _cache_key(corpus: Corpus, data: DataConfig, tok: TokenizerConfig, check: bool,
               canon: bool) -> str:
    # Settings added after a cache format keep their default out of the key, so that adding
    # them does not throw away every cache made before.
    settings = {k: v for k, v in tok.__dict__.items() if not (k == "kekulize" and not v)}
    blob = json.dumps([CACHE_FORMAT, corpus.fingerprint, corpus.kind, data.max_length,
                       data.long_sequences, check, canon, settings], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def canonical_forms(texts: Sequence[str], label: str = "") -> list[str | None]:
    """RDKit-canonical SMILES of each text, None where RDKit cannot parse it."""
    return [canonical(t) for t in tqdm(texts, desc=f"canonicalising SMILES {label}".strip(),
                                       unit="mol", disable=len(texts) < 50_000 or None)]


def valid_smiles_mask(texts: Sequence[str], label: str = "") -> np.ndarray:
    """(N,) bool: which SMILES RDKit parses and sanitises (a progress bar on long lists)."""
    return np.fromiter((is_valid(t) for t in tqdm(texts, desc=f"checking SMILES {label}".strip(),
                                                 unit="mol", disable=len(texts) < 50_000 or None)),
                       dtype=bool, count=len(texts))


def prepare_data(data: DataConfig, tok: TokenizerConfig, tokenizer: Tokenizer | None = None,
                 log: Callable[[str], None] = to_stderr,
                 only: Sequence[str] | None = None, corpus: Corpus | None = None) -> PreparedData:
    """Load the corpus, fit the tokenizer on its training split, tokenise every split.

    The result (tokenizer included) is cached under ``<cache>/prepared/``, keyed by the
    corpus fingerprint and the settings, so a second run with the same settings starts fast.
    Pass ``tokenizer`` to reuse a trained one (resuming) instead of fitting a new one; the
    cache is then used only if it was made with that same tokenizer.

    ``only`` (with ``tokenizer``): when nothing is cached, prepare just these splits and
    cache nothing (what evaluation needs: the test splits, without tokenising a million
    training molecules); the result then holds only them. A full cache is used as it is.
    ``corpus``: ``load_corpus(data)`` when the caller already has it (it is not read again).
    """
    if only is not None and tokenizer is None:
        raise ValueError("prepare_data(only=...) needs the model's tokenizer")
    corpus = corpus if corpus is not None else load_corpus(data, log=log)
    smiles = corpus.kind == "smiles"
    # --check-smiles false means "take the lines as they are": no check, no canonical forms
    canon = smiles and data.check_smiles is not False and (
        data.canonicalize if data.canonicalize is not None else corpus.name != "moses")
    check = smiles and not canon and (
        data.check_smiles if data.check_smiles is not None else corpus.name != "moses")
    path = cache_dir() / "prepared" / f"{_cache_key(corpus, data, tok, check, canon)}.pt"
    if path.exists():
        try:
            blob = torch.load(path, weights_only=True)
            if tokenizer is not None and blob["tokenizer"] != tokenizer.state_dict():
                raise LookupError("it was made with another tokenizer")
            splits = {k: TokenizedSplit(v["ids"].numpy(), v["offsets"].numpy())
                      for k, v in blob["splits"].items()}
            lines = blob.get("canonical") or corpus.splits
            texts = {k: [lines[k][i] for i in blob["kept"][k].tolist()] for k in splits}
            log(f"seqvae: using cached tokenisation {path}")
            return PreparedData(corpus.name, corpus.kind, tokenizer_from_state(blob["tokenizer"]),
                                splits, texts, blob["dropped"], blob["truncated"],
                                corpus.split_note, blob["invalid"], blob["invalid_examples"])
        except Exception as exc:  # a stale or damaged cache is rebuilt, never fatal
            log(f"seqvae: not using the cache {path} ({exc})")
    wanted = {name: lines for name, lines in corpus.splits.items()
              if only is None or name in only}
    lines_of = wanted
    usable = {name: valid_smiles_mask(lines, name) if check else None
              for name, lines in wanted.items()}
    if canon:  # canonical forms; those RDKit cannot parse are skipped and counted as invalid
        forms = {name: canonical_forms(lines, name) for name, lines in wanted.items()}
        usable = {name: np.array([f is not None for f in f_list], dtype=bool)
                  for name, f_list in forms.items()}
        lines_of = {name: [f or "" for f in f_list] for name, f_list in forms.items()}
    invalid = {name: int((~mask).sum()) if mask is not None else 0
               for name, mask in usable.items()}
    examples = [t for name, mask in usable.items() if mask is not None
                for t, ok in zip(corpus.splits[name], mask) if not ok][:3]
    if tokenizer is None:
        train_texts = lines_of["train"]
        if usable["train"] is not None:
            train_texts = [t for t, ok in zip(train_texts, usable["train"]) if ok]
        if not train_texts:
            raise SeqVAEError(f"{corpus.name}: none of the {len(corpus.splits['train']):,} training "
                              "SMILES is valid (RDKit cannot parse them); check the file, or pass "
                              "--kind text if it is not SMILES")
        tokenizer = fit_tokenizer(tok, train_texts, corpus.kind)
    log(f"seqvae: tokenising {corpus.name} with the {tokenizer.kind} tokenizer "
        f"(vocabulary {tokenizer.vocab_size})")
    splits, kept, dropped, truncated = {}, {}, {}, {}
    for name, lines in lines_of.items():
        splits[name], kept[name], dropped[name], truncated[name] = tokenize_split(
            tokenizer, lines, data.max_length, data.long_sequences, usable[name])
    texts = {k: [lines_of[k][i] for i in kept[k].tolist()] for k in splits}
    if only is not None:
        return PreparedData(corpus.name, corpus.kind, tokenizer, splits, texts, dropped,
                            truncated, corpus.split_note, invalid, examples)
    with atomic_write(path) as fh:
        torch.save({"tokenizer": tokenizer.state_dict(), "dropped": dropped, "truncated": truncated,
                    "invalid": invalid, "invalid_examples": examples,
                    "kept": {k: torch.from_numpy(v) for k, v in kept.items()},
                    "canonical": lines_of if canon else None,
                    "splits": {k: {"ids": torch.from_numpy(s.ids), "offsets": torch.from_numpy(s.offsets)}
                               for k, s in splits.items()}}, fh)
    return PreparedData(corpus.name, corpus.kind, tokenizer, splits, texts, dropped, truncated,
                        corpus.split_note, invalid, examples)


def bucketed_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int,
                     bucket_factor: int = BUCKET_FACTOR) -> list[np.ndarray]:
    """Indices of one epoch's batches, grouped by length so batches carry little padding.

    The data are shuffled, cut into chunks of ``batch_size * bucket_factor``, each chunk is
    sorted by length and cut into batches, and the batch order is shuffled. The result depends
    only on (seed, epoch), so a resumed run replays the same order.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    chunk = batch_size * bucket_factor
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i:i + batch_size] for i in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def collate(split: TokenizedSplit, indices: np.ndarray) -> tuple[Tensor, Tensor]:
    """Padded batch ``[<bos>, ids..., <eos>, <pad>...]``.

    Returns:
        tokens (B, T) int64 and lengths (B,) int64, lengths counting <bos> and <eos>.
    """
    seqs = [split[i] for i in indices]
    return pad_sequences(seqs)


def collate_randomized(texts: Sequence[str], indices: np.ndarray, tokenizer: Tokenizer,
                       max_length: int, seed: int) -> tuple[Tensor, Tensor]:
    """Like :func:`collate`, but each SMILES is rewritten as a random SMILES of the same
    molecule first (augmentation; Bjerrum 2017, Arús-Pous et al. 2019). The choice depends
    only on ``seed`` and the molecule's index, so a resumed run sees the same strings. A random
    form longer than ``max_length`` tokens falls back to the stored one."""
    seqs = []
    for i in indices.tolist():
        stored = tokenizer.encode(texts[i])
        random_form = randomized_smiles(texts[i], (seed * SEED_STRIDE + i) % RDKIT_MAX_SEED)
        ids = tokenizer.encode(random_form) if random_form else stored
        seqs.append(ids if 0 < len(ids) <= max_length else stored[:max_length])
    return pad_sequences(seqs)


def pad_sequences(seqs: Sequence[Sequence[int]]) -> tuple[Tensor, Tensor]:
    """Wrap id sequences in <bos>/<eos> and pad them into (B, T) with lengths (B,)."""
    lengths = np.fromiter((len(s) + 2 for s in seqs), dtype=np.int64, count=len(seqs))
    tokens = np.full((len(seqs), int(lengths.max(initial=2))), PAD_ID, dtype=np.int64)
    tokens[:, 0] = BOS_ID
    for row, s in enumerate(seqs):
        tokens[row, 1:len(s) + 1] = s
        tokens[row, len(s) + 1] = EOS_ID
    return torch.from_numpy(tokens), torch.from_numpy(lengths)
