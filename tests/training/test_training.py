import csv
import json
import math

import pytest
import torch
from helpers import tiny_config
from torch.optim.optimizer import register_optimizer_step_post_hook

from seqvae.checkpoint import load_checkpoint
from seqvae.errors import SeqVAEError
from seqvae.training import evaluate_elbo, train


def quiet(_):
    pass


def test_a_run_writes_its_folder_and_learns(tmp_path, smiles_file):
    summary = train(tiny_config(smiles_file, max_steps=24), tmp_path, log=quiet, progress=False)
    for name in ("model.pt", "last.pt", "metrics.csv", "training.png", "config.json",
                 "summary.json"):
        assert (tmp_path / name).exists(), name
    assert summary["steps"] == 24
    # the last validation fell on the last step (an epoch end) and is still reported
    assert summary["final_valid"]["step"] == 24 and summary["final_valid"]["n"] == 50
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    train_rows = [r for r in rows if r["split"] == "train"]
    valid_rows = [r for r in rows if r["split"] == "valid"]
    assert len(train_rows) == 12 and len(valid_rows) >= 3  # every 2 steps; 3 epochs of 8
    for key in ("rec", "kl", "kl_weight", "lr", "tokens_per_s"):
        assert float(train_rows[-1][key]) >= 0
    assert float(train_rows[-1]["rec"]) < float(train_rows[0]["rec"]) - 10
    assert json.loads((tmp_path / "config.json").read_text())["data"]["kind"] == "smiles"


def test_best_checkpoint_is_kept_by_validation_elbo(tmp_path, smiles_file):
    train(tiny_config(smiles_file, max_steps=24), tmp_path, log=quiet, progress=False)
    rows = [r for r in csv.DictReader(open(tmp_path / "metrics.csv")) if r["split"] == "valid"]
    best = max(rows, key=lambda r: float(r["elbo"]))
    assert load_checkpoint(tmp_path / "model.pt").blob["train_state"]["step"] == int(best["step"])


def test_same_seed_same_run(tmp_path, smiles_file):
    config = tiny_config(smiles_file, max_steps=6)
    train(config, tmp_path / "a", log=quiet, progress=False)
    train(config, tmp_path / "b", log=quiet, progress=False)
    a = load_checkpoint(tmp_path / "a" / "last.pt").model.state_dict()
    b = load_checkpoint(tmp_path / "b" / "last.pt").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_continues_exactly(tmp_path, smiles_file):
    # 8 steps per epoch: the interrupted run stops mid-epoch 0, the resumed one crosses
    # into epoch 1; both must end with bit-identical weights and optimiser state.
    full = tiny_config(smiles_file, max_steps=12, epochs=2)
    train(full, tmp_path / "straight", log=quiet, progress=False)
    train(full.override("train", max_steps=5), tmp_path / "resumed", log=quiet, progress=False)
    metrics = tmp_path / "resumed" / "metrics.csv"
    before = list(csv.DictReader(open(metrics)))
    assert [int(r["step"]) for r in before if r["split"] == "train"] == [2, 4, 5]
    steps = []
    hook = register_optimizer_step_post_hook(lambda *_: steps.append(1))
    try:
        train(full, tmp_path / "resumed", resume=True, log=quiet, progress=False)
    finally:
        hook.remove()
    assert len(steps) == 7                        # only the remaining steps 6..12 were taken
    rows = list(csv.DictReader(open(metrics)))
    assert rows[:len(before)] == before           # the first run's rows, untouched
    added = [int(r["step"]) for r in rows[len(before):] if r["split"] == "train"]
    assert added == [6, 8, 10, 12]                # first logged step after resuming: 6
    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "resumed" / "last.pt")
    assert a.blob["train_state"]["step"] == b.blob["train_state"]["step"] == 12
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    ea = a.blob["optimizer"]["state"]
    eb = b.blob["optimizer"]["state"]
    assert all(torch.equal(ea[k]["exp_avg"], eb[k]["exp_avg"]) for k in ea)


def test_resume_needs_a_previous_run(tmp_path, smiles_file):
    with pytest.raises(SeqVAEError, match="last.pt"):
        train(tiny_config(smiles_file), tmp_path, resume=True, log=quiet, progress=False)


