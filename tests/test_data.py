import numpy as np
import pytest
import torch

from seqvae.config import DataConfig, TokenizerConfig
from seqvae.data import (
    TokenizedSplit,
    bucketed_batches,
    collate,
    pad_sequences,
    prepare_data,
    tokenize_split,
)
from seqvae.tokenizers import BOS_ID, EOS_ID, PAD_ID, fit_tokenizer


def test_tokenized_split_is_a_ragged_array():
    split = TokenizedSplit.from_lists([[5, 6], [7], [8, 9, 10]])
    assert len(split) == 3
    assert split.lengths.tolist() == [2, 1, 3]
    assert split[2].tolist() == [8, 9, 10]
    assert split.subset(2).lengths.tolist() == [2, 1]


def test_tokenize_split_skips_or_truncates_long_sequences():
    tok = fit_tokenizer(TokenizerConfig(kind="char"), ["CCO", "CCCCCC"], "smiles")
    split, kept, skipped, truncated = tokenize_split(tok, ["CCO", "CCCCCC", ""], 4, "skip")
    assert (len(split), kept.tolist(), skipped, truncated) == (1, [0], 2, 0)
    split, kept, skipped, truncated = tokenize_split(tok, ["CCO", "CCCCCC"], 4, "truncate")
    assert split.lengths.tolist() == [3, 4] and (skipped, truncated) == (0, 1)


def test_pad_sequences_layout():
    tokens, lengths = pad_sequences([[5, 6, 7], [8]])
    assert lengths.tolist() == [5, 3]
    assert tokens.tolist() == [[BOS_ID, 5, 6, 7, EOS_ID], [BOS_ID, 8, EOS_ID, PAD_ID, PAD_ID]]
    assert tokens.dtype == torch.long


