"""A run killed with SIGKILL loses only the steps since its last save, and resumes exactly."""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from seqvae.checkpoint import read_checkpoint

STEP_COUNTER = Path(__file__).with_name("step_counter.py")

TINY = ["--batch-size", "128", "--embedding-dim", "16", "--encoder-hidden", "32",
        "--decoder-hidden", "32", "--latent-dim", "8", "--threads", "1", "--lr", "3e-3",
        "--kl-warmup-steps", "20", "--log-every", "2", "--samples", "0"]


def seqvae(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "seqvae", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def wait_for_step(path, step, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"training ended before it could be killed: {proc.stderr.read()}")
        try:
            if read_checkpoint(path)["train_state"]["step"] >= step:
                return
        except Exception:
            pass
        time.sleep(0.05)
    pytest.fail("no checkpoint appeared in time")


def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path, smiles_file):
    common = ["train", "--data", str(smiles_file), "--max-steps", "30", "--epochs", "5", *TINY]
    straight = seqvae(*common, "--out", str(tmp_path / "straight"))
    assert straight.wait(timeout=300) == 0, straight.stderr.read()

    killed = seqvae(*common, "--out", str(tmp_path / "killed"), "--save-every", "3")
    wait_for_step(tmp_path / "killed" / "last.pt", 7, killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    saved_at = read_checkpoint(tmp_path / "killed" / "last.pt")["train_state"]["step"]
    assert 6 <= saved_at < 30 and (saved_at % 3 == 0 or saved_at % 8 == 0)  # a save point
    metrics = tmp_path / "killed" / "metrics.csv"
    before = [r for r in csv.DictReader(open(metrics)) if int(r["step"]) <= saved_at]

    # the resumed run, with its optimiser steps counted
    counter = tmp_path / "steps"
    resumed = subprocess.Popen([sys.executable, str(STEP_COUNTER), str(counter), "train", "--out",
                                str(tmp_path / "killed"), "--resume"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert int((tmp_path / "steps.0").read_text()) == 30 - saved_at   # only the remaining steps
    a = read_checkpoint(tmp_path / "straight" / "last.pt")
    b = read_checkpoint(tmp_path / "killed" / "last.pt")
    assert a["train_state"]["step"] == b["train_state"]["step"] == 30
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    # the metrics hold each logged step once, as if the run had never been killed; the rows up
    # to the save point are the killed run's own (their timings would differ if rewritten),
    # and the first row the resumed run added is the first logged step after the save point
    rows = list(csv.DictReader(open(metrics)))
    steps = [int(r["step"]) for r in rows if r["split"] == "train"]
    assert steps == list(range(2, 31, 2))
    assert rows[:len(before)] == before
    first_new = next(r for r in rows[len(before):] if r["split"] == "train")
    assert int(first_new["step"]) == saved_at + 2 - saved_at % 2


# Saves the same checkpoint over and over; torch.save is slowed to a crawl (a slow disk), so
# that a kill almost surely lands in the middle of writing the file.
SAVER = r"""
import io, sys, time, torch
from seqvae.checkpoint import save_checkpoint
from seqvae.config import Config
from seqvae.model import SeqVAE
from seqvae.tokenizers import TokenizerConfig, fit_tokenizer
real_save = torch.save
def slow_save(obj, fh):
    buf = io.BytesIO()
    real_save(obj, buf)
    data = buf.getvalue()
    for i in range(0, len(data), 1 << 16):
        fh.write(data[i:i + (1 << 16)])
        fh.flush()
        time.sleep(0.004)
torch.save = slow_save
config = Config()
tok = fit_tokenizer(TokenizerConfig(), ["CCO", "c1ccccc1"], "smiles")
model = SeqVAE(config.model, tok.vocab_size)
i = 0
while True:
    with torch.no_grad():
        model.to_mu.bias.fill_(i)
    save_checkpoint(sys.argv[1], config, tok, model, train_state={"step": i})
    i += 1
    print(i, flush=True)
"""


def test_kill_9_during_saves_leaves_a_whole_checkpoint(tmp_path):
    path = tmp_path / "model.pt"
    for delay in (0.05, 0.15, 0.25):
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(path)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        first = proc.stdout.readline()  # one complete save exists; the next one is under way
        assert first.strip(), proc.stderr.read()
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        blob = read_checkpoint(path)  # loads: never a half-written file
        step = blob["train_state"]["step"]
        assert torch.all(blob["model"]["to_mu.bias"] == step)