def test_resume_refuses_a_different_architecture(tmp_path, smiles_file):
    config = tiny_config(smiles_file, max_steps=2)
    train(config, tmp_path, log=quiet, progress=False)
    changed = config.override("model", decoder_hidden=48)
    with pytest.raises(SeqVAEError, match="model settings"):
        train(changed, tmp_path, resume=True, log=quiet, progress=False)


def test_early_stopping(tmp_path, smiles_file):
    # lr 0 can never improve on the first validation, so patience 2 stops after 3 validations
    config = tiny_config(smiles_file, epochs=50, lr=0.0, early_stopping=2, val_every=2)
    summary = train(config, tmp_path, log=quiet, progress=False)
    assert summary["steps"] == 6


def test_evaluate_elbo_is_reproducible_and_leaves_rng_alone(tmp_path, smiles_file):
    train(tiny_config(smiles_file, max_steps=4), tmp_path, log=quiet, progress=False)
    from seqvae.data import prepare_data
    config = load_checkpoint(tmp_path / "model.pt").config
    model = load_checkpoint(tmp_path / "model.pt").model
    split = prepare_data(config.data, config.tokenizer, log=quiet).splits["valid"]
    torch.manual_seed(123)
    before = torch.get_rng_state()
    r1 = evaluate_elbo(model, split, batch_size=16)
    assert torch.equal(before, torch.get_rng_state())
    r2 = evaluate_elbo(model, split, batch_size=16)
    assert r1 == r2
    assert r1["elbo"] == pytest.approx(-(r1["rec"] + r1["kl"]))
    assert r1["n"] == len(split)


@pytest.mark.parametrize("tokenizer", ["word", "sentencepiece"])
def test_text_training_with_the_ptb_preset_settings(tmp_path, text_file, tokenizer):
    from seqvae.config import preset
    config = preset("ptb").override("data", source=str(text_file))
    config = config.override("tokenizer", kind=tokenizer, vocab_size=500)
    config = config.override("model", embedding_dim=16, encoder_hidden=16, decoder_hidden=24)
    config = config.override("train", max_steps=4, log_every=2, threads=1, max_val_examples=50)
    summary = train(config, tmp_path, log=quiet, progress=False)
    loaded = load_checkpoint(tmp_path / "model.pt")
    assert summary["kind"] == "text" and loaded.tokenizer.kind == tokenizer
    assert loaded.config.model.bidirectional and loaded.config.objective.kl_schedule == "logistic"
    rows = [r for r in csv.DictReader(open(tmp_path / "metrics.csv")) if r["split"] == "train"]
    assert 0 < float(rows[-1]["kl_weight"]) < 0.01  # logistic warm-up just started


def _poison_losses(monkeypatch, bad_calls):
    """Make the training loss NaN on the given (0-based) calls."""
    import dataclasses

    import seqvae.training.step as step
    real, calls = step.training_loss, {"n": 0}

    def poisoned(*args, **kwargs):
        terms = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] - 1 in bad_calls:
            terms = dataclasses.replace(terms, loss=terms.loss * float("nan"))
        return terms
    monkeypatch.setattr(step, "training_loss", poisoned)


def test_a_non_finite_step_is_skipped_and_counted(tmp_path, smiles_file, monkeypatch):
    _poison_losses(monkeypatch, {1, 2})
    summary = train(tiny_config(smiles_file, max_steps=5), tmp_path, log=quiet, progress=False)
    assert summary["skipped_steps"] == 2 and summary["steps"] == 5
    weights = load_checkpoint(tmp_path / "last.pt").model.state_dict()
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_repeated_non_finite_steps_stop_with_a_message(tmp_path, smiles_file, monkeypatch):
    _poison_losses(monkeypatch, set(range(1000)))
    with pytest.raises(SeqVAEError, match="non-finite steps in a row"):
        train(tiny_config(smiles_file, epochs=10), tmp_path, log=quiet, progress=False)


def test_bf16_training_follows_fp32(tmp_path, smiles_file):
    fp32 = train(tiny_config(smiles_file, max_steps=16), tmp_path / "fp32", log=quiet, progress=False)
    bf16 = train(tiny_config(smiles_file, max_steps=16, precision="bf16"), tmp_path / "bf16",
                 log=quiet, progress=False)
    assert bf16["best_valid_elbo"] == pytest.approx(fp32["best_valid_elbo"], rel=0.03)
    assert bf16["best_valid_elbo"] != fp32["best_valid_elbo"]  # bf16 really was used
    weights = load_checkpoint(tmp_path / "bf16" / "model.pt").model.state_dict()
    assert all(w.dtype == torch.float32 for w in weights.values())  # fp32 master weights


