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
