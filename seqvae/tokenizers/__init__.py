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

from typing import Any, Sequence

from ..config import TokenizerConfig
from ..errors import SeqVAEError
from .base import (
    BOS,
    BOS_ID,
    EOS,
    EOS_ID,
    PAD,
    PAD_ID,
    SMILES_REGEX,
    SPECIALS,
    UNK,
    UNK_ID,
    CharTokenizer,
    SmilesTokenizer,
    Tokenizer,
    VocabTokenizer,
    WordTokenizer,
    content_ids,
)
from .library import SelfiesTokenizer, SentencePieceTokenizer, selfies_symbols

__all__ = ["BOS", "BOS_ID", "EOS", "EOS_ID", "PAD", "PAD_ID", "SMILES_REGEX", "SPECIALS", "UNK",
           "UNK_ID", "CharTokenizer", "SmilesTokenizer", "Tokenizer", "VocabTokenizer",
           "WordTokenizer", "SentencePieceTokenizer", "SelfiesTokenizer", "TokenizerConfig",
           "TOKENIZERS", "content_ids", "fit_tokenizer", "selfies_symbols",
           "tokenizer_from_state"]

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
    if kind == "word" and corpus_kind == "smiles":
        raise SeqVAEError("the word tokenizer splits text at spaces, and SMILES have none: "
                          "every molecule would be a word of its own. Use --tokenizer smiles "
                          "(or char, selfies), or give a text corpus with --data")
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
    if config.kekulize and kind != "smiles":
        raise SeqVAEError(f"--kekulize rewrites molecules for the smiles tokenizer, not {kind}; "
                          "use --tokenizer smiles, or leave --kekulize out")
    if kind == "smiles":
        return SmilesTokenizer.fit(train_texts, kekulize=config.kekulize)
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
