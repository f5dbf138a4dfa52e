import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from seqvae.cli import build_parser, config_from_args, main
from seqvae.config import preset


def test_every_command_has_help():
    for command in ("train", "sample", "encode", "reconstruct"):
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0


def test_console_script_is_installed():
    exe = shutil.which("seqvae")
    assert exe, "the seqvae console script is not on PATH: pip install -e ."
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("train", "sample", "encode", "reconstruct"):
        assert command in out


def test_flags_override_the_preset():
    args = build_parser().parse_args(
        ["train", "--data", "ptb", "--out", "x", "--preset", "moses", "--latent-dim", "32",
         "--kl-warmup-steps", "none", "--bidirectional", "--max-steps", "10"])
    config = config_from_args(args, preset(args.preset))
    assert config.model.latent_dim == 32 and config.model.bidirectional is True
    assert config.model.decoder_layers == 3  # untouched preset value
    assert config.objective.kl_warmup_steps is None
    assert config.train.max_steps == 10 and config.data.source == "ptb"


def test_train_then_every_verb(tmp_path, smiles_file, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--data", str(smiles_file), "--out", str(out), "--max-steps", "6",
               "--batch-size", "128", "--embedding-dim", "16", "--encoder-hidden", "32",
               "--decoder-hidden", "32", "--latent-dim", "8", "--threads", "1",
               "--samples", "20"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "Best validation ELBO" in printed and "20 prior samples: valid" in printed
    assert (out / "model.pt").exists()

    assert main(["sample", str(out / "model.pt"), "-n", "5", "--seed", "0"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 5

    molecules = tmp_path / "mols.smi"
    molecules.write_text("CCO\nc1ccccc1\n\nCC(=O)O\n")
    assert main(["encode", str(out / "model.pt"), str(molecules), "-o", str(tmp_path / "z.npy")]) == 0
    assert np.load(tmp_path / "z.npy").shape == (3, 8)

    assert main(["reconstruct", str(out / "model.pt"), str(molecules)]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 3
    assert "reconstructed exactly" in captured.err

    # resume to a longer run
    assert main(["train", "--data", str(smiles_file), "--out", str(out), "--resume",
                 "--max-steps", "8", "--samples", "0"]) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == 8


def test_errors_are_one_line_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "seqvae", "sample", str(tmp_path / "nope.pt")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("seqvae: error:") and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "seqvae", "train", "--data",
                           str(tmp_path / "missing.txt"), "--out", str(tmp_path / "r")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "missing.txt" in proc.stderr and "Traceback" not in proc.stderr
