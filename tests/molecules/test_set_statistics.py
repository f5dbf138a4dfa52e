"""One parse per molecule gives what the metric functions give one by one."""
import os

import numpy as np
import pytest

import seqvae.molecules.moses_metrics as moses_metrics
from seqvae.molecules.moses_metrics import (
    FilterScreen,
    fingerprints,
    fragment_counts,
    internal_diversities,
    nearest_neighbour_similarity,
    passes_filters,
    property_values,
    scaffold_counts,
    smarts_patterns,
    tanimoto,
)
from seqvae.molecules.set_statistics import set_statistics

SMILES = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "not a molecule", "O=C(O)c1ccccc1OC(C)=O",
          "CN1CCC[C@H]1c1cccnc1", "C1CCCCCCC1", "CC[N+](C)(C)C", "c1ccc2ccccc2c1", "",
          "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "O=c1[nH]c(=O)c2ccccc2[nH]1", "N#Cc1ccccc1C=O"]
# Substructures of the set above and two that match nothing: an aldehyde, a phenol, a
# carboxylic acid, a quaternary nitrogen, nitrile, an azide, a peroxide.
PATTERNS = smarts_patterns("[CX3H1](=O)[#6]\n[OX2H]c\nC(=O)[OH]\n[NX4+]\nC#N\nN=[N+]=[N-]\nOO\n",
                           0, header=False)


def test_one_pass_in_chunks_equals_the_metric_functions(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)        # a pool even on one core
    screen = FilterScreen(PATTERNS)
    stats = set_statistics(SMILES, filters=screen, chunk=4)
    assert (stats.fingerprints == fingerprints(SMILES)).all()
    assert stats.fragments == fragment_counts(SMILES)
    assert stats.scaffolds == scaffold_counts(SMILES)
    for name, values in property_values(SMILES).items():
        assert np.array_equal(stats.properties[name], values)
    assert list(stats.passes_filters) == [passes_filters(s, PATTERNS) for s in SMILES]
    assert 0 < stats.passes_filters.sum() < len(SMILES) - 2    # some fail the patterns
    assert set_statistics(SMILES).passes_filters is None


def test_the_fingerprint_screen_changes_no_answer():
    from rdkit import Chem
    screened, plain = FilterScreen(PATTERNS), FilterScreen(PATTERNS, screen=False)
    answers = []
    for s in SMILES:
        mol = Chem.MolFromSmiles(s) if s else None
        if mol is not None:
            with_h = Chem.AddHs(mol)
            answers.append(plain.matches_any(with_h))
            assert screened.matches_any(with_h) == answers[-1], s
    assert any(answers) and not all(answers)


@pytest.mark.parametrize("bf16", [False, True])
def test_similarities_are_the_same_in_bfloat16_and_float32(monkeypatch, bf16):
    # Counts of common bits are integers: exact in bfloat16 up to 256, so the products agree
    # bit for bit (on a CPU without bfloat16 hardware it is slow, never wrong).
    rng = np.random.default_rng(0)
    a = (rng.random((70, 1024)) < 0.05).astype(np.uint8)
    b = (rng.random((90, 1024)) < 0.05).astype(np.uint8)
    expected = (tanimoto(a, b), nearest_neighbour_similarity(a, b, rows=16, columns=32),
                internal_diversities(a, (1, 2), rows=16, columns=32))
    monkeypatch.setattr(moses_metrics, "_bf16_products", lambda: bf16)
    assert moses_metrics._bf16_exact(a.sum(1), b.sum(1)) == bf16
    assert nearest_neighbour_similarity(a, b, rows=16, columns=32) == expected[1]
    assert internal_diversities(a, (1, 2), rows=16, columns=32) == expected[2]


def test_bfloat16_is_not_used_where_a_count_could_round():
    dense = np.ones((2, 1024), dtype=np.uint8)               # 1,024 bits set: not exact
    assert not moses_metrics._bf16_exact(dense.sum(1))
