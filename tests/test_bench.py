import json

import pytest
from helpers import tiny_config

from seqvae.bench import _gru_flops, bench, flops_per_token, matmul_peak_gflops
from seqvae.cli.report import format_bench
from seqvae.config import preset
from seqvae.devices import resolve_device


def test_gru_flops_by_hand():
    # one layer, input 10, hidden 4: 3 gates x (10 + 4) x 4 multiply-adds = 168 MACs = 336 FLOPs
    assert _gru_flops(10, 4, 1) == 336
    # second layer takes the first's output (4); bidirectional doubles each layer and the input
    assert _gru_flops(10, 4, 2) == 336 + 6 * 4 * 8
    assert _gru_flops(10, 4, 2, directions=2) == 2 * 336 + 2 * 6 * 4 * (8 + 4)


def test_flops_per_token_of_the_moses_preset():
    config = preset("moses")
    enc, dec = flops_per_token(config, vocab_size=30)
    assert enc == 6 * 256 * (30 + 256)                         # embedding = vocabulary size
    assert dec == 6 * 512 * (30 + 128 + 512) + 2 * 6 * 512 * 1024 + 2 * 512 * 30


def test_a_language_model_has_no_encoder_flops():
    config = preset("ptb").override("model", latent_dim=0, tie_weights=True)
    enc, dec = flops_per_token(config, vocab_size=100)
    assert enc == 0
    # decoder GRU on the embedding alone, then hidden -> embedding -> vocabulary (tied)
    assert dec == 6 * 256 * (256 + 256) + 2 * 256 * 256 + 2 * 256 * 100


def test_matmul_peak_is_positive():
    assert matmul_peak_gflops(n=256, seconds=0.2) > 0.1


def test_bench_reports_every_figure(smiles_file):
    result = bench(tiny_config(smiles_file), resolve_device("cpu"), steps=2, warmup=1,
                   n_sample=20, n_encode=30, log=lambda _: None)
    for key in ("train_tok_per_s", "train_mol_per_s", "sample_mol_per_s", "encode_mol_per_s",
                "train_gflop_per_s", "matmul_peak_gflop_per_s", "fraction_of_peak", "peak_rss_mb"):
        assert result[key] > 0, key
    assert result["fraction_of_peak"] == pytest.approx(
        result["train_gflop_per_s"] / result["matmul_peak_gflop_per_s"], abs=2e-3)
    json.dumps(result)
    table = format_bench({"seqvae": result, "peer": {"train_tok_per_s": result["train_tok_per_s"] / 2}})
    assert "2.00x" in table


