"""Device and precision choice: --precision auto takes bf16 only where the hardware has a fast
path for it."""
import json

import pytest
import torch
from helpers import tiny_config

from seqvae import devices
from seqvae.training import train


def _cpu_with(monkeypatch, amx: bool, avx512_bf16: bool) -> None:
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16,
                        raising=False)


@pytest.mark.parametrize("amx, avx512_bf16, expected", [
    (True, True, "bf16"), (True, False, "bf16"), (False, True, "bf16"), (False, False, "fp32")])
def test_auto_picks_bf16_where_the_cpu_has_a_fast_path(monkeypatch, amx, avx512_bf16, expected):
    _cpu_with(monkeypatch, amx, avx512_bf16)
    precision, why = devices.resolve_precision("auto", torch.device("cpu"))
    assert precision == expected
    assert why == {"bf16": f"this CPU has {'AMX' if amx else 'AVX512-BF16'}",
                   "fp32": "this CPU has neither AMX nor AVX512-BF16"}[expected]


def test_an_explicit_precision_is_kept(monkeypatch):
    _cpu_with(monkeypatch, amx=False, avx512_bf16=False)
    assert devices.resolve_precision("bf16", torch.device("cpu"))[0] == "bf16"
    _cpu_with(monkeypatch, amx=True, avx512_bf16=True)
    assert devices.resolve_precision("fp32", torch.device("cpu"))[0] == "fp32"


def test_training_says_what_auto_chose_in_the_log_summary_and_checkpoint(tmp_path, smiles_file,
                                                                         monkeypatch):
    _cpu_with(monkeypatch, amx=False, avx512_bf16=False)
    said = []
    summary = train(tiny_config(smiles_file, max_steps=2, precision="auto"), tmp_path / "run",
                    log=said.append, progress=False)
    assert any(m == "seqvae: precision auto: fp32 (this CPU has neither AMX nor AVX512-BF16)"
               for m in said)
    assert summary["precision"] == "fp32"
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["precision"] == "fp32"
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["precision"] == "fp32"
