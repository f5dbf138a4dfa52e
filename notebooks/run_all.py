"""Execute the notebooks with full settings and the shipped models, writing their outputs in
place (the committed notebooks open with these results).

    python notebooks/run_all.py                      # every notebook, in place
    python notebooks/run_all.py sentence_interpolation.ipynb --out /tmp/nb   # one, elsewhere

Runs from the repository root (figures and CSVs go to runs/notebook-*), with the quick mode
and every SEQVAE_NOTEBOOK_* override switched off. Refuses to run when a shipped model a
notebook needs is not installed, since the notebook would then train its own model instead.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from seqvae.pretrained import models

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NEEDS = {"latent_optimization.ipynb": ("moses",), "sentence_interpolation.ipynb": ("brown", "ptb")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", default=sorted(NEEDS), metavar="NOTEBOOK",
                        help=f"notebooks in {HERE.name}/ (default: all of them)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the executed notebooks here instead of in place")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args()
    missing = sorted({name for n in args.notebooks for name in NEEDS.get(n, ()) if name not in models()})
    if missing:
        print(f"not installed: shipped model(s) {', '.join(missing)} (see `seqvae models`)",
              file=sys.stderr)
        return 1
    for variable in [v for v in os.environ if v.startswith("SEQVAE_NOTEBOOK_")]:
        del os.environ[variable]   # the kernel inherits this environment: full settings
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    for name in args.notebooks:
        nb = nbformat.read(HERE / name, as_version=4)
        started = time.perf_counter()
        NotebookClient(nb, timeout=args.timeout, kernel_name="python3", record_timing=False,
                       resources={"metadata": {"path": str(ROOT)}}).execute()
        target = (args.out or HERE) / name
        nbformat.write(nb, target)
        print(f"{name}: executed in {time.perf_counter() - started:.0f} s -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