def test_bench_command_with_a_peer(tmp_path, smiles_file, capsys):
    from seqvae.cli import main
    peer = tmp_path / "peer.sh"
    peer.write_text('echo "setting up" >&2\n'
                    'echo \'{"peer": "fake", "train_tok_per_s": 10.0, "sample_mol_per_s": 2.0}\'\n')
    out = tmp_path / "bench.json"
    rc = main(["bench", "--preset", "cpu-small", "--data", str(smiles_file), "--steps", "1",
               "--warmup", "1", "--n-sample", "8", "--n-encode", "16", "--batch-size", "64",
               "--decoder-hidden", "32", "--encoder-hidden", "32", "--threads", "1",
               "--peer", str(peer), "--json", str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    assert result["peer"]["peer"] == "fake" and result["seqvae"]["train_tok_per_s"] > 0
    table = capsys.readouterr().out
    ratio = result["seqvae"]["train_tok_per_s"] / 10.0
    assert f"{ratio:.2f}x" in table


def test_a_failing_peer_is_one_clear_error(tmp_path):
    from seqvae.bench import run_peer
    from seqvae.errors import SeqVAEError
    peer = tmp_path / "peer.sh"
    peer.write_text('echo "no moses here" >&2\nexit 3\n')
    with pytest.raises(SeqVAEError, match="no moses here"):
        run_peer(peer, batch=8, steps=1, n_sample=1, log=lambda _: None)


def test_bench_skips_sampling_and_encoding_when_asked(smiles_file):
    result = bench(tiny_config(smiles_file), resolve_device("cpu"), steps=1, warmup=0,
                   n_sample=0, n_encode=0, log=lambda _: None)
    assert result["train_tok_per_s"] > 0
    assert result["sample_mol_per_s"] is None and result["sample_mean_length"] is None
    assert result["encode_mol_per_s"] is None
    rows = {line[:26].strip(): line[26:].strip() for line in format_bench({"seqvae": result}).splitlines()}
    assert rows["sampling molecules/s"] == "-" and rows["encoding molecules/s"] == "-"


@pytest.mark.parametrize("flag, value", [("--steps", "0"), ("--n-sample", "-1"),
                                         ("--n-encode", "-5")])
def test_bench_command_rejects_impossible_counts(smiles_file, capsys, flag, value):
    from seqvae.cli import main
    rc = main(["bench", "--preset", "cpu-small", "--data", str(smiles_file), flag, value])
    assert rc != 0
    assert f"{flag} must be at least" in capsys.readouterr().err


def test_both_precisions_side_by_side(tmp_path, smiles_file, capsys):
    from seqvae.cli import main
    out = tmp_path / "bench.json"
    rc = main(["bench", "--preset", "cpu-small", "--data", str(smiles_file), "--steps", "1",
               "--warmup", "1", "--n-sample", "8", "--n-encode", "16", "--batch-size", "64",
               "--decoder-hidden", "32", "--encoder-hidden", "32", "--threads", "1",
               "--both-precisions", "--json", str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    assert (result["seqvae"]["precision"], result["seqvae_bf16"]["precision"]) == ("fp32", "bf16")
    table = capsys.readouterr().out
    assert "seqvae fp32" in table and "seqvae bf16" in table and "bf16/fp32" in table
    ratio = result["seqvae_bf16"]["train_tok_per_s"] / result["seqvae"]["train_tok_per_s"]
    assert f"{ratio:.2f}x" in table


def test_median_of_runs_takes_each_figures_median_and_each_pairs_ratio():
    from seqvae.bench import median_of_runs
    base = {"device": "cpu", "threads": 2, "torch": "2", "corpus": "c", "tokenizer": "char",
            "batch_size": 8, "sample_mol_per_s": None}
    runs = [{"seqvae": {**base, "train_tok_per_s": ours}, "peer": {"train_tok_per_s": peer}}
            for ours, peer in ((300.0, 100.0), (200.0, 50.0), (330.0, 110.0))]
    merged = median_of_runs(runs)
    assert merged["seqvae"]["train_tok_per_s"] == 300.0 and merged["peer"]["train_tok_per_s"] == 100.0
    assert merged["seqvae"]["device"] == "cpu" and merged["seqvae"]["sample_mol_per_s"] is None
    assert merged["pair_ratios"] == [3.0, 4.0, 3.0] and merged["runs"] == runs
    table = format_bench(merged)
    assert "medians of 3 runs" in table and "3.00x 4.00x 3.00x (median 3.00x)" in table


def test_bench_command_repeats_seqvae_and_the_peer_in_turn(tmp_path, smiles_file, capsys):
    from seqvae.cli import main
    peer = tmp_path / "peer.sh"
    peer.write_text('echo \'{"peer": "fake", "train_tok_per_s": 10.0}\'\n')
    out = tmp_path / "bench.json"
    rc = main(["bench", "--preset", "cpu-small", "--data", str(smiles_file), "--steps", "1",
               "--warmup", "0", "--n-sample", "0", "--n-encode", "0", "--batch-size", "64",
               "--decoder-hidden", "32", "--encoder-hidden", "32", "--threads", "1",
               "--peer", str(peer), "--repeats", "2", "--json", str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    assert len(result["runs"]) == 2 and len(result["pair_ratios"]) == 2
    assert "run by run" in capsys.readouterr().out