def test_training_with_randomized_smiles(tmp_path, smiles_file):
    from helpers import tiny_config
    config = tiny_config(smiles_file, max_steps=4).override("data", augment=True)
    summary = train(config, tmp_path / "aug", log=lambda _: None, progress=False)
    assert summary["steps"] == 4 and math.isfinite(summary["best_valid_elbo"])


def test_augmenting_text_is_refused(tmp_path, text_file):
    from helpers import tiny_config
    config = tiny_config(text_file, max_steps=2).override("data", augment=True)
    with pytest.raises(SeqVAEError, match="augment"):
        train(config, tmp_path / "t", log=lambda _: None, progress=False)


def test_span_augmentation_trains_on_spans_and_is_refused_for_smiles(tmp_path, text_file,
                                                                     smiles_file, monkeypatch):
    from helpers import tiny_config

    import seqvae.training.run as run_module
    seen = []

    def recording(seqs, share, starts, rng):
        out = random_spans(seqs, share, starts, rng)
        seen.append((share, sum(list(a) != list(b) for a, b in zip(seqs, out))))
        return out
    from seqvae.text.spans import random_spans
    monkeypatch.setattr(run_module, "random_spans", recording)
    config = tiny_config(text_file, max_steps=3).override("data", span_augment=1.0)
    train(config, tmp_path / "spans", log=lambda _: None, progress=False)
    assert len(seen) == 3 and all(share == 1.0 for share, _ in seen)
    assert sum(changed for _, changed in seen) > 0        # some sentences became spans
    config = tiny_config(smiles_file, max_steps=2).override("data", span_augment=0.5)
    with pytest.raises(SeqVAEError, match="span"):
        train(config, tmp_path / "s", log=lambda _: None, progress=False)


def test_autoencoder_pretraining_then_decoder_reset(tmp_path, smiles_file):
    from helpers import tiny_config
    config = tiny_config(smiles_file, max_steps=8).override("objective", ae_pretrain_steps=4)
    lines = []
    train(config, tmp_path / "ae", log=lines.append, progress=False)
    assert any("decoder reset" in line for line in lines)
    rows = [r for r in csv.DictReader(open(tmp_path / "ae" / "metrics.csv")) if r["split"] == "train"]
    betas = {int(r["step"]): float(r["kl_weight"]) for r in rows}
    assert betas[2] == betas[4] == 0.0            # logged after steps 0..3: the AE phase
    assert betas[6] > 0


def test_reset_decoder_keeps_the_encoder():
    from seqvae.config import ModelConfig
    from seqvae.model import SeqVAE
    model = SeqVAE(ModelConfig(embedding_dim=8, encoder_hidden=8, latent_dim=4, decoder_hidden=8), 12)
    encoder = {k: v.clone() for k, v in model.state_dict().items()
               if k.startswith(("encoder", "to_mu", "embedding"))}
    decoder = model.decoder.weight_hh_l0.clone()
    model.reset_decoder()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in encoder.items())
    assert not torch.equal(decoder, model.decoder.weight_hh_l0)


def test_target_kl_of_zero_is_the_plain_objective(tmp_path, smiles_file):
    # target 0: the controller's settings change nothing, bit for bit, and it keeps no state
    config = tiny_config(smiles_file, max_steps=16)
    train(config, tmp_path / "plain", log=quiet, progress=False)
    train(config.override("objective", target_kl=0.0, target_kl_lr=0.5, target_kl_kp=3.0,
                          target_kl_min_weight=-2.0, target_kl_probe_every=1),
          tmp_path / "zero", log=quiet, progress=False)
    plain = load_checkpoint(tmp_path / "plain" / "last.pt")
    zero = load_checkpoint(tmp_path / "zero" / "last.pt")
    for name, weight in plain.model.state_dict().items():
        assert torch.equal(weight, zero.model.state_dict()[name]), name
    state = zero.blob["train_state"]
    assert state["rate_weight"] is None and state["rate_integral"] is None


