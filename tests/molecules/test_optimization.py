import csv
import math

import pytest
import torch

import seqvae
from seqvae.cli import main
from seqvae.errors import SeqVAEError
from seqvae.molecules.chemistry import canonical
from seqvae.molecules.optimization import (
    CSV_FIELDS,
    constrained_summary,
    lowest_test_molecules,
    optimize,
)

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


def test_restarts_climb_from_the_mean_and_from_posterior_draws(vae, monkeypatch):
    seen = _codes_at_each_decode(monkeypatch)
    r = optimize(vae, "qed", starts=STARTS, steps=2, lr=0.5, decode_every=2,
                 samples_per_point=1, restarts=3, seed=4)
    assert r.decodes == len(r.rows) == 3 * len(STARTS) * 2 * (1 + 1)    # paths x points x decodes
    assert {row["start"] for row in r.rows} == set(r.start_values) == set(map(canonical, STARTS))
    mu = torch.from_numpy(vae.encode(STARTS))
    first = seen[0]                                                        # (3 * 2, D)
    assert torch.allclose(first[:2], mu, atol=1e-6)                       # path 1: the means
    assert not torch.allclose(first[2:4], mu) and not torch.allclose(first[2:4], first[4:])
    one = optimize(vae, "qed", starts=STARTS, steps=2, lr=0.5, decode_every=2,
                   samples_per_point=1, seed=4)
    assert one.decodes == len(STARTS) * 2 * 2
    with pytest.raises(SeqVAEError, match="restarts"):
        optimize(vae, "qed", starts=STARTS, restarts=0)


def _codes_at_each_decode(monkeypatch):
    """Record the codes optimize() hands to its decoder, step by step (it keeps no z itself)."""
    import seqvae.molecules.optimization as opt
    seen, real = {}, opt._decode_and_score
    def spy(vae, z, step, *args):
        seen[step] = z.detach().clone()
        return real(vae, z, step, *args)
    monkeypatch.setattr(opt, "_decode_and_score", spy)
    return seen


def test_the_prior_penalty_keeps_codes_closer_to_the_origin(vae, monkeypatch):
    runs = {}
    for weight in (0.0, 5.0):
        with monkeypatch.context() as patch:
            codes = runs[weight] = _codes_at_each_decode(patch)
            optimize(vae, "logp", from_prior=3, steps=20, lr=0.5, decode_every=20,
                     samples_per_point=0, prior_weight=weight)
        assert sorted(codes) == [0, 20]
    free, held = runs[0.0], runs[5.0]
    assert torch.equal(free[0], held[0])                   # same prior draws to start from
    norm = {w: runs[w][20].norm(dim=1) for w in runs}
    # -log p(z) = ||z||^2 / 2 + const: every code ends nearer the origin under the penalty,
    # and the penalised ones end nearer than they started (lambda = 5 outweighs the head)
    assert (norm[5.0] < norm[0.0]).all()
    assert (norm[5.0] < held[0].norm(dim=1)).all()
    assert norm[5.0].mean() < 0.5 * norm[0.0].mean()


def test_without_a_prior_weight_the_density_is_never_asked_for(vae, monkeypatch):
    # a diffusion prior has no log p(z); optimising with --prior-weight 0 must not need one
    def no_density(z):
        raise SeqVAEError("no density")
    monkeypatch.setattr(vae, "prior_log_prob", no_density)
    result = optimize(vae, "logp", from_prior=2, steps=3, lr=0.1, decode_every=3,
                      samples_per_point=0)
    assert result.decodes == 2 * 2                   # two starts, decoded at steps 0 and 3
    with pytest.raises(SeqVAEError, match="no density"):
        optimize(vae, "logp", from_prior=2, steps=3, lr=0.1, decode_every=3,
                 samples_per_point=0, prior_weight=1.0)


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


def _row(start, smiles, value, similarity, valid=True):
    return {"start": start, "step": 0, "smiles": smiles, "valid": valid,
            "true_property": value if valid else None, "predicted_property": 0.0,
            "similarity": similarity}


