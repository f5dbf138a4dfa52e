"""The tokenizer interface, the four special ids, and the tokenizers with a plain vocabulary:
SMILES regex tokens, characters and words (see :mod:`seqvae.tokenizers`)."""
from __future__ import annotations

import os
import re
from collections import Counter
from itertools import chain, repeat
from typing import Any, Callable, Iterable, Sequence

from ..errors import SeqVAEError
from ..molecules.chemistry import kekule_smiles
from ..parallel import parallel_map

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
SPECIALS = (PAD, BOS, EOS, UNK)

# Schwaller et al. 2019 list every single-character token (atoms, bonds = # - : ~, stereo / \,
# ring digits, parentheses, '.', '*', ...) as its own alternative; the final catch-all covers
# all of them and, unlike the original, never silently drops a character it does not know.
# Bracket atoms may not contain '[' so that a stray '[' cannot swallow the next real atom.
SMILES_REGEX = re.compile(
    r"\[[^\[\]]+\]"  # bracket atoms: [nH], [C@@H], [O-], [NH3+], [2H] ...
    r"|Br|Cl"        # the two-letter atoms of the organic subset
    r"|%[0-9]{2}"    # ring-closure numbers 10..99
    r"|.",           # any other single character
    re.DOTALL)


def content_ids(ids: Iterable[int], vocab_size: int) -> list[int]:
    """The ids before the first ``<eos>``, without ``<pad>``/``<bos>``; checks the range."""
    # numpy arrays and torch tensors convert to Python ints in C, much faster than iterating.
    ids = list(map(int, ids.tolist() if hasattr(ids, "tolist") else ids))
    if EOS_ID in ids:
        ids = ids[:ids.index(EOS_ID)]
    if ids and (min(ids) < 0 or max(ids) >= vocab_size):
        bad = next(i for i in ids if not 0 <= i < vocab_size)
        raise ValueError(f"token id {bad} is outside the vocabulary (size {vocab_size})")
    return [i for i in ids if i != PAD_ID and i != BOS_ID]


class Tokenizer:
    """Base class; see the module docstring for the contract shared by all kinds."""

    kind: str = ""
    pad_id, bos_id, eos_id, unk_id = PAD_ID, BOS_ID, EOS_ID, UNK_ID

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: Iterable[int]) -> str:
        raise NotImplementedError

    def id_to_token(self, i: int) -> str:
        raise NotImplementedError

    def token_to_id(self, tok: str) -> int:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "Tokenizer":
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


class VocabTokenizer(Tokenizer):
    """A tokenizer that splits text into strings and looks each one up in a fixed vocabulary."""

    joiner = ""

    def __init__(self, tokens: Sequence[str], **options: Any):
        tokens = list(tokens)
        if tuple(tokens[:4]) != SPECIALS or len(set(tokens)) != len(tokens):
            raise SeqVAEError(f"{self.kind} tokenizer vocabulary is damaged: it must start with "
                              f"{', '.join(SPECIALS)} and hold no duplicates; refit the tokenizer")
        self._itos = tokens
        self._stoi = {t: i for i, t in enumerate(tokens)}
        # A literal "<eos>" or "<pad>" in the input must not end or pad the sequence, so only
        # <unk> among the specials can be produced by encode() (PTB text contains "<unk>").
        self._lookup = {t: i for t, i in self._stoi.items() if t not in (PAD, BOS, EOS)}
        self._options = options
        self._split = self._splitter(options)

    @classmethod
    def fit(cls, texts: Iterable[str], min_freq: int = 1, **options: Any) -> "VocabTokenizer":
        counts = Counter(chain.from_iterable(cls._split_all(texts, options)))
        for special in SPECIALS:
            counts.pop(special, None)
        # Sorting by (-count, token) makes the ids a pure function of the training data.
        kept = sorted((t for t, c in counts.items() if c >= min_freq),
                      key=lambda t: (-counts[t], t))
        return cls(list(SPECIALS) + kept, **options)

    @staticmethod
    def _splitter(options: dict[str, Any]) -> Callable[[str], Iterable[str]]:
        raise NotImplementedError

    @classmethod
    def _split_all(cls, texts: Iterable[str], options: dict[str, Any]) -> Iterable[Iterable[str]]:
        """The tokens of each text (subclasses with a slow splitter parallelise this)."""
        return map(cls._splitter(options), texts)

    @property
    def vocab_size(self) -> int:
        return len(self._itos)

    def encode(self, text: str) -> list[int]:
        return list(map(self._lookup.get, self._split(text), repeat(UNK_ID)))

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        get = self._lookup.get
        return [list(map(get, tokens, repeat(UNK_ID)))
                for tokens in self._split_all(texts, self._options)]

    def decode(self, ids: Iterable[int]) -> str:
        itos = self._itos
        return self.joiner.join([itos[i] for i in content_ids(ids, len(itos))])

    def id_to_token(self, i: int) -> str:
        if not 0 <= i < len(self._itos):
            raise ValueError(f"token id {i} is outside the vocabulary (size {len(self._itos)})")
        return self._itos[i]

    def token_to_id(self, tok: str) -> int:
        return self._stoi.get(tok, UNK_ID)

    @property
    def tokens(self) -> list[str]:
        """The vocabulary in id order, specials first."""
        return list(self._itos)

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "tokens": list(self._itos), **self._options}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "VocabTokenizer":
        if state.get("kind") != cls.kind or not isinstance(state.get("tokens"), list):
            raise SeqVAEError(f"not a {cls.kind} tokenizer state (kind={state.get('kind')!r}); "
                              "the checkpoint is damaged or from another program")
        options = {k: v for k, v in state.items() if k not in ("kind", "tokens")}
        return cls(state["tokens"], **options)


