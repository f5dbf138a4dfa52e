import pytest

from seqvae.molecules.evaluation import (
    canonical_training_set,
    format_molecule_table,
    generation_metrics,
    property_table,
    reference_set,
)


@pytest.fixture
def molecules(smiles_file):
    return smiles_file.read_text().split()[:300]


@pytest.mark.network  # the MCF/PAINS filters come from the molsets wheel (pip)
def test_a_set_compared_with_itself(molecules):
    ref = reference_set(molecules, log=lambda _: None)
    again = reference_set(molecules, log=lambda _: None)        # from the cache
    assert (again.fingerprints == ref.fingerprints).all() and again.scaffolds == ref.scaffolds
    train = canonical_training_set(molecules, log=lambda _: None)
    r = generation_metrics(molecules + ["not a smiles"], train, {"test": ref})
    assert r["samples"] == 301 and r["valid"] == pytest.approx(300 / 301)
    assert r["unique@1k"] == 1.0 and r["novelty"] == 0.0     # every one is in "train"
    assert r["snn/test"] == pytest.approx(1.0)
    assert r["frag/test"] == pytest.approx(1.0) and r["scaf/test"] == pytest.approx(1.0)
    assert abs(r["fcd/test"]) < 1e-3
    assert 0.8 < r["intdiv1"] < 1 and r["intdiv2"] <= r["intdiv1"] + 1e-9
    assert 0.5 < r["filters"] <= 1.0                         # MOSES molecules pass, mostly
    for prop in ("logp", "sa", "qed", "weight"):             # the same property distributions
        assert r[f"{prop}/test"] == pytest.approx(0.0, abs=1e-9)
    table = format_molecule_table(r)
    assert "FCD/Test" in table and "weight (W1 to Test)" in table


@pytest.mark.network  # as above
def test_novel_molecules_and_properties(molecules):
    train = canonical_training_set(molecules[:100], log=lambda _: None)
    r = generation_metrics(molecules[100:200], train, {})
    assert r["novelty"] == 1.0 and "fcd/test" not in r and "logp/test" not in r
    table = property_table(["CCO", "bad", "c1ccccc1"])
    assert set(table) == {"logp", "qed", "sa", "mw"} and len(table["mw"]) == 2


def test_reconstruction_molecules_prepare_only_the_seeded_choice(trained_smiles_run, molecules,
                                                                 tmp_path, monkeypatch):
    import numpy as np

    import seqvae
    from seqvae.corpus_files import Corpus
    from seqvae.molecules.evaluation import reconstruction_molecules
    monkeypatch.setenv("SEQVAE_CACHE", str(tmp_path))
    vae = seqvae.load(trained_smiles_run / "model.pt", device="cpu")
    too_long = "C" * (vae.config.data.max_length + 5)      # the model's data settings skip it
    lines = molecules[:40] + [too_long] + molecules[40:60]
    corpus = Corpus("stand-in", "smiles", {"train": ["CCO"], "test": lines}, "stand-in:1", "")
    rng = np.random.default_rng(1)
    drawn = [lines[i] for i in rng.choice(len(lines), size=25, replace=False)]
    chosen = reconstruction_molecules(vae, corpus, 25, seed=1, log=lambda _: None)
    assert chosen == [s for s in drawn if s != too_long]      # the draw, in order, minus it
    assert too_long in drawn                                  # (seed 1 draws it: it was tested)
    assert not list(tmp_path.rglob("*.pt"))                    # nothing cached for a subset
    assert reconstruction_molecules(vae, corpus, 0, log=lambda _: None) == []
    everything = reconstruction_molecules(vae, corpus, 1000, seed=0, log=lambda _: None)
    assert sorted(everything) == sorted(s for s in lines if s != too_long)
