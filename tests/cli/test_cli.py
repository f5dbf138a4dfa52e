import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from seqvae.cli import build_parser, config_from_args, main
from seqvae.config import preset
from seqvae.molecules.chemistry import is_valid


def test_every_command_has_help():
    for command in ("train", "sample", "encode", "reconstruct", "evaluate", "interpolate"):
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0


def test_help_gives_defaults_that_say_something(capsys):
    for command in ("train", "evaluate", "fit-prior"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "(default: None)" not in text and "(default: False)" not in text
        assert text.count("(default:") == text.count("default:")   # never said twice
    with pytest.raises(SystemExit):
        main(["fit-prior", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 200000)" in text                                # --train-codes
    assert "(default: model-prior.pt beside MODEL)" in text          # its own words, once


def test_console_script_is_installed():
    exe = shutil.which("seqvae")
    assert exe, "the seqvae console script is not on PATH: pip install -e ."
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("train", "sample", "encode", "reconstruct", "evaluate", "interpolate"):
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
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 5
    assert "of 5 samples are valid molecules" in captured.err
    assert main(["sample", str(out / "model.pt"), "-n", "5", "--seed", "0",
                 "--no-constraints"]) == 0
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


@pytest.fixture
def bad_lines(tmp_path):
    path = tmp_path / "bad.smi"
    path.write_text("CCO\n\nC(C\nc1ccccc1\n")
    return path


def test_invalid_lines_stop_encode_naming_the_line(trained_smiles_run, bad_lines, tmp_path, capsys):
    rc = main(["encode", str(trained_smiles_run / "model.pt"), str(bad_lines), "-o",
               str(tmp_path / "z.npy")])
    err = capsys.readouterr().err
    assert rc == 2 and "bad.smi: line 3 ('C(C') is not a valid SMILES" in err
    assert "--skip-invalid" in err and not (tmp_path / "z.npy").exists()


def test_skip_invalid_counts_what_it_skips(trained_smiles_run, bad_lines, tmp_path, capsys):
    rc = main(["encode", str(trained_smiles_run / "model.pt"), str(bad_lines), "-o",
               str(tmp_path / "z.npy"), "--skip-invalid"])
    err = capsys.readouterr().err
    assert rc == 0 and "skipped 1 unusable lines" in err and "(lines 3)" in err
    assert "skipped 1 blank lines" in err
    assert np.load(tmp_path / "z.npy").shape[0] == 2
    rc = main(["reconstruct", str(trained_smiles_run / "model.pt"), str(bad_lines),
               "--skip-invalid"])
    assert rc == 0 and len(capsys.readouterr().out.strip().splitlines()) == 2


def test_bad_flag_values_get_one_line(tmp_path, smiles_file, capsys):
    rc = main(["train", "--data", str(smiles_file), "--out", str(tmp_path / "r"),
               "--batch-size", "0"])
    assert rc == 2 and "--batch-size must be at least 1" in capsys.readouterr().err
    rc = main(["sample", str(tmp_path / "r" / "model.pt"), "-n", "0"])
    assert rc == 2 and "-n must be at least 1" in capsys.readouterr().err


def test_no_latent_flag_sets_latent_dim_zero():
    args = build_parser().parse_args(["train", "--out", "x", "--preset", "ptb", "--no-latent"])
    assert config_from_args(args, preset("ptb")).model.latent_dim == 0


def test_evaluate_prints_a_table_and_writes_json(trained_text_run, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["evaluate", str(trained_text_run / "model.pt"), "--limit", "6", "--k", "4",
                 "-o", str(out)]) == 0
    table = capsys.readouterr().out
    assert "importance-weighted" in table and "active units" in table
    result = json.loads(out.read_text())
    assert result["data"] == "test"
    assert result["likelihood"]["n"] == 6 and result["likelihood"]["k"] == 4


def test_evaluate_a_file(trained_text_run, tmp_path, capsys):
    src = tmp_path / "s.txt"
    src.write_text("the market fell\n\nhe said\n")
    assert main(["evaluate", str(trained_text_run / "model.pt"), "--file", str(src),
                 "--k", "2", "-o", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["likelihood"]["n"] == 2
    assert main(["evaluate", str(trained_text_run / "model.pt"), "--k", "0"]) == 2
    assert main(["evaluate", str(trained_text_run / "model.pt"), "--split", "nope"]) == 2
    assert "no split 'nope'" in capsys.readouterr().err


def test_interpolate_two_sentences(trained_text_run, capsys):
    ckpt = str(trained_text_run / "model.pt")
    assert main(["interpolate", ckpt, "the market fell", "He said Zyxwv", "--steps", "4",
                 "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert len(result["points"]) == 4 and result["start"] == "the market fell"
    assert "outside the model's vocabulary" in captured.err
    assert main(["interpolate", ckpt, "--random", "--path", "slerp", "--decode", "beam"]) == 0
    assert "prior sample" in capsys.readouterr().out


def test_interpolate_test_pairs(trained_text_run, capsys):
    assert main(["interpolate", str(trained_text_run / "model.pt"), "--test-pairs", "5",
                 "--steps", "3"]) == 0
    report = capsys.readouterr().out
    assert "of 5 random test pairs of at most 15 words" in report
    assert "beam-search decoding, 20 beams reranked by re-encoding, of" in report  # the default
    assert main(["interpolate", str(trained_text_run / "model.pt"), "--test-pairs", "5",
                 "--steps", "3", "--decode", "greedy"]) == 0
    assert "(greedy decoding of the posterior mean" in capsys.readouterr().out
    assert main(["interpolate", str(trained_text_run / "model.pt"), "--test-pairs", "4",
                 "--steps", "3", "--show", "2", "--max-words", "0", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pairs"] == 4 and len(report["examples"]) == 2
    assert all(len(example["points"]) == 3 for example in report["examples"])
    assert main(["interpolate", str(trained_text_run / "model.pt"), "--test-pairs", "4",
                 "--max-words", "1"]) == 2
    assert "fewer than two test sentences of at most 1 words" in capsys.readouterr().err


def test_interpolate_refuses_bad_requests(trained_text_run, trained_text_lm, capsys):
    ckpt = str(trained_text_run / "model.pt")
    assert main(["interpolate", ckpt, "only one"]) == 2
    assert main(["interpolate", ckpt, "a", "b", "--random"]) == 2
    assert main(["interpolate", ckpt, "a", "", "--steps", "3"]) == 2
    assert main(["interpolate", ckpt, "--random", "--steps", "1"]) == 2
    assert main(["interpolate", str(trained_text_lm / "model.pt"), "--random"]) == 2
    assert "without a latent" in capsys.readouterr().err


def test_evaluate_a_smiles_model(trained_smiles_run, tmp_path, capsys, molsets_stand_in):
    out = tmp_path / "new" / "folder" / "m.json"          # -o may name a folder not made yet
    assert main(["evaluate", str(trained_smiles_run / "model.pt"), "--n", "40", "-o", str(out)]) == 0
    table = capsys.readouterr().out
    assert "unique@10k" in table and "reconstruction" in table
    result = json.loads(out.read_text())["molecules"]
    assert result["samples"] == 40 and 0 <= result["valid"] <= 1
    assert (out.parent / "properties.png").stat().st_size > 0  # beside the JSON of -o
    assert main(["evaluate", str(trained_smiles_run / "model.pt"), "--metrics", "all", "--n", "20",
                 "--limit", "5", "--k", "2", "-o", str(out)]) == 0
    assert set(json.loads(out.read_text())) >= {"likelihood", "molecules"}


def test_evaluate_refuses_molecule_metrics_for_text(trained_text_run, capsys):
    assert main(["evaluate", str(trained_text_run / "model.pt"), "--metrics", "molecules"]) == 2
    assert "SMILES" in capsys.readouterr().err


def test_evaluate_text_reports_endpoint_recovery_and_interpolation_fluency(
        trained_text_run, trained_text_lm, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["evaluate", str(trained_text_run / "model.pt"), "--limit", "30", "--k", "2",
                 "--endpoint-pairs", "5", "--lm", str(trained_text_lm), "-o", str(out)]) == 0
    assert "endpoints recovered" in capsys.readouterr().out
    result = json.loads(out.read_text())["likelihood"]
    assert result["endpoint_pairs"] == 5 and 0.0 <= result["endpoint_recovery"] <= 1.0
    # 5 pairs x 5 points between the endpoints of a 7-point path, scored by the LM
    assert result["interpolation_sentences"] == 25
    assert 0.0 < result["interpolation_fluency"] < 20.0
    assert 0.0 <= result["interpolation_distinct"] <= 1.0
    assert result["interpolation_fluency_ratio"] == pytest.approx(
        result["interpolation_fluency"] / result["real_fluency"])
    assert 0.0 <= result["short_exact_match"] <= 1.0 and result["short_sentences"] >= 2
    # --lm-samples prior samples, scored by the same LM
    assert result["lm_samples"] == 500 and 0.0 < result["sample_distinct"] <= 1.0
    assert result["sample_fluency_ratio"] == pytest.approx(
        result["sample_fluency"] / result["real_fluency"])
    # a word-level model cannot spell a word it never saw: no invented-word rows
    assert "interpolation_invented_words" not in result


def test_evaluate_decodes_the_reconstructions_as_asked(trained_text_run, tmp_path, capsys):
    from seqvae import load
    from seqvae.text.evaluation import exact_reconstruction, short_texts
    out = tmp_path / "r.json"
    assert main(["evaluate", str(trained_text_run / "model.pt"), "--limit", "12", "--k", "1",
                 "--endpoint-pairs", "4", "--decode", "rerank", "--beam-size", "3",
                 "-o", str(out)]) == 0
    assert "rerank of 3" in capsys.readouterr().out
    result = json.loads(out.read_text())["likelihood"]
    assert result["decoding"] == "rerank of 3"
    vae = load(trained_text_run, device="cpu")
    short = short_texts(vae.corpus().texts["test"][:12], 15)
    assert result["short_exact_match"] == exact_reconstruction(vae, short, "rerank", 3)
    assert main(["evaluate", str(trained_text_run / "model.pt"), "--beam-size", "0"]) == 2


def test_interpolation_fluency_is_the_lm_nll_per_token(trained_text_run, trained_text_lm):
    from seqvae import load
    from seqvae.data import TokenizedSplit
    from seqvae.evaluation import evaluate_sequences
    from seqvae.text.evaluation import interpolation_fluency
    vae, lm = load(trained_text_run, device="cpu"), load(trained_text_lm, device="cpu")
    texts = ["the market fell", "he said it was fine", "prices rose", "the company said"]
    result = interpolation_fluency(vae, lm, texts, pairs=2, steps=3, seed=0)
    # each 3-point path has one sentence in the middle: score those two with the exact LM
    from seqvae.text.evaluation import random_pairs
    means = vae.encode([texts[i] for pair in random_pairs(4, 2, 0) for i in pair])
    middles = vae.decode((means[0::2] + means[1::2]) / 2)
    exact = evaluate_sequences(lm, TokenizedSplit.from_lists(lm.tokenizer.encode_batch(middles)),
                               k=1)
    assert result["sentences"] == 2
    assert result["nll_per_token"] == pytest.approx(exact["nll"] * 2 / exact["tokens"], rel=1e-4)


def test_interpolate_warns_when_the_codes_carry_little(trained_text_run, capsys):
    from seqvae import load
    kl = load(trained_text_run, device="cpu").recorded_kl
    assert main(["interpolate", str(trained_text_run), "the market fell", "he said"]) == 0
    warned = "warning: this model's codes carry only" in capsys.readouterr().err
    assert warned == (kl < 15)


def test_models_lists_the_shipped_models_and_prints_a_card(capsys):
    from seqvae.pretrained import models
    shipped = models()
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    for name, entry in shipped.items():
        assert any(line.split()[:1] == [name] and line.endswith(entry.description)
                   for line in listing.splitlines()) and entry.headline in listing
    name = sorted(shipped)[0]
    assert main(["models", "--card", name]) == 0
    assert capsys.readouterr().out.strip() == shipped[name].card().strip()
    assert main(["models", "--card", "no-such-model"]) == 2
    assert "shipped models are" in capsys.readouterr().err


def test_sample_valid_only_prints_distinct_valid_molecules(trained_smiles_run, capsys):
    rc = main(["sample", str(trained_smiles_run / "model.pt"), "-n", "3", "--seed", "0",
               "--valid-only"])
    captured = capsys.readouterr()
    printed = captured.out.split()
    assert "distinct valid molecules from" in captured.err
    assert len(set(printed)) == len(printed) and all(is_valid(s) for s in printed)
    # The tiny model may not find 3 within 300 draws; then it says so and fails.
    assert (rc, len(printed)) in ((0, 3), (1, 0), (1, 1), (1, 2))
    assert (rc == 1) == ("found only" in captured.err)


def test_sample_valid_only_refuses_a_text_model(trained_text_run, capsys):
    assert main(["sample", str(trained_text_run / "model.pt"), "--valid-only"]) == 2
    assert "--valid-only is for SMILES models" in capsys.readouterr().err


def test_only_the_commands_that_decode_take_no_constraints():
    parser = build_parser()
    for command in ("sample", "reconstruct", "evaluate", "interpolate", "optimize"):
        args = parser.parse_args([command, "moses", "--no-constraints"]
                                 + (["x.smi"] if command == "reconstruct" else [])
                                 + (["--objective", "qed"] if command == "optimize" else []))
        assert args.constrained is False
    for argv in (["encode", "moses", "x.smi", "-o", "z.npy"], ["fit-properties", "moses"]):
        parser.parse_args(argv)                 # fine as it is; refused with the flag
        with pytest.raises(SystemExit):
            parser.parse_args(argv + ["--no-constraints"])


def test_outputs_may_go_into_folders_not_made_yet(trained_smiles_run, tmp_path):
    smiles = tmp_path / "in.smi"
    smiles.write_text("CCO\nc1ccccc1\n")
    model = str(trained_smiles_run / "model.pt")
    codes = tmp_path / "a" / "z.npy"
    assert main(["encode", model, str(smiles), "-o", str(codes)]) == 0
    assert np.load(codes).shape[0] == 2
    samples = tmp_path / "b" / "samples.smi"
    assert main(["sample", model, "-n", "3", "-o", str(samples)]) == 0
    assert len(samples.read_text().splitlines()) == 3
