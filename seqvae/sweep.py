"""The rate sweep: train one model per target rate, evaluate each on test data, and draw the
rate-distortion picture (Alemi et al. 2018).

Each point is an ordinary ``seqvae train`` run with ``--target-kl R`` and ``--threads 1``, at
most ``parallel`` at a time (two 1-thread runs use a 2-core machine well), followed by
``seqvae evaluate`` on the test split. Every step is a subprocess of the installed command, so
the sweep is exactly what a user would type; a point whose evaluation JSON exists is not run
again, so a killed sweep resumes where it stopped.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import SeqVAEError
from .logs import to_stderr
from .plots import plot_rate_distortion

# The columns of the sweep table, by corpus kind: (label, key in evaluate's JSON, format).
MOLECULE_COLUMNS = [
    ("target KL", "target_kl", "{:g}"), ("test KL", "kl", "{:.1f}"),
    ("distortion", "rec", "{:.2f}"), ("recon. greedy", "reconstruction", "{:.3f}"),
    ("recon. 10x10 sampled", "reconstruction_stochastic", "{:.3f}"),
    ("valid", "valid", "{:.3f}"), ("unique@10k", "unique@10k", "{:.3f}"),
    ("novelty", "novelty", "{:.3f}"), ("FCD/Test", "fcd/test", "{:.2f}"),
    ("IntDiv1", "intdiv1", "{:.3f}"), ("train min", "train_minutes", "{:.0f}")]
TEXT_COLUMNS = [
    ("target KL", "target_kl", "{:g}"), ("IW-NLL", "nll", "{:.2f}"), ("PPL", "perplexity", "{:.1f}"),
    ("KL", "kl", "{:.1f}"), ("distortion", "rec", "{:.2f}"), ("MI", "mutual_information", "{:.2f}"),
    ("AU", "active_units", "{}"), ("exact", "exact_match", "{:.3f}"), ("BLEU", "bleu", "{:.3f}"),
    ("endpoints", "endpoint_recovery", "{:.2f}"),
    ("interp. NLL/token (LM)", "interpolation_fluency", "{:.2f}"),
    ("train min", "train_minutes", "{:.0f}")]


def point_dir(out: Path, rate: float) -> Path:
    return out / f"kl{rate:g}"


def _run_all(commands: list[tuple[list[str], Path]], parallel: int,
             log: Callable[[str], None]) -> None:
    """Run (argv, log file) pairs, ``parallel`` at a time; raise if any fails."""
    pending, running = list(commands), []
    while pending or running:
        while pending and len(running) < parallel:
            argv, log_file = pending.pop(0)
            log(f"seqvae sweep: {' '.join(argv)}  (log: {log_file})")
            log_file.parent.mkdir(parents=True, exist_ok=True)
            handle = open(log_file, "a")
            # one thread each, so `parallel` runs share the cores instead of fighting for them
            env = {**os.environ, "OMP_NUM_THREADS": "1"} if parallel > 1 else None
            running.append((subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT,
                                             env=env), handle, log_file))
        time.sleep(2)
        for item in list(running):
            proc, handle, log_file = item
            if proc.poll() is None:
                continue
            handle.close()
            running.remove(item)
            if proc.returncode:
                for other, h, _ in running:
                    other.terminate()
                    h.close()
                raise SeqVAEError(f"seqvae sweep: a step failed (exit {proc.returncode}); "
                                  f"see {log_file}; run the sweep again to resume")


def run_sweep(out: str | Path, rates: Sequence[float], train_args: Sequence[str],
              evaluate_args: Sequence[str] = (), parallel: int = 2,
              log: Callable[[str], None] = to_stderr,
              compare: Sequence[str | Path] = ()) -> list[dict[str, Any]]:
    """Train and evaluate one model per rate; returns one row per rate and writes
    ``sweep.csv``, ``sweep.md`` and ``rate_distortion.png`` into ``out``.

    Args:
        train_args: ``seqvae train`` flags shared by every point (corpus, preset, steps...).
        evaluate_args: ``seqvae evaluate`` flags (e.g. ``--n 3000`` or ``--k 500``).
        compare: finished sweep folders drawn beside this one in the plot (e.g. the same
            sweep on SELFIES), each labelled with its folder name.
    """
    out = Path(out)
    seqvae = [sys.executable, "-m", "seqvae"]
    training = []
    for rate in rates:
        folder = point_dir(out, rate)
        if (folder / "summary.json").exists():
            continue
        resume = ["--resume"] if (folder / "last.pt").exists() else []
        training.append(([*seqvae, "train", *train_args, "--target-kl", f"{rate:g}",
                          "--threads", "1", "--out", str(folder), *resume],
                         folder / "train.log"))
    _run_all(training, parallel, log)
    evaluations = []
    for rate in rates:
        folder = point_dir(out, rate)
        if not (folder / "evaluation.json").exists():
            evaluations.append(([*seqvae, "evaluate", str(folder / "model.pt"), "--split", "test",
                                 *evaluate_args,
                                 "-o", str(folder / "evaluation.json")],
                                folder / "evaluate.log"))
    _run_all(evaluations, parallel, log)
    rows = [collect_point(point_dir(out, rate), rate) for rate in rates]
    write_tables(rows, out)
    series = {out.name: rows, **{Path(other).name: read_sweep(other) for other in compare}}
    plot_rate_distortion(series if compare else rows, out / "rate_distortion.png")
    return rows


def read_sweep(out: str | Path) -> list[dict[str, Any]]:
    """The rows of a finished sweep folder: every ``kl<R>`` point with an evaluation."""
    def rate_of(folder: Path) -> float | None:
        try:
            return float(folder.name[2:])
        except ValueError:  # a folder such as kl40-old is not a point
            return None

    points = {rate_of(p.parent): p.parent for p in Path(out).glob("kl*/evaluation.json")}
    points.pop(None, None)
    if not points:
        raise SeqVAEError(f"{out} holds no evaluated sweep points (kl<R>/evaluation.json); "
                          "run its seqvae sweep first")
    return [collect_point(points[rate], rate) for rate in sorted(points)]


def collect_point(folder: Path, rate: float) -> dict[str, Any]:
    """One row: the evaluation JSON of a point, its rate and its training time."""
    blob = json.loads((folder / "evaluation.json").read_text())
    row = {**blob.get("likelihood", {}), **blob.get("molecules", {})}
    summary = json.loads((folder / "summary.json").read_text())
    row.update(target_kl=rate, train_minutes=summary["train_seconds"] / 60,
               steps=summary["steps"])
    return row


def write_tables(rows: list[dict[str, Any]], out: Path) -> None:
    """``sweep.csv`` (every number) and ``sweep.md`` (the table for a results page)."""
    keys = sorted({k for row in rows for k, v in row.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)})
    with open(out / "sweep.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    (out / "sweep.md").write_text(format_table(rows) + "\n")


def format_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of the sweep, with the columns for the corpus kind."""
    columns = MOLECULE_COLUMNS if any("valid" in r for r in rows) else TEXT_COLUMNS
    columns = [c for c in columns if any(c[1] in r for r in rows)]
    lines = ["| " + " | ".join(label for label, _, _ in columns) + " |",
             "|" + "---|" * len(columns)]
    for row in rows:
        cells = [fmt.format(row[key]) if key in row and row[key] is not None else ""
                 for _, key, fmt in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