def test_bucketed_batches_cover_everything_once_and_are_reproducible():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 60, size=5000)
    a = bucketed_batches(lengths, 64, seed=1, epoch=0)
    b = bucketed_batches(lengths, 64, seed=1, epoch=0)
    c = bucketed_batches(lengths, 64, seed=1, epoch=1)
    flat = np.concatenate(a)
    assert sorted(flat.tolist()) == list(range(5000))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_bucketing_reduces_padding():
    lengths = np.random.default_rng(0).integers(5, 60, size=20000)
    def padding(batches):
        return sum(lengths[i].max() * len(i) - lengths[i].sum() for i in batches) / lengths.sum()
    bucketed = padding(bucketed_batches(lengths, 128, seed=0, epoch=0))
    random = padding(np.array_split(np.random.default_rng(0).permutation(20000), 20000 // 128))
    assert bucketed < 0.05 < random


def test_collate_uses_the_indices():
    split = TokenizedSplit.from_lists([[5], [6, 6], [7, 7, 7]])
    tokens, lengths = collate(split, np.array([2, 0]))
    assert lengths.tolist() == [5, 3]
    assert tokens[0, 1:4].tolist() == [7, 7, 7]


def test_prepare_data_caches_tokenisation(smiles_file):
    logs = []
    data = DataConfig(source=str(smiles_file))
    first = prepare_data(data, TokenizerConfig(), log=logs.append)
    second = prepare_data(data, TokenizerConfig(), log=logs.append)
    assert any("using cached tokenisation" in line for line in logs)
    assert first.tokenizer.state_dict() == second.tokenizer.state_dict()
    for name in first.splits:
        assert np.array_equal(first.splits[name].ids, second.splits[name].ids)
        assert first.texts[name] == second.texts[name]
    assert sum(len(s) for s in first.splits.values()) == 1000
    # each kept text corresponds to its token ids
    tok = first.tokenizer
    assert tok.decode(first.splits["valid"][3].tolist()) == first.texts["valid"][3]
    # other settings -> other cache entry
    logs.clear()
    prepare_data(DataConfig(source=str(smiles_file), max_length=30), TokenizerConfig(),
                 log=logs.append)
    assert not any("using cached" in line for line in logs)


def test_prepare_data_with_a_given_tokenizer_uses_the_cache_only_if_it_matches(smiles_file):
    data = DataConfig(source=str(smiles_file))
    first = prepare_data(data, TokenizerConfig(), log=lambda _: None)
    logs = []
    prepare_data(data, TokenizerConfig(), tokenizer=first.tokenizer, log=logs.append)
    assert any("using cached tokenisation" in line for line in logs)
    other = fit_tokenizer(TokenizerConfig(), ["CCO", "CCN"], "smiles")
    logs.clear()
    again = prepare_data(data, TokenizerConfig(), tokenizer=other, log=logs.append)
    assert not any("using cached tokenisation" in line for line in logs)
    assert again.tokenizer is other


def test_invalid_smiles_are_skipped_and_counted(tmp_path, smiles_file):
    lines = smiles_file.read_text().splitlines()[:200]
    bad = ["c1cccc1", "C(C", "CC)O", "Xx"]
    path = tmp_path / "mixed.smi"
    path.write_text("\n".join(lines[:100] + bad + lines[100:]) + "\n")
    prepared = prepare_data(DataConfig(source=str(path)), TokenizerConfig(), log=lambda _: None)
    assert sum(prepared.invalid.values()) == 4
    assert set(prepared.invalid_examples) <= set(bad) and prepared.invalid_examples
    kept = [t for texts in prepared.texts.values() for t in texts]
    assert len(kept) == 200 and not set(bad) & set(kept)
    # the cache remembers the counts, and the check can be switched off
    again = prepare_data(DataConfig(source=str(path)), TokenizerConfig(), log=lambda _: None)
    assert again.invalid == prepared.invalid
    unchecked = prepare_data(DataConfig(source=str(path), check_smiles=False), TokenizerConfig(),
                             log=lambda _: None)
    assert sum(unchecked.invalid.values()) == 0
    assert sum(len(t) for t in unchecked.texts.values()) == 204


def test_text_corpora_are_not_checked_as_smiles(text_file):
    prepared = prepare_data(DataConfig(source=str(text_file)), TokenizerConfig(), log=lambda _: None)
    assert sum(prepared.invalid.values()) == 0


def test_smiles_files_are_canonicalised_and_invalid_lines_counted(tmp_path):
    from seqvae.config import DataConfig, TokenizerConfig
    src = tmp_path / "m.smi"
    src.write_text("\n".join(["OCC", "C1CC", "c1ccccc1O"] * 20) + "\n")
    data = prepare_data(DataConfig(source=str(src), kind="smiles", valid_fraction=0.1,
                                   test_fraction=0.1), TokenizerConfig(), log=lambda _: None)
    kept = [t for texts in data.texts.values() for t in texts]
    assert set(kept) == {"CCO", "Oc1ccccc1"}                         # RDKit's canonical forms
    assert sum(data.invalid.values()) == 20                          # every C1CC
    again = prepare_data(DataConfig(source=str(src), kind="smiles", valid_fraction=0.1,
                                    test_fraction=0.1), TokenizerConfig(), log=lambda _: None)
    assert again.texts == data.texts                                 # from the cache, the same
    raw = prepare_data(DataConfig(source=str(src), kind="smiles", valid_fraction=0.1,
                                  test_fraction=0.1, canonicalize=False), TokenizerConfig(),
                       log=lambda _: None)
    assert "OCC" in {t for texts in raw.texts.values() for t in texts}


def test_randomized_batches_hold_the_same_molecules(smiles_file):
    from seqvae.data import collate_randomized
    from seqvae.molecules.chemistry import canonical
    texts = smiles_file.read_text().split()[:64]
    tok = fit_tokenizer(TokenizerConfig(kind="smiles"), texts, "smiles")
    index = np.arange(0, 64, 2)
    tokens, lengths = collate_randomized(texts, index, tok, max_length=100, seed=1)
    decoded = [tok.decode(row) for row in tokens.tolist()]
    assert [canonical(d) for d in decoded] == [canonical(texts[i]) for i in index]
    assert sum(d != texts[i] for d, i in zip(decoded, index)) > len(index) // 2   # rewritten
    again, _ = collate_randomized(texts, index, tok, max_length=100, seed=1)
    other, _ = collate_randomized(texts, index, tok, max_length=100, seed=2)
    assert torch.equal(tokens, again) and not torch.equal(tokens, other)
    # a random form longer than the limit falls back to the stored string (cut to the limit)
    short, short_lengths = collate_randomized(texts, index, tok, max_length=5, seed=1)
    assert int(short_lengths.max()) <= 5 + 2


def test_prepare_data_of_some_splits_tokenises_only_them_and_caches_nothing(
        smiles_file, tmp_path, monkeypatch):
    monkeypatch.setenv("SEQVAE_CACHE", str(tmp_path / "cache"))
    data = DataConfig(source=str(smiles_file), max_length=30)   # some molecules are too long
    tokenizer = fit_tokenizer(TokenizerConfig(), ["CCO", "c1ccccc1", "CC(=O)N", "C#N"], "smiles")
    part = prepare_data(data, TokenizerConfig(), tokenizer=tokenizer, log=lambda _: None,
                        only=["test"])
    assert list(part.splits) == ["test"] and list(part.texts) == ["test"]
    assert not list((tmp_path / "cache" / "prepared").glob("*.pt"))
    whole = prepare_data(data, TokenizerConfig(), tokenizer=tokenizer, log=lambda _: None)
    assert part.dropped["test"] == whole.dropped["test"] > 0
    assert part.texts["test"] == whole.texts["test"]
    assert np.array_equal(part.splits["test"].ids, whole.splits["test"].ids)
    # once everything is cached, the cache is what comes back, all of it
    logs = []
    again = prepare_data(data, TokenizerConfig(), tokenizer=tokenizer, log=logs.append,
                         only=["test"])
    assert any("using cached" in line for line in logs) and set(again.splits) == set(whole.splits)
    with pytest.raises(ValueError, match="tokenizer"):
        prepare_data(data, TokenizerConfig(), only=["test"])
