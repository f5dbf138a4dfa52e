"""Value checks for code otherwise reached only through the CLI or the notebook: the figures,
reconstruction accuracy, the latent neighbourhood of a molecule and the property head fitted
afterwards on posterior means."""
import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from rdkit import Chem, DataStructs
from rdkit.Chem import rdFingerprintGenerator

import seqvae
from seqvae.molecules.chemistry import TARGET_PROPERTIES

DATA = Path(__file__).resolve().parents[1] / "data"
METRIC_COLUMNS = ["step", "epoch", "split", "seconds", "rec", "kl", "loss", "kl_weight", "lr"]


@pytest.fixture(scope="module")
def vae(trained_smiles_run):
    return seqvae.load(trained_smiles_run / "model.pt", device="cpu")


def _morgan_tanimoto(a, b):
    """RDKit's own Morgan (radius 2, 1,024 bits) Tanimoto similarity of two SMILES."""
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=1024)
    fa, fb = (gen.GetFingerprint(Chem.MolFromSmiles(s)) for s in (a, b))
    return DataStructs.TanimotoSimilarity(fa, fb)


# --- plots ---------------------------------------------------------------------------------

def _write_metrics(path):
    rows = [dict(step=s, epoch=0, split="train", seconds=s, rec=100 - s, kl=s / 10, loss=0,
                 kl_weight=min(1, s / 8), lr=1e-3 * (1 - s / 20)) for s in (2, 4, 6, 8)]
    rows += [dict(step=s, epoch=0, split="valid", seconds=s, rec=90 - s, kl=s / 5, loss="",
                  kl_weight="", lr="") for s in (4, 8)]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, METRIC_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_training_curves_draw_each_series_from_the_csv(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from seqvae.plots import plot_training_curves
    figures = []
    real_savefig = Figure.savefig
    monkeypatch.setattr(Figure, "savefig",
                        lambda fig, *a, **k: figures.append(fig) or real_savefig(fig, *a, **k))
    png = plot_training_curves(_write_metrics(tmp_path / "metrics.csv"), tmp_path / "t.png")
    assert png == tmp_path / "t.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    (fig,) = figures
    rec, kl, schedules, lr = fig.axes                      # three panels and the lr twin axis
    def lines(ax):
        return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
                for line in ax.lines}
    assert lines(rec) == {"train": ([2, 4, 6, 8], [98, 96, 94, 92]),
                          "valid": ([4, 8], [86, 82])}
    assert lines(kl)["train"] == ([2, 4, 6, 8], [0.2, 0.4, 0.6, 0.8])
    assert lines(kl)["valid"] == ([4, 8], [0.8, 1.6])
    assert lines(schedules)["KL weight"] == ([2, 4, 6, 8], [0.25, 0.5, 0.75, 1.0])
    assert lines(lr)["learning rate"][1] == pytest.approx([9e-4, 8e-4, 7e-4, 6e-4])
    assert "reconstruction" in rec.get_title() and "KL" in kl.get_title()
    assert schedules.get_xlabel() == "optimiser step"


