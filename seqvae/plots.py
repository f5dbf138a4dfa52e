"""Figures people would rather look at than read: training curves, property distributions."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # no pyplot: leaves the caller's backend alone


def plot_training_curves(metrics_csv: str | Path, png: str | Path) -> Path:
    """Draw reconstruction, KL and the schedules from a run's metrics.csv into a PNG.

    Three panels share the step axis: reconstruction NLL per sequence (train and validation),
    KL per sequence (train and validation), and the KL weight and learning rate.
    """

    rows = list(csv.DictReader(open(metrics_csv, newline="")))
    def steps_of(split: str, key: str) -> tuple[list[float], list[float]]:
        pts = [(float(r["step"]), float(r[key])) for r in rows
               if r["split"] == split and r.get(key) not in ("", None)]
        return [p[0] for p in pts], [p[1] for p in pts]

    fig = Figure(figsize=(7, 8))
    axes = fig.subplots(3, 1, sharex=True)
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
    x, weight = steps_of("train", "rate_weight")
    if x:  # --target-kl: the KL enters the loss with the controller's weight, at most beta
        axes[2].plot(x, weight, color="tab:orange", label="--target-kl weight")
    axes[2].set_ylabel("KL weight")
    axes[2].grid(alpha=0.3)
    x, lr = steps_of("train", "lr")
    twin = axes[2].twinx()
    twin.plot(x, lr, color="tab:purple", label="learning rate")
    twin.set_ylabel("learning rate")
    axes[2].set_title("schedules (green: KL weight, orange: --target-kl weight, "
                      "purple: learning rate)", fontsize=10)
    axes[2].set_xlabel("optimiser step")
    return save(fig, png)


def save(fig: Figure, png: str | Path | None) -> Path | None:
    """Lay a figure out and write it as a PNG (nothing when ``png`` is None)."""
    fig.tight_layout()
    if png is None:
        return None
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(Path(png), dpi=110)
    return Path(png)


PROPERTY_LABELS = {"logp": "logP (Crippen)", "qed": "QED", "sa": "SA score",
                   "mw": "molecular weight (Da)"}


def plot_property_distributions(sets: dict[str, dict[str, "np.ndarray"]], png: str | Path) -> Path:
    """Histograms of molecular properties, one panel per property, one curve per named set
    (e.g. {"samples": {...}, "test": {...}}, each {property: values})."""

    fig = Figure(figsize=(8, 6))
    axes = fig.subplots(2, 2)
    for ax, (name, label) in zip(axes.flat, PROPERTY_LABELS.items()):
        values = [v[name] for v in sets.values() if len(v.get(name, []))]
        if values:
            lo, hi = np.percentile(np.concatenate(values), [0.5, 99.5])
            bins = np.linspace(lo, hi if hi > lo else lo + 1, 50)
            for set_name, table in sets.items():
                if len(table.get(name, [])):
                    ax.hist(table[name], bins=bins, density=True, histtype="step", linewidth=1.5,
                            label=f"{set_name} (n={len(table[name]):,})")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save(fig, png)


def plot_optimization_trajectory(result, start: str, png: str | Path | None = None):
    """True (RDKit, valid decodes) and predicted (property head) values along one start's
    optimisation path; returns the matplotlib figure (and writes ``png`` when given)."""

    rows = [r for r in result.rows if r["start"] == start]
    steps = sorted({r["step"] for r in rows})
    predicted = [next(r["predicted_property"] for r in rows if r["step"] == s) for s in steps]
    valid = [r for r in rows if r["valid"]]
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.plot(steps, predicted, "-", color="tab:blue", label="predicted by the property head")
    ax.scatter([r["step"] for r in valid], [r["true_property"] for r in valid], s=14,
               color="tab:orange", alpha=0.7, label="true (RDKit) of valid decodes")
    ax.set_xlabel("gradient step")
    ax.set_ylabel(result.objective)
    ax.set_title(f"{result.objective} along the latent path from {start}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, png)
    return fig


def plot_rate_distortion(series: list[dict] | dict[str, list[dict]], png: str | Path) -> Path:
    """The rate-distortion picture of a sweep (Alemi et al. 2018), against the rate (the test
    KL, nats) on every panel: the distortion (test reconstruction NLL, nats), each point
    labelled with its target; how well the codes carry their inputs (greedy and sampled
    reconstruction of molecules, or exact match, BLEU and endpoint recovery of sentences); and
    for molecules what the rate costs the prior's samples (valid share and FCD/Test).

    ``series`` is one sweep's rows (``seqvae.sweep.collect_point``), or several sweeps by label
    (e.g. SMILES and SELFIES), drawn in one colour each."""

    if not isinstance(series, dict):
        series = {"": series}
    molecules = any("valid" in row for rows in series.values() for row in rows)
    fig = Figure(figsize=(15 if molecules else 10, 4.2))
    axes = fig.subplots(1, 3 if molecules else 2)
    carry = ([("reconstruction", "greedy", "o-"),
              ("reconstruction_stochastic", "10 z x 10 sampled", "s--")]
             if molecules else [("exact_match", "exact match", "o-"), ("bleu", "BLEU-4", "s--"),
                                ("endpoint_recovery", "endpoints", "^:")])
    fcd_axis = axes[2].twinx() if molecules else None
    for colour, (name, rows) in enumerate(series.items()):
        rows = sorted(rows, key=lambda r: r.get("kl", 0.0))
        rate = [r.get("kl", float("nan")) for r in rows]
        c = f"C{colour}"
        prefix = f"{name}: " if name else ""
        distortion = [r.get("rec", float("nan")) for r in rows]
        axes[0].plot(rate, distortion, "o-", color=c, label=name or None)
        for x, y, r in zip(rate, distortion, rows):
            if not np.isnan(y):  # NaN: a point evaluated without the likelihood block
                axes[0].annotate(f"{r['target_kl']:g}", (x, y), textcoords="offset points",
                                 xytext=(4, 4), fontsize=8, color=c)
        for key, label, style in carry:
            values = [r.get(key) for r in rows]
            if any(v is not None for v in values):
                axes[1].plot(rate, [float("nan") if v is None else v for v in values], style,
                             color=c, label=prefix + label)
        if molecules:
            axes[2].plot(rate, [r.get("valid", float("nan")) for r in rows], "o-", color=c,
                         label=prefix + "valid")
            fcd_axis.plot(rate, [r.get("fcd/test", float("nan")) for r in rows], "x--", color=c,
                          label=prefix + "FCD/Test")
    axes[0].set_ylabel("distortion: test reconstruction NLL (nats)")
    axes[0].set_title("rate against distortion (labels: target KL)", fontsize=10)
    if len(series) > 1:
        axes[0].legend(fontsize=8)
    axes[1].set_ylabel("share of test inputs")
    axes[1].set_ylim(0, 1)
    axes[1].set_title("do the codes carry their inputs?", fontsize=10)
    axes[1].legend(fontsize=8)
    if molecules:
        axes[2].set_ylabel("share of valid prior samples (o)")
        fcd_axis.set_ylabel("FCD/Test, lower is better (x)")
        axes[2].set_title("what the rate costs the prior's samples", fontsize=10)
        lines = [h for ax in (axes[2], fcd_axis) for h in ax.get_legend_handles_labels()[0]]
        axes[2].legend(lines, [h.get_label() for h in lines], fontsize=8)
    for ax in axes:
        ax.set_xlabel("rate: test KL (nats)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save(fig, png)


def plot_latent_usage(usage: dict[str, "np.ndarray"], png: str | Path | None = None,
                      threshold: float = 0.01, title: str = ""):
    """Two bar charts over the latent dimensions: the variance of the posterior means across
    the data (active units are above ``threshold``, drawn as a line) and the mean KL of each
    dimension. ``usage`` is :func:`seqvae.metrics.dimension_usage`'s result (tensors or
    arrays). Returns the figure (and writes ``png`` when given)."""

    variance = np.asarray(usage["variance"], dtype=float)
    kl = np.asarray(usage["kl"], dtype=float)
    dims = np.arange(len(variance))
    active = variance > threshold
    colours = np.where(active, "tab:blue", "tab:gray")
    fig = Figure(figsize=(8, 5))
    axes = fig.subplots(2, 1, sharex=True)
    axes[0].bar(dims, variance, color=colours)
    axes[0].axhline(threshold, color="tab:red", linewidth=1, linestyle="--",
                    label=f"active-unit threshold {threshold:g}")
    axes[0].set_ylabel("Cov_x(E[z_d|x])")
    axes[0].set_title(f"{title + ': ' if title else ''}{int(active.sum())} of {len(dims)} "
                      "dimensions active", fontsize=10)
    axes[0].legend(fontsize=8)
    axes[1].bar(dims, kl, color=colours)
    axes[1].set_ylabel("mean KL (nats)")
    axes[1].set_title(f"KL per dimension (total {kl.sum():.1f} nats)", fontsize=10)
    axes[1].set_xlabel("latent dimension")
    for ax in axes:
        ax.grid(alpha=0.3, axis="y")
    save(fig, png)
    return fig


def plot_path_norms(paths: dict[str, "np.ndarray"], png: str | Path | None = None,
                    title: str = ""):
    """The norm |z| along latent paths ({name: (steps, D) points}), beside sqrt(D), where the
    norm of z ~ N(0, I) concentrates: a linear path between two codes dips towards the
    origin, a spherical one does not. Returns the figure (and writes ``png`` when given)."""

    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    dim = None
    for name, points in paths.items():
        points = np.asarray(points, dtype=float)
        dim = points.shape[1]
        ax.plot(np.linspace(0, 1, len(points)), np.linalg.norm(points, axis=1), "o-",
                markersize=4, label=name)
    if dim:
        ax.axhline(np.sqrt(dim), color="tab:gray", linestyle="--", linewidth=1,
                   label=f"sqrt(D) = {np.sqrt(dim):.1f}")
    ax.set_xlabel("position on the path (0: start, 1: end)")
    ax.set_ylabel("|z|")
    ax.set_title(title or "norm of the code along the path", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, png)
    return fig


def plot_path_resemblance(scores: dict[str, "np.ndarray"], png: str | Path | None = None,
                          title: str = ""):
    """Mean resemblance of the points of latent paths to their start and to their end, by
    position on the path, one pair of curves per kind of path. ``scores`` maps a name
    (e.g. "linear", "slerp") to :func:`seqvae.evaluation.path_resemblance`'s (pairs, steps, 2)
    array. Returns the figure (and writes ``png`` when given)."""

    fig = Figure(figsize=(6.5, 4))
    ax = fig.subplots()
    styles = ("-", "--", ":", "-.")
    n = 0
    for (name, values), style in zip(scores.items(), styles):
        values = np.asarray(values, dtype=float)
        n = len(values)
        t = np.linspace(0, 1, values.shape[1])
        for k, (end, colour) in enumerate((("start", "tab:blue"), ("end", "tab:orange"))):
            ax.plot(t, values[:, :, k].mean(axis=0), style, color=colour, marker="o",
                    markersize=3, label=f"{name}: like the {end}")
    ax.set_xlabel("position on the path (0: start, 1: end)")
    ax.set_ylabel("unigram F1 of the greedy decode")
    ax.set_ylim(0, 1.02)
    ax.set_title(title or f"resemblance to the two ends, mean over {n} pairs", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, png)
    return fig
