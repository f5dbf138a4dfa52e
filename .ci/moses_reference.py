"""The MOSES metrics of one generated set, by molsets 0.3.1 itself and by seqvae, side by side.

Not part of the package and not run by the tests: it checks seqvae's re-implementation
(``seqvae/moses_metrics.py``) against the reference. molsets 0.3.1 cannot be installed beside
the project's numpy 2, so the reference runs in its own virtualenv, built by
``../shared/bench/peer_moses.sh`` (default ``/tmp/moses-peer``):

    # 1. molsets 0.3.1's values, in the peer virtualenv (writes JSON to stdout)
    /tmp/moses-peer/bin/python -W ignore .ci/moses_reference.py molsets \\
        --gen gen.smi --test test.smi --test-sf test_sf.smi --train train.smi > molsets.json
    # 2. seqvae's values on the same files, and the table comparing them
    .venv/bin/python .ci/moses_reference.py seqvae \\
        --gen gen.smi --test test.smi --test-sf test_sf.smi --train train.smi \\
        --compare molsets.json > seqvae.json

Files hold one SMILES a line. Both sides use one process (n_jobs=1) and the CPU.
``--from-test tests/test_moses_metrics.py`` takes the four sets from that test module's
GENERATED, REFERENCE_TEST, REFERENCE_TEST_SF and TRAIN instead (read, not imported): that is how
the test's MOLSETS_VALUES were made.
"""
from __future__ import annotations

import argparse
import ast
import json
import math
import sys
from pathlib import Path

# seqvae's result keys for molsets' names (get_all_metrics)
KEYS = {"valid": "valid", "unique@1000": "unique@1k", "unique@10000": "unique@10k",
        "Novelty": "novelty", "IntDiv": "intdiv1", "IntDiv2": "intdiv2", "Filters": "filters",
        "FCD/Test": "fcd/test", "FCD/TestSF": "fcd/test_scaffolds",
        "SNN/Test": "snn/test", "SNN/TestSF": "snn/test_scaffolds",
        "Frag/Test": "frag/test", "Frag/TestSF": "frag/test_scaffolds",
        "Scaf/Test": "scaf/test", "Scaf/TestSF": "scaf/test_scaffolds",
        "logP": "logp/test", "SA": "sa/test", "QED": "qed/test", "weight": "weight/test"}


def read(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def from_test_module(path: Path) -> dict[str, list[str]]:
    """The list constants of a test module, by name, without importing it."""
    sets = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in ("GENERATED", "REFERENCE_TEST", "REFERENCE_TEST_SF", "TRAIN"):
                sets[name] = ast.literal_eval(node.value)
    return sets


def sets_of(args) -> tuple[list[str], list[str], list[str], list[str]]:
    if args.from_test:
        t = from_test_module(args.from_test)
        return t["GENERATED"], t["REFERENCE_TEST"], t["REFERENCE_TEST_SF"], t["TRAIN"]
    return read(args.gen), read(args.test), read(args.test_sf), read(args.train)


def run_molsets(args) -> dict:
    from moses.metrics import get_all_metrics
    gen, test, test_sf, train = sets_of(args)
    values = get_all_metrics(gen, k=[1000, 10000], n_jobs=1, device="cpu",
                             test=test, test_scaffolds=test_sf, train=train)
    return {KEYS[k]: float(v) for k, v in values.items()}


def run_seqvae(args) -> dict:
    from seqvae.molecule_evaluation import generation_metrics, reference_set
    gen, test, test_sf, train = sets_of(args)
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    references = {"test": reference_set(test, log), "test_scaffolds": reference_set(test_sf, log)}
    # molsets compares with the training SMILES as stored (MOSES's are canonical already)
    result = generation_metrics(gen, set(train), references)
    return {v: float(result[v]) for v in KEYS.values()}


def table(seqvae: dict, molsets: dict) -> str:
    lines = ["| metric | seqvae | molsets 0.3.1 | abs. diff | agrees |", "|---|---|---|---|---|"]
    for name, key in KEYS.items():
        a, b = seqvae[key], molsets[key]
        diff = abs(a - b)
        both_nan = math.isnan(a) and math.isnan(b)
        ok = both_nan or (diff <= 0.01 * abs(b) if key.startswith("fcd/") else diff <= 1e-3)
        lines.append(f"| {name} | {a:.6f} | {b:.6f} | {diff:.2e} | {'yes' if ok else '**no**'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("side", choices=("molsets", "seqvae"))
    for flag in ("--gen", "--test", "--test-sf", "--train"):
        parser.add_argument(flag, type=Path)
    parser.add_argument("--from-test", type=Path, help="take the sets from this test module")
    parser.add_argument("--compare", type=Path, help="molsets' JSON: print the table to stderr")
    args = parser.parse_args()
    if not args.from_test and None in (args.gen, args.test, args.test_sf, args.train):
        parser.error("give --gen, --test, --test-sf and --train, or --from-test")
    values = run_molsets(args) if args.side == "molsets" else run_seqvae(args)
    print(json.dumps(values, indent=1))
    if args.compare:
        print(table(values, json.loads(args.compare.read_text())), file=sys.stderr)


if __name__ == "__main__":
    main()
