import math

import numpy as np
import pytest
import torch

from seqvae.molecules.chemistry import (
    compute_properties,
    penalized_logp,
    target_properties,
    to_molecule,
)
from seqvae.molecules.property_head import (
    PropertyHead,
    property_loss,
    regression_metrics,
)


def test_penalized_logp_by_hand():
    from rdkit.Chem import Crippen

    from seqvae.molecules.chemistry import _sascorer
    for smiles, penalty in (("CCO", 0), ("c1ccccc1", 0), ("C1CCCCCCC1", 2)):   # 8-ring: 8 - 6
        mol = to_molecule(smiles)
        expected = Crippen.MolLogP(mol) - _sascorer().calculateScore(mol) - penalty
        assert penalized_logp(mol) == pytest.approx(expected)
    logp, qed, sa, plogp = target_properties("C1CCCCCCC1")
    assert plogp == pytest.approx(logp - sa - 2)
    assert target_properties("nonsense") is None


def test_compute_properties_is_cached_and_marks_invalid_rows():
    values = compute_properties(["CCO", "bad", "c1ccccc1"], log=lambda _: None)
    assert values.shape == (3, 4) and values.dtype == np.float32
    assert np.isnan(values[1]).all() and np.isfinite(values[[0, 2]]).all()
    assert np.array_equal(compute_properties(["CCO", "bad", "c1ccccc1"]), values, equal_nan=True)


def test_regression_metrics_by_hand():
    targets = np.array([[1.0], [2.0], [3.0], [np.nan]])
    predicted = np.array([[1.0], [2.0], [4.0], [0.0]])
    m = regression_metrics(predicted, targets, names=("x",))["x"]
    # residuals 0, 0, 1 -> MAE 1/3; SS_res 1, SS_tot 2 -> R2 0.5; the NaN row is left out
    assert m["mae"] == pytest.approx(1 / 3) and m["r2"] == pytest.approx(0.5) and m["n"] == 3


def test_property_loss_ignores_missing_targets():
    predicted = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    targets = torch.tensor([[0.0, float("nan")], [1.0, 1.0]])
    assert property_loss(predicted, targets).item() == pytest.approx((1 + 1 + 1) / 3)
    assert property_loss(predicted, torch.full((2, 2), float("nan"))).item() == 0.0


def test_head_predicts_in_the_properties_units():
    head = PropertyHead(latent_dim=3, hidden=8, n_properties=2)
    head.set_standardization(np.array([[0.0, 10.0], [2.0, 30.0]]))
    assert torch.allclose(head.mean, torch.tensor([1.0, 20.0]))
    assert torch.allclose(head.std, torch.tensor([1.0, 10.0]))
    z = torch.randn(4, 3)
    assert torch.allclose(head.predict(z), head(z) * head.std + head.mean)


def test_joint_training_reports_property_metrics(tmp_path, smiles_file):
    from helpers import tiny_config

    from seqvae.checkpoint import load_checkpoint
    from seqvae.training import train
    config = tiny_config(smiles_file, max_steps=6).override("model", property_head=16)
    summary = train(config, tmp_path / "run", log=lambda _: None, progress=False)
    head = summary["final_valid"]["properties"]
    assert set(head) == {"logp", "qed", "sa", "plogp"}
    assert all(math.isfinite(m["mae"]) for m in head.values())
    loaded = load_checkpoint(tmp_path / "run" / "model.pt")
    assert loaded.model.property_head is not None
    assert float(loaded.model.property_head.std[0]) > 0.1       # standardisation saved


def test_property_head_needs_smiles(tmp_path, text_file):
    from helpers import tiny_config

    from seqvae.errors import SeqVAEError
    from seqvae.training import train
    config = tiny_config(text_file, max_steps=2).override("model", property_head=8)
    with pytest.raises(SeqVAEError, match="SMILES"):
        train(config, tmp_path / "t", log=lambda _: None, progress=False)


def test_fit_properties_afterwards(trained_smiles_run, tmp_path, capsys):
    import seqvae
    from seqvae.cli import main
    out = tmp_path / "with_head.pt"
    assert main(["fit-properties", str(trained_smiles_run / "model.pt"), "-o", str(out),
                 "--epochs", "3", "--hidden", "16"]) == 0
    table = capsys.readouterr().out
    assert "plogp" in table and "R2" in table
    vae = seqvae.load(out)
    assert vae.model.property_head is not None and vae.config.model.property_head == 16
