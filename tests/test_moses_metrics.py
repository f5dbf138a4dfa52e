import math
from collections import Counter

import numpy as np
import pytest

from seqvae.moses_metrics import (cosine_similarity, fingerprints, fraction_valid,
                                  fragment_counts, internal_diversity, nearest_neighbour_similarity,
                                  passes_filters, property_values, scaffold_counts,
                                  smarts_patterns, tanimoto, unique_at, valid_canonical,
                                  wasserstein_metric, novelty)


def test_validity_uniqueness_and_novelty_by_hand():
    gen = ["CCO", "OCC", "C1CC", "c1ccccc1", "xyz", "CCN"]       # OCC is CCO; 2 invalid
    assert fraction_valid(gen) == pytest.approx(4 / 6)
    valid = valid_canonical(gen)
    assert valid == ["CCO", "CCO", "c1ccccc1", "CCN"]
    assert unique_at(valid, 2) == pytest.approx(1 / 2)          # CCO, CCO
    assert unique_at(valid, 10) == pytest.approx(3 / 4)         # fewer than k: share of those
    assert novelty(valid, {"CCO"}) == pytest.approx(2 / 3)      # c1ccccc1 and CCN are new
    assert fraction_valid([]) == 0.0 and unique_at([], 5) == 0.0


def test_tanimoto_by_hand():
    a = np.array([[1, 1, 0, 0], [0, 0, 0, 0]], dtype=np.uint8)
    b = np.array([[1, 0, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]], dtype=np.uint8)
    expected = [[1 / 3, 1.0, 0.0], [0.0, 0.0, 1.0]]
    assert np.allclose(tanimoto(a, b), expected)


def test_internal_diversity_by_hand():
    fps = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=np.uint8)   # T = 1 with self, 0 across
    assert internal_diversity(fps, p=1) == pytest.approx(1 - 0.5)
    assert internal_diversity(fps, p=2) == pytest.approx(1 - math.sqrt(0.5))
    same = fingerprints(["CCO", "OCC"])
    assert internal_diversity(same) == pytest.approx(0.0)


def test_snn_by_hand():
    fps = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=np.uint8)
    ref = np.array([[1, 1, 0, 0], [0, 0, 1, 0]], dtype=np.uint8)
    assert nearest_neighbour_similarity(fps, ref, chunk=1) == pytest.approx((1 + 0.5) / 2)


def test_fingerprints_are_morgan_1024():
    fps = fingerprints(["c1ccccc1", "not a smiles"])
    assert fps.shape == (2, 1024) and fps[0].sum() > 0 and fps[1].sum() == 0


def test_fragments_count_every_occurrence():
    # diphenyl ether: BRICS cuts both C-O bonds; the phenyl fragment occurs twice (molsets
    # counts it twice; BRICSDecompose, used before, listed it once)
    assert fragment_counts(["c1ccc(Oc2ccccc2)cc1"]) == Counter({"[16*]c1ccccc1": 2,
                                                                 "[3*]O[3*]": 1})
    assert fragment_counts(["c1ccc(Oc2ccccc2)cc1"] * 2)["[16*]c1ccccc1"] == 4
    assert fragment_counts(["c1ccc2ccccc2c1", "bad"]) == Counter({"c1ccc2ccccc2c1": 1})


def test_scaffolds_need_two_rings():
    # MOSES keeps only scaffolds of two or more rings: benzene rings and chains have none
    assert scaffold_counts(["CCOC(=O)c1ccccc1", "Cc1ccccc1", "CCO", "bad"]) == Counter()
    assert scaffold_counts(["O=C(Nc1ccccc1)c1ccccc1", "CC(=O)c1ccc(C(=O)Nc2ccccc2)cc1",
                            "c1ccc2ccccc2c1"]) == Counter({"O=C(Nc1ccccc1)c1ccccc1": 2,
                                                           "c1ccc2ccccc2c1": 1})
    assert scaffold_counts(["CCOC(=O)c1ccccc1"], min_rings=1) == Counter({"c1ccccc1": 1})


def test_cosine_similarity_by_hand():
    assert cosine_similarity(Counter(a=1, b=1), Counter(a=1)) == pytest.approx(1 / math.sqrt(2))
    assert cosine_similarity(Counter(a=2), Counter(b=3)) == 0.0
    assert math.isnan(cosine_similarity(Counter(), Counter(a=1)))    # as molsets: undefined


def test_wasserstein_by_hand():
    assert wasserstein_metric(np.array([0.0, 1.0]), np.array([0.0, 1.0])) == 0.0
    assert wasserstein_metric(np.array([0.0]), np.array([2.0, 4.0])) == pytest.approx(3.0)
    assert math.isnan(wasserstein_metric(np.array([]), np.array([1.0])))
    values = property_values(["CCO", "bad", "c1ccccc1"])
    assert set(values) == {"logP", "SA", "QED", "weight"} and len(values["weight"]) == 2
    assert values["weight"][0] == pytest.approx(46.069, abs=1e-3)


def test_filters():
    patterns = smarts_patterns("names,smarts\nnitro,[N+](=O)[O-]\nbad,((\n", 1, header=True)
    assert len(patterns) == 1                                     # the unreadable row is skipped
    assert passes_filters("CC(=O)Nc1ccc(O)cc1", patterns)         # paracetamol
    assert not passes_filters("C[N+](C)(C)C", [])                 # charged
    assert not passes_filters("CCP", [])                          # phosphorus is not allowed
    assert not passes_filters("C1CCCCCCCC1", [])                  # a 9-membered ring
    assert not passes_filters("nonsense", [])
    assert not passes_filters("", [])
    assert not passes_filters("c1ccc(C=CC#N)cc1", smarts_patterns(
        "names,smarts\nMCF1,[#6]=&!@[#6]-[#6]#[#7]\n", 1, header=True))


def test_fcd_is_zero_to_itself_and_positive_to_another_set(smiles_file):
    from seqvae.moses_metrics import chemnet_stats, frechet_chemnet_distance
    lines = smiles_file.read_text().split()
    a, b = lines[:200], ["C" * n for n in range(1, 40)] + ["O" * n for n in range(1, 4)]
    stats = chemnet_stats(a)
    assert stats[0].shape == (512,) and stats[1].shape == (512, 512)
    assert abs(frechet_chemnet_distance(a, stats)) < 1e-3
    assert frechet_chemnet_distance(b, stats) > 10      # chains of C and O are unlike drugs
    # given the statistics instead of the molecules, the same distance without ChemNet
    assert frechet_chemnet_distance(chemnet_stats(b), stats) == pytest.approx(
        frechet_chemnet_distance(b, stats))