def test_property_distributions_one_histogram_per_set_and_property(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from seqvae.plots import plot_property_distributions
    figures = []
    real_savefig = Figure.savefig
    monkeypatch.setattr(Figure, "savefig",
                        lambda fig, *a, **k: figures.append(fig) or real_savefig(fig, *a, **k))
    rng = np.random.default_rng(0)
    sets = {"samples": {p: rng.normal(size=30) for p in ("logp", "qed", "sa", "mw")},
            "test": {p: rng.normal(size=50) for p in ("logp", "qed", "sa")}}   # no mw
    png = plot_property_distributions(sets, tmp_path / "p.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (fig,) = figures
    labels = [[p.get_label() for p in ax.patches] for ax in fig.axes]
    assert labels == [["samples (n=30)", "test (n=50)"]] * 3 + [["samples (n=30)"]]
    assert [ax.get_title() for ax in fig.axes] == ["logP (Crippen)", "QED", "SA score",
                                                   "molecular weight (Da)"]


def test_optimization_trajectory_plots_predicted_and_valid_true_values(tmp_path):
    from seqvae.molecules.optimization import OptimizationResult
    from seqvae.plots import plot_optimization_trajectory
    result = OptimizationResult("qed")
    def row(start, step, valid, true, predicted):
        return {"start": start, "step": step, "smiles": "C", "valid": valid,
                "true_property": true, "predicted_property": predicted, "similarity": None}
    result.rows = [row("A", 0, True, 0.3, 0.1), row("A", 0, False, None, 0.1),
                   row("A", 5, True, 0.5, 0.4), row("A", 10, False, None, 0.7),
                   row("B", 0, True, 0.9, 0.9)]
    fig = plot_optimization_trajectory(result, "A", tmp_path / "o.png")
    assert (tmp_path / "o.png").read_bytes()[:4] == b"\x89PNG"
    (ax,) = fig.axes
    (line,) = ax.lines
    assert list(line.get_xdata()) == [0, 5, 10] and list(line.get_ydata()) == [0.1, 0.4, 0.7]
    (points,) = ax.collections
    assert points.get_offsets().tolist() == [[0, 0.3], [5, 0.5]]   # valid decodes of A only
    assert ax.get_ylabel() == "qed"


# --- reconstruction accuracy and the neighbourhood -----------------------------------------

class _FixedDecodes:
    """Wrap a trained model, replacing decode() by a rule of the code that the test knows."""

    def __init__(self, vae, rule):
        self.vae, self.rule, self.codes = vae, rule, []

    def __getattr__(self, name):
        return getattr(self.vae, name)

    def reconstruct(self, texts, check=True, **kwargs):
        return self.decode(self.vae.encode(texts, check=check))

    def decode(self, z, **kwargs):
        self.codes.append(np.array(z))
        return [self.rule(i, code) for i, code in enumerate(np.asarray(z))]


def test_reconstruction_accuracy_compares_canonical_molecules(vae):
    from seqvae.molecules.reconstruction import greedy_reconstruction

    def reconstruction_accuracy(model, smiles):
        return greedy_reconstruction(model, smiles)["share"]
    inputs = ["OCC", "c1ccccc1", "C1CC", "CCN", "CC(=O)O"]        # C1CC: invalid, left out
    # decodes: the same molecule written otherwise, the same, a different one, garbage
    answers = {"OCC": "CCO", "c1ccccc1": "C1=CC=CC=C1", "CCN": "CCC", "CC(=O)O": "((("}
    fake = _FixedDecodes(vae, None)
    valid = [s for s in inputs if Chem.MolFromSmiles(s)]
    fake.rule = lambda i, code: answers[valid[i]]
    assert reconstruction_accuracy(fake, inputs) == pytest.approx(2 / 4)
    assert reconstruction_accuracy(fake, ["C1CC"]) == 0.0
    # and on the real model: the share of greedy decodes of the means that are the molecule
    smiles = ["CCO", "c1ccccc1", "CC(=O)Nc1ccc(O)cc1", "CCN"]
    decoded = vae.decode(vae.encode(smiles))
    same = [Chem.MolFromSmiles(d) is not None and
            Chem.MolToSmiles(Chem.MolFromSmiles(d)) == Chem.MolToSmiles(Chem.MolFromSmiles(s))
            for s, d in zip(smiles, decoded)]
    assert reconstruction_accuracy(vae, smiles) == pytest.approx(np.mean(same))


def test_neighbourhood_of_a_molecule(vae):
    from seqvae.errors import SeqVAEError
    from seqvae.molecules.optimization import neighbourhood
    start = "CC(=O)Nc1ccc(O)cc1"
    mu = vae.encode([start])[0]
    # decodes by the first coordinate of the offset from the mean: the molecule itself above
    # +0.2, an invalid string below -0.2, and a fixed other molecule in between
    def rule(i, code):
        d = code[0] - mu[0]
        return start if d > 0.2 else ("C1CC" if d < -0.2 else "CC(=O)Nc1ccccc1")
    fake = _FixedDecodes(vae, rule)
    rows = neighbourhood(fake, start, n=400, scale=0.3, seed=1)
    (codes,) = fake.codes
    offsets = codes - mu
    assert codes.shape == (400, vae.latent_dim)
    assert offsets.std() == pytest.approx(0.3, rel=0.1) and abs(offsets.mean()) < 0.03
    above = int((offsets[:, 0] > 0.2).sum())
    between = int(((offsets[:, 0] >= -0.2) & (offsets[:, 0] <= 0.2)).sum())
    assert above > 0 and between > 0 and above + between < 400
    canon_start = Chem.MolToSmiles(Chem.MolFromSmiles(start))
    other = Chem.MolToSmiles(Chem.MolFromSmiles("CC(=O)Nc1ccccc1"))
    assert [r["smiles"] for r in rows] == [canon_start, other]      # most similar first
    assert rows[0]["similarity"] == pytest.approx(1.0)
    assert rows[1]["similarity"] == pytest.approx(_morgan_tanimoto(start, other))
    assert [r["times_decoded"] for r in rows] == [above, between]
    assert all(r["valid_share"] == pytest.approx((above + between) / 400) for r in rows)
    # no noise: every code is the mean
    fake.codes.clear()
    rows = neighbourhood(fake, start, n=5, scale=0.0)
    assert np.allclose(fake.codes[0], mu) and rows[0]["times_decoded"] == 5
    with pytest.raises(SeqVAEError, match="not a valid SMILES"):
        neighbourhood(vae, "C1CC")


# --- a property head fitted on posterior means ---------------------------------------------

def test_fit_head_on_means_learns_a_known_function_of_the_means(vae):
    from seqvae.data import TokenizedSplit
    from seqvae.molecules.property_fitting import fit_head_on_means
    smiles = (DATA / "moses_test_sample.smi").read_text().split()[:400]
    means = torch.as_tensor(vae.encode(smiles))
    # targets: fixed linear functions of the means, in very different units per property
    weights = torch.tensor([[1.0, -2.0, 0.5, 3.0], [0.0, 1.0, 1.0, -1.0]] + [[0.2] * 4] * 6)
    weights = weights[:means.size(1)]
    scale = torch.tensor([1.0, 0.01, 10.0, 100.0])
    shift = torch.tensor([2.0, 0.5, -3.0, 50.0])
    targets = ((means @ weights) * scale + shift).numpy().astype(np.float64)
    targets[5, 2] = np.nan                                        # an unscorable molecule
    train, valid = slice(0, 300), slice(300, 400)
    head, metrics = fit_head_on_means(
        vae, TokenizedSplit.from_lists(vae.tokenizer.encode_batch(smiles[train])),
        targets[train], TokenizedSplit.from_lists(vae.tokenizer.encode_batch(smiles[valid])),
        targets[valid], hidden=32, epochs=150, batch_size=64, lr=3e-3, log=lambda _: None)
    finite = targets[train][np.isfinite(targets[train]).all(1)]
    assert head.mean.numpy() == pytest.approx(finite.mean(0), rel=1e-4, abs=1e-4)
    assert head.std.numpy() == pytest.approx(finite.std(0), rel=1e-3)
    with torch.no_grad():
        predicted = head.predict(means[valid]).numpy()
    truth = targets[valid]
    for j, name in enumerate(TARGET_PROPERTIES):
        r2 = 1 - ((truth[:, j] - predicted[:, j]) ** 2).sum() / (
            (truth[:, j] - truth[:, j].mean()) ** 2).sum()
        assert r2 > 0.9, name                                     # a linear map is easy to learn
        assert metrics[name]["r2"] == pytest.approx(r2, abs=1e-4)
        assert metrics[name]["mae"] == pytest.approx(np.abs(truth[:, j] - predicted[:, j]).mean(),
                                                     rel=1e-4)
