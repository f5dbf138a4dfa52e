"""Figures people would rather look at than read: the training curves of a run."""
from __future__ import annotations

import csv
from pathlib import Path


def plot_training_curves(metrics_csv: str | Path, png: str | Path) -> Path:
    """Draw reconstruction, KL and the schedules from a run's metrics.csv into a PNG.

    Three panels share the step axis: reconstruction NLL per sequence (train and validation),
    KL per sequence (train and validation), and the KL weight and learning rate.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(open(metrics_csv, newline="")))
    def steps_of(split: str, key: str) -> tuple[list[float], list[float]]:
        pts = [(float(r["step"]), float(r[key])) for r in rows
               if r["split"] == split and r.get(key) not in ("", None)]
        return [p[0] for p in pts], [p[1] for p in pts]

    fig, axes = plt.subplots(3, 1, figsize=(7, 8), sharex=True)
    for ax, key, title in ((axes[0], "rec", "reconstruction NLL (nats / sequence)"),
                           (axes[1], "kl", "KL (nats / sequence)")):
        for split, style in (("train", "-"), ("valid", "o-")):
            x, y = steps_of(split, key)
            if x:
                ax.plot(x, y, style, label=split, markersize=4)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    x, beta = steps_of("train", "kl_weight")
    axes[2].plot(x, beta, color="tab:green", label="KL weight")
    axes[2].set_ylabel("KL weight")
    axes[2].grid(alpha=0.3)
    x, lr = steps_of("train", "lr")
    twin = axes[2].twinx()
    twin.plot(x, lr, color="tab:purple", label="learning rate")
    twin.set_ylabel("learning rate")
    axes[2].set_title("schedules (green: KL weight, purple: learning rate)", fontsize=10)
    axes[2].set_xlabel("optimiser step")
    fig.tight_layout()
    png = Path(png)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png
