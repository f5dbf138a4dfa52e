import csv

import pytest

import seqvae
from seqvae.cli import main
from seqvae.errors import SeqVAEError
from seqvae.optimization import CSV_FIELDS, optimize

STARTS = ["CC(=O)Nc1ccc(O)cc1", "c1ccccc1CCN"]


@pytest.fixture(scope="module")
def vae(trained_smiles_head):
    return seqvae.load(trained_smiles_head / "model.pt", device="cpu")


def test_gradient_ascent_raises_the_prediction_and_counts_every_decode(vae):
    r = optimize(vae, "qed", starts=STARTS, from_prior=2, steps=6, lr=0.5, decode_every=3,
                 samples_per_point=2)
    points = 3                                             # steps 0, 3 and 6
    assert r.decodes == len(r.rows) == 4 * points * (1 + 2)
    assert r.valid_decodes == sum(row["valid"] for row in r.rows)
    for start in {row["start"] for row in r.rows}:
        first = [x["predicted_property"] for x in r.rows if x["start"] == start and x["step"] == 0]
        last = [x["predicted_property"] for x in r.rows if x["start"] == start and x["step"] == 6]
        assert last[0] > first[0]                          # the head's prediction went up
    for row in r.rows:
        assert (row["true_property"] is None) == (not row["valid"])
        if row["start"].startswith("prior:") or not row["valid"]:
            assert row["similarity"] is None
        else:
            assert 0 <= row["similarity"] <= 1
    best = r.best(k=5)
    assert len({b["smiles"] for b in best}) == len(best) and all(b["valid"] for b in best)
    assert [b["true_property"] for b in best] == sorted((b["true_property"] for b in best),
                                                        reverse=True)
    assert all(b["similarity"] >= 0.3 for b in r.best(k=5, similarity_min=0.3))


def test_the_prior_penalty_keeps_codes_closer_to_the_origin(vae):
    import numpy as np
    free = optimize(vae, "logp", from_prior=3, steps=20, lr=0.5, decode_every=20,
                    samples_per_point=0)
    held = optimize(vae, "logp", from_prior=3, steps=20, lr=0.5, decode_every=20,
                    samples_per_point=0, prior_weight=5.0)
    def final(result):
        return np.mean([r["predicted_property"] for r in result.rows if r["step"] == 20])
    assert final(free) >= final(held)


def test_bad_requests(vae, trained_smiles_run):
    with pytest.raises(SeqVAEError, match="objective"):
        optimize(vae, "potency", from_prior=1)
    with pytest.raises(SeqVAEError, match="not a valid SMILES"):
        optimize(vae, "qed", starts=["C1CC"])
    with pytest.raises(SeqVAEError, match="nothing to optimise"):
        optimize(vae, "qed")
    plain = seqvae.load(trained_smiles_run / "model.pt")
    with pytest.raises(SeqVAEError, match="fit-properties"):
        optimize(plain, "qed", from_prior=1)


def test_optimize_command_writes_the_csv(trained_smiles_head, tmp_path, capsys):
    out = tmp_path / "results.csv"
    starts = tmp_path / "starts.smi"
    starts.write_text("CCO\n")
    assert main(["optimize", str(trained_smiles_head / "model.pt"), "--objective", "plogp",
                 "--start", STARTS[0], "--start-file", str(starts), "--from-prior", "2",
                 "--steps", "4", "--decode-every", "2", "--samples", "1", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "valid molecules by true plogp" in printed and "never returned" in printed
    rows = list(csv.DictReader(open(out)))
    assert list(rows[0]) == CSV_FIELDS and len(rows) == 4 * 3 * 2
    assert main(["optimize", str(trained_smiles_head / "model.pt"), "--objective", "qed",
                 "--from-prior", "1", "--similarity-min", "2"]) == 2
