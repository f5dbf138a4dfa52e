import json

import pytest

from seqvae.bench import _gru_flops, bench, flops_per_token, matmul_peak_gflops
from seqvae.checkpoint import resolve_device
from seqvae.cli import format_bench
from seqvae.config import Config, preset

from helpers import tiny_config


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