class SmilesTokenizer(VocabTokenizer):
    """Atom-level SMILES tokens (regular expression of Schwaller et al. 2019, plus a catch-all).

    With ``kekulize``, each molecule is rewritten in Kekulé form before it is split (SMILES in,
    Kekulé SMILES inside and out): the model never writes an aromatic atom, so none of its
    decodes can fail on aromaticity, the largest cause of invalid SMILES samples.
    """

    kind = "smiles"

    def __init__(self, tokens: Sequence[str], kekulize: bool = False):
        # Only a Kekulé tokenizer records the option, so older states stay as they were.
        super().__init__(tokens, **({"kekulize": True} if kekulize else {}))

    @staticmethod
    def _splitter(options: dict[str, Any]) -> Callable[[str], Iterable[str]]:
        return kekule_tokens if options.get("kekulize") else SMILES_REGEX.findall

    @classmethod
    def _split_all(cls, texts: Iterable[str], options: dict[str, Any]) -> Iterable[Iterable[str]]:
        if not options.get("kekulize"):
            return super()._split_all(texts, options)
        # RDKit reads and rewrites each molecule (~0.1 ms): large batches use every core.
        return parallel_map(kekule_tokens, texts, chunksize=2000, min_items=KEKULE_PARALLEL_MIN,
                            workers=min(os.cpu_count() or 1, 8))


KEKULE_PARALLEL_MIN = 50_000


def kekule_tokens(smiles: str) -> list[str]:
    """The SMILES tokens of a molecule's Kekulé form; of the string as given where RDKit cannot
    read it (it then counts as what it is, e.g. aromatic tokens outside the vocabulary)."""
    return SMILES_REGEX.findall(kekule_smiles(smiles) or smiles)


class CharTokenizer(VocabTokenizer):
    """One token per character, the MOSES VAE vocabulary (Polykovskiy et al. 2020)."""

    kind = "char"

    @staticmethod
    def _splitter(options: dict[str, Any]) -> Callable[[str], Iterable[str]]:
        return iter  # a str iterates over its characters in C


class WordTokenizer(VocabTokenizer):
    """Whitespace-separated words; words seen fewer than ``min_freq`` times become ``<unk>``."""

    kind = "word"
    joiner = " "

    def __init__(self, tokens: Sequence[str], lowercase: bool = False):
        super().__init__(tokens, lowercase=bool(lowercase))

    @staticmethod
    def _splitter(options: dict[str, Any]) -> Callable[[str], Iterable[str]]:
        if options.get("lowercase"):
            return lambda text: text.lower().split()
        return str.split
