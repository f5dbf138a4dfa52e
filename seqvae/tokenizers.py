"""Tokenizers: text <-> lists of integer ids.

Five kinds, all fitted on the training split only:

* :class:`SmilesTokenizer` -- atom-level SMILES tokens from the regular expression of
  Schwaller et al. 2019 ("Molecular Transformer"): ``[nH]``, ``Cl``, ``%10`` are one token each.
* :class:`CharTokenizer` -- one token per character, as in the MOSES VAE.
* :class:`WordTokenizer` -- whitespace-separated words, rare words mapped to ``<unk>``.
* :class:`SentencePieceTokenizer` -- subword units, unigram (Kudo 2018) or BPE
  (Sennrich et al. 2016), trained in memory with the ``sentencepiece`` library.
* :class:`SelfiesTokenizer` -- SMILES in and out, SELFIES symbols inside (Krenn et al. 2020).

Every tokenizer reserves the same four special ids: ``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2 and
``<unk>`` 3. :meth:`Tokenizer.encode` adds no ``<bos>``/``<eos>`` (the data pipeline does) and
never raises on unseen input, which becomes ``<unk>``. :meth:`Tokenizer.state_dict` holds only
plain Python values (the sentencepiece model as ``bytes``), so it can live in a checkpoint
loaded with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import io
import os
import re
from collections import Counter
from itertools import chain, repeat
from typing import Any, Callable, Iterable, Sequence

import selfies
import sentencepiece as spm

from .config import TokenizerConfig
from .errors import SeqVAEError
from .parallel import parallel_map

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SELFIES_PARALLEL_MIN = 20_000  # SMILES -> SELFIES batches at least this large use every core
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


def _content_ids(ids: Iterable[int], vocab_size: int) -> list[int]:
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


class _VocabTokenizer(Tokenizer):
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
    def fit(cls, texts: Iterable[str], min_freq: int = 1, **options: Any) -> "_VocabTokenizer":
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
        return self.joiner.join([itos[i] for i in _content_ids(ids, len(itos))])

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
    def from_state_dict(cls, state: dict[str, Any]) -> "_VocabTokenizer":
        if state.get("kind") != cls.kind or not isinstance(state.get("tokens"), list):
            raise SeqVAEError(f"not a {cls.kind} tokenizer state (kind={state.get('kind')!r}); "
                              "the checkpoint is damaged or from another program")
        options = {k: v for k, v in state.items() if k not in ("kind", "tokens")}
        return cls(state["tokens"], **options)


class SmilesTokenizer(_VocabTokenizer):
    """Atom-level SMILES tokens (regular expression of Schwaller et al. 2019, plus a catch-all)."""

    kind = "smiles"

    @staticmethod
    def _splitter(options: dict[str, Any]) -> Callable[[str], Iterable[str]]:
        return SMILES_REGEX.findall


class CharTokenizer(_VocabTokenizer):
    """One token per character, the MOSES VAE vocabulary (Polykovskiy et al. 2020)."""

    kind = "char"

    @staticmethod
    def _splitter(options: dict[str, Any]) -> Callable[[str], Iterable[str]]:
        return iter  # a str iterates over its characters in C


class WordTokenizer(_VocabTokenizer):
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


class SentencePieceTokenizer(Tokenizer):
    """Subword units learned by sentencepiece: unigram LM (Kudo 2018) or BPE (Sennrich et al. 2016).

    The model is trained in memory and kept as its serialized protobuf; ``decode`` returns
    detokenised text (whitespace runs collapsed), with unknown pieces shown as ``<unk>``.
    """

    kind = "sentencepiece"

    def __init__(self, model_proto: bytes, lowercase: bool = False):
        self._proto = bytes(model_proto)
        self._lowercase = bool(lowercase)
        try:
            self._sp = spm.SentencePieceProcessor(model_proto=self._proto)
        except Exception as e:  # the library raises RuntimeError/OSError on a bad proto
            raise SeqVAEError(f"the stored sentencepiece model cannot be loaded ({e}); "
                              "the checkpoint is damaged, refit the tokenizer") from e
        specials = tuple(self._sp.id_to_piece(i) for i in range(min(4, self._sp.get_piece_size())))
        if specials != SPECIALS:
            raise SeqVAEError(f"sentencepiece model has special pieces {specials}, expected "
                              f"{SPECIALS}; refit the tokenizer with seqvae")

    @classmethod
    def fit(cls, texts: Iterable[str], vocab_size: int = 8000, model_type: str = "unigram",
            lowercase: bool = False) -> "SentencePieceTokenizer":
        if model_type not in ("unigram", "bpe"):
            raise SeqVAEError(f"unknown sentencepiece model type {model_type!r}; "
                              "use unigram or bpe")
        texts = (t.lower() if lowercase else t for t in texts)
        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=texts, model_writer=model, vocab_size=vocab_size,
                model_type=model_type, pad_id=PAD_ID, bos_id=BOS_ID, eos_id=EOS_ID,
                unk_id=UNK_ID, pad_piece=PAD, bos_piece=BOS, eos_piece=EOS, unk_piece=UNK,
                unk_surface=UNK,
                # Small corpora cannot fill a large vocabulary; take what they give.
                hard_vocab_limit=False,
                # Keep every training character and apply no Unicode rewriting, so that
                # decode(encode(x)) gives back x up to whitespace.
                character_coverage=1.0, normalization_rule_name="identity",
                minloglevel=2)
        except RuntimeError as e:
            raise SeqVAEError(f"sentencepiece training failed: {e}; try another --vocab-size "
                              "(it must exceed the number of distinct characters)") from e
        return cls(model.getvalue(), lowercase=lowercase)

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return self._sp.encode(text.lower() if self._lowercase else text, out_type=int)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        if self._lowercase:
            texts = [t.lower() for t in texts]
        return self._sp.encode(list(texts), out_type=int)

    def decode(self, ids: Iterable[int]) -> str:
        return self._sp.decode(_content_ids(ids, self.vocab_size))

    def id_to_token(self, i: int) -> str:
        if not 0 <= i < self.vocab_size:
            raise ValueError(f"token id {i} is outside the vocabulary (size {self.vocab_size})")
        return self._sp.id_to_piece(i)

    def token_to_id(self, tok: str) -> int:
        return self._sp.piece_to_id(tok)

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self._proto, "lowercase": self._lowercase}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "SentencePieceTokenizer":
        if state.get("kind") != cls.kind or not isinstance(state.get("model"), bytes):
            raise SeqVAEError("not a sentencepiece tokenizer state; the checkpoint is damaged "
                              "or from another program")
        return cls(state["model"], lowercase=state.get("lowercase", False))


class SelfiesTokenizer(_VocabTokenizer):
    """SMILES in and out, SELFIES symbols inside (Krenn et al. 2020).

    Every sequence of SELFIES symbols decodes to a valid molecule, so the model cannot emit an
    invalid one (it can still emit an unlikely one). ``encode`` takes a SMILES (one SELFIES
    cannot represent gives no tokens); ``decode`` returns the SMILES of the decoded symbols.
    """

    kind = "selfies"

    @staticmethod
    def _splitter(options: dict[str, Any]) -> Callable[[str], Iterable[str]]:
        return _selfies_symbols

    @classmethod
    def _split_all(cls, texts: Iterable[str], options: dict[str, Any]) -> Iterable[Iterable[str]]:
        # SMILES -> SELFIES costs ~0.5 ms a molecule (16 CPU-minutes for MOSES), so large
        # batches are translated on every core.
        return parallel_map(_selfies_symbols, texts, chunksize=2000,
                            min_items=SELFIES_PARALLEL_MIN, workers=min(os.cpu_count() or 1, 8))

    def decode(self, ids: Iterable[int]) -> str:
        itos = self._itos
        symbols = [itos[i] for i in _content_ids(ids, len(itos)) if i != UNK_ID]
        try:
            return selfies.decoder("".join(symbols))
        except Exception:  # a damaged symbol sequence: an empty (invalid) molecule
            return ""


def _selfies_symbols(smiles: str) -> list[str]:
    """The SELFIES symbols of a SMILES; none when SELFIES cannot represent it."""
    try:
        return list(selfies.split_selfies(selfies.encoder(smiles)))
    except Exception:  # selfies.EncoderError, and RDKit-free parse failures
        return []


TOKENIZERS: dict[str, type[Tokenizer]] = {
    cls.kind: cls
    for cls in (SmilesTokenizer, CharTokenizer, WordTokenizer, SentencePieceTokenizer,
                SelfiesTokenizer)}


def fit_tokenizer(config: TokenizerConfig, train_texts: Sequence[str],
                  corpus_kind: str) -> Tokenizer:
    """Fit the tokenizer that ``config`` asks for on the training texts (and nothing else).

    ``corpus_kind`` is ``"smiles"`` or ``"text"``; ``config.kind == "auto"`` picks the SMILES
    tokenizer for SMILES corpora and the word tokenizer for text.
    """
    if corpus_kind not in ("smiles", "text"):
        raise ValueError(f"corpus_kind must be 'smiles' or 'text', not {corpus_kind!r}")
    kind = config.kind
    if kind == "auto":
        kind = "smiles" if corpus_kind == "smiles" else "word"
    if kind == "selfies" and corpus_kind != "smiles":
        raise SeqVAEError("the selfies tokenizer reads SMILES; this corpus is text "
                          "(use word, char or sentencepiece, or pass --kind smiles)")
    if kind not in TOKENIZERS:
        raise SeqVAEError(f"unknown tokenizer kind {kind!r}; choose one of: auto, "
                          f"{', '.join(TOKENIZERS)}")
    if len(train_texts) == 0:
        raise SeqVAEError("cannot fit a tokenizer: the training split is empty; "
                          "check the corpus file and --limit-train")
    if kind == "word":
        if config.min_freq < 1:
            raise SeqVAEError(f"--min-freq must be at least 1, not {config.min_freq}")
        return WordTokenizer.fit(train_texts, min_freq=config.min_freq,
                                 lowercase=config.lowercase)
    if kind == "sentencepiece":
        return SentencePieceTokenizer.fit(train_texts, vocab_size=config.vocab_size,
                                          model_type=config.sp_model_type,
                                          lowercase=config.lowercase)
    return TOKENIZERS[kind].fit(train_texts)


def tokenizer_from_state(state: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from :meth:`Tokenizer.state_dict` (as stored in a checkpoint)."""
    kind = state.get("kind") if isinstance(state, dict) else None
    if kind not in TOKENIZERS:
        raise SeqVAEError(f"checkpoint holds an unknown tokenizer kind {kind!r}; "
                          "it is damaged or from another program")
    return TOKENIZERS[kind].from_state_dict(state)