def test_constrained_summary_against_hand_computed_values():
    start_values = {"A": -5.0, "B": 1.0, "C": 0.0}
    rows = [
        _row("A", "A", 9.0, 1.0),          # the start itself never counts
        _row("A", "x", -4.0, 0.7),         # +1.0 at similarity 0.7
        _row("A", "y", -2.0, 0.5),         # +3.0 at 0.5: best at delta 0.4, too far at 0.6
        _row("A", "bad", None, None, valid=False),
        _row("B", "z", 0.5, 0.9),          # worse than its start: no success
        _row("C", "w", 2.0, 0.45),         # +2.0 at 0.45
        _row("prior:0", "v", 50.0, None),  # not a molecule start
    ]
    at_04 = constrained_summary(rows, start_values, 0.4)
    assert at_04["starts"] == 3 and at_04["success"] == pytest.approx(2 / 3)
    assert at_04["improvement"] == pytest.approx(2.5)          # (3 + 2) / 2
    assert at_04["improvement_std"] == pytest.approx(0.5)
    assert at_04["similarity"] == pytest.approx(0.475)         # (0.5 + 0.45) / 2
    assert at_04["improvement_all"] == pytest.approx(5 / 3)
    at_06 = constrained_summary(rows, start_values, 0.6)
    assert at_06["success"] == pytest.approx(1 / 3)
    assert at_06["improvement"] == pytest.approx(1.0) and at_06["similarity"] == pytest.approx(0.7)
    nothing = constrained_summary(rows, start_values, 0.95)
    assert nothing["success"] == 0 and math.isnan(nothing["improvement"])


def test_constrained_benchmark_from_the_lowest_test_molecules(vae, trained_smiles_head, capsys):
    lowest = lowest_test_molecules(vae, "plogp", 3, log=lambda _: None)
    values = [v for _, v in lowest]
    assert len(lowest) == 3 and values == sorted(values)
    assert len({s for s, _ in lowest}) == 3
    r = optimize(vae, "plogp", starts=[s for s, _ in lowest], steps=2, decode_every=1,
                 samples_per_point=1)
    assert r.start_values == pytest.approx(dict(lowest), abs=1e-4)
    summary = r.constrained(0.4)
    assert summary["starts"] == 3 and 0 <= summary["success"] <= 1
    assert main(["optimize", str(trained_smiles_head / "model.pt"), "--objective", "plogp",
                 "--start-lowest", "2",
                 "--steps", "2", "--decode-every", "1", "--samples", "1",
                 "--similarity-min", "0.4", "0.6"]) == 0
    printed = capsys.readouterr().out
    assert "constrained (delta 0.4)" in printed and "constrained (delta 0.6)" in printed
    assert printed.count("normalised as JT-VAE") == 2


def test_normalized_rescoring_replaces_every_score_with_jtvae_s():
    from seqvae.molecules.chemistry import normalized_penalized_logp
    from seqvae.molecules.optimization import OptimizationResult
    start = "CCO"
    rows = [_row(start, "CCCO", 99.0, 0.5), _row(start, "CCCCCCCCO", -99.0, 0.45),
            _row(start, "bad", None, None, valid=False)]
    ours = OptimizationResult("plogp", rows, decodes=3, valid_decodes=2, start_values={start: 0.0})
    theirs = ours.normalized()
    scores = [r["true_property"] for r in theirs.rows]
    assert scores[:2] == pytest.approx([normalized_penalized_logp("CCCO"),
                                        normalized_penalized_logp("CCCCCCCCO")])
    assert scores[2] is None and theirs.decodes == 3 and theirs.valid_decodes == 2
    assert theirs.start_values == pytest.approx({start: normalized_penalized_logp(start)})
    # the octanol decode, which our made-up scores called worse, wins under JT-VAE's score
    assert scores[1] > scores[0] > theirs.start_values[start]
    assert theirs.constrained(0.4)["improvement"] == pytest.approx(
        scores[1] - theirs.start_values[start])
    assert ours.constrained(0.4)["improvement"] == pytest.approx(99.0)
    with pytest.raises(SeqVAEError, match="plogp only"):
        OptimizationResult("qed", rows).normalized()


def test_best_with_a_heavy_atom_cap_leaves_out_larger_molecules():
    from seqvae.molecules.optimization import OptimizationResult, heavy_atoms
    assert heavy_atoms("CCO") == 3 and heavy_atoms("c1ccccc1CCCCCCCC") == 14
    result = OptimizationResult("plogp", rows=[
        _row("prior:0", "c1ccccc1CCCCCCCC", 9.0, None),     # 14 heavy atoms, best score
        _row("prior:1", "CCCCC", 5.0, None),                # 5 heavy atoms
        _row("prior:2", "CCO", 1.0, None)])
    assert [r["smiles"] for r in result.best(2)] == ["c1ccccc1CCCCCCCC", "CCCCC"]
    assert [r["smiles"] for r in result.best(2, max_heavy_atoms=5)] == ["CCCCC", "CCO"]


def test_optimize_command_lists_the_capped_molecules_too(trained_smiles_head, capsys):
    assert main(["optimize", str(trained_smiles_head / "model.pt"), "--objective", "logp",
                 "--from-prior", "2", "--steps", "2", "--decode-every", "1", "--samples", "1",
                 "--max-heavy-atoms", "38"]) == 0
    assert "at most 38 heavy atoms" in capsys.readouterr().out
    assert main(["optimize", str(trained_smiles_head / "model.pt"), "--objective", "logp",
                 "--from-prior", "1", "--max-heavy-atoms", "0"]) == 2
