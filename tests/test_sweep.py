import json
from pathlib import Path

from seqvae.cli import main
from seqvae.sweep import format_table

DATA = Path(__file__).resolve().parents[1] / "data"
TINY = ["--data", str(DATA / "ptb_sample.txt"), "--embedding-dim", "16", "--encoder-hidden", "32",
        "--decoder-hidden", "32", "--latent-dim", "8", "--batch-size", "64", "--max-steps", "40",
        "--lr", "3e-3", "--kl-schedule", "constant", "--target-kl-lr", "0.05", "--samples", "0"]


def test_a_sweep_trains_evaluates_tabulates_and_resumes(tmp_path, capsys):
    out = tmp_path / "sweep"
    args = ["sweep", "--out", str(out), "--rates", "0", "15", "--evaluate",
            "--k 2 --limit 20 --endpoint-pairs 3", "--", *TINY]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].startswith("| target KL | IW-NLL")
    rows = {r.split("|")[1].strip(): r for r in table.splitlines()[2:]}
    assert set(rows) == {"0", "15"}
    for rate in ("0", "15"):
        result = json.loads((out / f"kl{rate}" / "evaluation.json").read_text())["likelihood"]
        assert result["n"] == 20 and result["k"] == 2 and "endpoint_recovery" in result
    # the rate target did its job: the model trained with 15 nats carries more than the other
    kl = {r: json.loads((out / f"kl{r}" / "evaluation.json").read_text())["likelihood"]["kl"]
          for r in ("0", "15")}
    assert kl["15"] > kl["0"] + 5
    assert (out / "rate_distortion.png").stat().st_size > 10_000
    assert (out / "sweep.csv").read_text().count("\n") == 3
    # run again: every point is done, nothing is trained or evaluated anew
    stamp = (out / "kl15" / "model.pt").stat().st_mtime
    assert main(args) == 0
    assert (out / "kl15" / "model.pt").stat().st_mtime == stamp


def test_the_table_uses_the_molecule_columns_for_molecules():
    rows = [{"target_kl": 40, "kl": 39.5, "reconstruction": 0.81, "valid": 0.9}]
    table = format_table(rows)
    assert "recon. greedy" in table and "| 40 | 39.5 | 0.810 |" in table


def _molecule_point(folder: Path, rate: float, kl: float, valid: float) -> None:
    folder.mkdir(parents=True)
    (folder / "evaluation.json").write_text(json.dumps({
        "likelihood": {"rec": 30.0 - kl / 2, "kl": kl + 1},
        "molecules": {"kl": kl, "reconstruction": kl / 50, "reconstruction_stochastic": kl / 80,
                      "valid": valid, "fcd/test": 1 + kl / 20}}))
    (folder / "summary.json").write_text(json.dumps({"train_seconds": 120, "steps": 100}))


def test_read_sweep_collects_every_point_and_the_plot_overlays_sweeps(tmp_path):
    from seqvae.plots import plot_rate_distortion
    from seqvae.sweep import read_sweep
    for name, valid in (("smiles", 0.8), ("selfies", 1.0)):
        for rate in (40, 5, 10):
            _molecule_point(tmp_path / name / f"kl{rate:g}", rate, rate * 0.95, valid)
    _molecule_point(tmp_path / "smiles" / "kl40-old", 40, 1.0, 0.5)   # not a point: skipped
    rows = read_sweep(tmp_path / "smiles")
    # ordered by rate, the molecule block's KL wins over the likelihood block's
    assert [r["target_kl"] for r in rows] == [5, 10, 40]
    assert [r["kl"] for r in rows] == [4.75, 9.5, 38.0]
    assert rows[0]["rec"] == 30.0 - 4.75 / 2 and rows[0]["train_minutes"] == 2
    assert "| 5 | 4.8 | 27.62 | 0.095 |" in format_table(rows)
    png = plot_rate_distortion({"smiles": rows, "selfies": read_sweep(tmp_path / "selfies")},
                               tmp_path / "both.png")
    assert png.stat().st_size > 20_000


def test_read_sweep_of_an_empty_folder_says_what_to_do(tmp_path):
    import pytest

    from seqvae.errors import SeqVAEError
    from seqvae.sweep import read_sweep
    with pytest.raises(SeqVAEError, match="run its seqvae sweep first"):
        read_sweep(tmp_path)
