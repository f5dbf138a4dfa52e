"""Tokenizers backed by a library: sentencepiece subwords and SELFIES symbols (see
:mod:`seqvae.tokenizers`)."""
from __future__ import annotations

import io
import os
from typing import Any, Callable, Iterable, Sequence

import selfies
import sentencepiece as spm

from ..errors import SeqVAEError
from ..parallel import parallel_map
from .base import (
    BOS,
    BOS_ID,
    EOS,
    EOS_ID,
    PAD,
    PAD_ID,
    SPECIALS,
    UNK,
    UNK_ID,
    Tokenizer,
    VocabTokenizer,
    content_ids,
)

SELFIES_PARALLEL_MIN = 20_000  # SMILES -> SELFIES batches at least this large use every core


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
        return self._sp.decode(content_ids(ids, self.vocab_size))

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


class SelfiesTokenizer(VocabTokenizer):
    """SMILES in and out, SELFIES symbols inside (Krenn et al. 2020).

    Every sequence of SELFIES symbols decodes to a valid molecule, so the model cannot emit an
    invalid one (it can still emit an unlikely one). ``encode`` takes a SMILES (one SELFIES
    cannot represent gives no tokens); ``decode`` returns the SMILES of the decoded symbols.
    """

    kind = "selfies"

    @staticmethod
    def _splitter(options: dict[str, Any]) -> Callable[[str], Iterable[str]]:
        return selfies_symbols

    @classmethod
    def _split_all(cls, texts: Iterable[str], options: dict[str, Any]) -> Iterable[Iterable[str]]:
        # SMILES -> SELFIES costs ~0.5 ms a molecule (16 CPU-minutes for MOSES), so large
        # batches are translated on every core.
        return parallel_map(selfies_symbols, texts, chunksize=2000,
                            min_items=SELFIES_PARALLEL_MIN, workers=min(os.cpu_count() or 1, 8))

    def decode(self, ids: Iterable[int]) -> str:
        itos = self._itos
        symbols = [itos[i] for i in content_ids(ids, len(itos)) if i != UNK_ID]
        try:
            return selfies.decoder("".join(symbols))
        except Exception:  # a damaged symbol sequence: an empty (invalid) molecule
            return ""


def selfies_symbols(smiles: str) -> list[str]:
    """The SELFIES symbols of a SMILES; none when SELFIES cannot represent it."""
    try:
        return list(selfies.split_selfies(selfies.encoder(smiles)))
    except Exception:  # selfies.EncoderError, and RDKit-free parse failures
        return []