def test_a_resumed_target_kl_run_continues_the_controller(tmp_path, smiles_file):
    config = tiny_config(smiles_file, max_steps=12, save_every=6).override(
        "objective", kl_schedule="constant", target_kl=8.0, target_kl_probe_every=2)
    train(config, tmp_path / "whole", log=quiet, progress=False)
    train(config.override("train", max_steps=6), tmp_path / "half", log=quiet, progress=False)
    train(config, tmp_path / "half", resume=True, log=quiet, progress=False)
    whole = load_checkpoint(tmp_path / "whole" / "last.pt")
    resumed = load_checkpoint(tmp_path / "half" / "last.pt")
    for key in ("rate_weight", "rate_integral", "probe_kl"):
        assert resumed.blob["train_state"][key] == whole.blob["train_state"][key], key
    for name, weight in whole.model.state_dict().items():
        assert torch.equal(weight, resumed.model.state_dict()[name]), name


def test_training_rows_go_through_the_log_and_never_to_stdout(tmp_path, smiles_file, capsys):
    said = []
    train(tiny_config(smiles_file, max_steps=4, log_every=2), tmp_path / "run", log=said.append,
          progress=True)                      # with a bar: it goes to stderr
    assert capsys.readouterr().out == ""
    assert sum(m.startswith("train  step") for m in said) == 2


def test_library_messages_go_to_stderr_by_default(tmp_path, smiles_file, capsys):
    from seqvae.config import DataConfig
    from seqvae.corpora import load_corpus
    train(tiny_config(smiles_file, max_steps=2), tmp_path / "run", progress=False)
    load_corpus(DataConfig(source=str(smiles_file)))
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "train  step" in captured.err and "seqvae: corpus" in captured.err


def test_encoder_noise_corrupts_what_the_encoder_reads_not_what_is_scored():
    # Denoising (Shen et al. 2020): the encoder reads <unk> where the step's draw falls below
    # the rate, never at <bos>, <eos> or padding; the decoder still reconstructs the clean row.
    from seqvae.config import Config, ModelConfig
    from seqvae.data import Batch
    from seqvae.model import SeqVAE
    from seqvae.tokenizers import BOS_ID, EOS_ID, UNK_ID
    from seqvae.training.step import train_step
    torch.manual_seed(0)
    model = SeqVAE(ModelConfig(embedding_dim=8, encoder_hidden=8, latent_dim=4,
                               decoder_hidden=8), 12, pad_id=0)
    tokens = torch.tensor([[BOS_ID, 5, 6, 7, 8, EOS_ID], [BOS_ID, 9, 10, EOS_ID, 0, 0]])
    lengths = torch.tensor([6, 4])
    draws = torch.ones(2, 6)
    draws[0, [0, 2, 5]] = 0.1          # <bos>, the token 6 and <eos>: only 6 is replaced
    draws[1, [1, 4]] = 0.1             # the token 9 and a padding position: only 9 is
    noise = torch.randn(2, 4)
    config = Config().override("objective", encoder_noise=0.5, target_kl=0.0)
    config = config.override("train", precision="fp32")
    batch = Batch(tokens, lengths, noise=noise, uniforms=torch.ones(2, 5),
                  encoder_uniforms=draws)
    terms, finite = train_step(model, model, batch, 0, config, total_steps=10)
    corrupted = tokens.clone()
    corrupted[0, 2] = corrupted[1, 1] = UNK_ID
    with torch.no_grad():
        expected = model(tokens, lengths, noise=noise, encoder_tokens=corrupted).rec
        clean = model(tokens, lengths, noise=noise).rec
    assert finite
    assert torch.allclose(terms.rec, expected)
    assert not torch.allclose(terms.rec, clean)     # the corruption reached the encoder
    # rate 0 reads the clean row, whatever the draws
    terms, _ = train_step(model, model, batch, 0,
                          config.override("objective", encoder_noise=0.0), total_steps=10)
    with torch.no_grad():
        assert torch.allclose(terms.rec, model(tokens, lengths, noise=noise).rec)


def test_the_bag_of_words_loss_is_in_the_training_log(tmp_path, text_file):
    config = tiny_config(text_file, max_steps=2, log_every=1).override("model", bag_of_words=8)
    lines = []
    train(config, tmp_path, log=lines.append, progress=False)
    rows = [line for line in lines if line.startswith("train  step")]
    assert len(rows) == 2 and all("  bow " in row for row in rows)
    plain = []
    train(tiny_config(text_file, max_steps=1, log_every=1), tmp_path / "plain", log=plain.append,
          progress=False)
    assert not any("  bow " in line for line in plain)
