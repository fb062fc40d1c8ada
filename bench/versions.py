"""This tree's portamlp against another revision of it, side by side: did a change slow it down?

Each side trains in a fresh subprocess that imports its own copy of the package (the revision is
extracted with ``git archive``), on the same data with the same settings, on NumPy. Rounds are
interleaved (old, new, then new, old, ...) and each side keeps its best epoch, so a machine that
is busier in one moment than another does not decide the comparison.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/versions.py --against d0f7e93
    python bench/versions.py --quick      # seconds: checks the script's logic

Prints seconds per epoch for each side and the ratio new / old (below 1: the new one is faster),
and writes ``bench/results/versions.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _common import machine, write_report  # noqa: E402

CONFIGS = {
    "784-30-10, sigmoid, quadratic, batch 10": dict(
        layers=[784, 30, 10], activation="sigmoid", cost="quadratic", batch_size=10,
        learning_rate=3.0, momentum=0.0),
    "784-100-50-10, sigmoid, quadratic, batch 10": dict(
        layers=[784, 100, 50, 10], activation="sigmoid", cost="quadratic", batch_size=10,
        learning_rate=3.0, momentum=0.0),
    "784-256-128-10, ReLU, cross-entropy, momentum, batch 128": dict(
        layers=[784, 256, 128, 10], activation="relu", cost="cross_entropy", batch_size=128,
        learning_rate=0.05, momentum=0.9),
}

#: What each subprocess runs: train ``epochs`` epochs, print the best epoch's seconds as JSON.
WORKER = """
import json, sys, warnings
import portamlp
options, rows, epochs = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
x, y = portamlp.datasets.load_mnist("train", length=rows, backend="numpy")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    result = portamlp.train(x=x, y=y, epochs=epochs, seed=0, backend="numpy", progress=False,
                            threads=1, **options)
print(json.dumps({"seconds": min(r.seconds for r in result.history),
                  "file": portamlp.__file__}))
"""


def extract(revision: str, into: Path) -> Path:
    """The package of ``revision`` (a git revision of this repository), extracted into ``into``."""
    archive = into / "tree.tar"
    with open(archive, "wb") as f:
        subprocess.run(["git", "archive", revision, "portamlp"], cwd=ROOT, stdout=f, check=True)
    with tarfile.open(archive) as tar:
        try:
            tar.extractall(into, filter="data")
        except TypeError:  # a Python without extraction filters: the archive is our own
            tar.extractall(into)
    return into


def epoch_seconds(tree: Path, options: dict, rows: int, epochs: int) -> float:
    """The best epoch of a fresh process importing the package found in ``tree``."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, "-c", WORKER, json.dumps(options), str(rows),
                          str(epochs)], capture_output=True, text=True, env=env, cwd=tree,
                         check=True)
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(answer["file"]).is_relative_to(tree), answer["file"]  # the right copy ran
    return float(answer["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", default="HEAD", help="git revision to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per process")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--quick", action="store_true", help="tiny settings, seconds")
    parser.add_argument("--only", help="run only the configurations whose name contains this")
    parser.add_argument("--output", help="the JSON report (default: bench/results/versions.json; "
                                         "none with --quick)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.epochs, args.rows = 1, 1, 600
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        old = extract(args.against, Path(tmp))
        new = ROOT
        for name, options in CONFIGS.items():
            if args.only and args.only not in name:
                continue
            best = {"old": float("inf"), "new": float("inf")}
            for r in range(args.rounds):
                order = [("old", old), ("new", new)] if r % 2 == 0 else [("new", new),
                                                                          ("old", old)]
                for side, tree in order:
                    s = epoch_seconds(tree, options, args.rows, args.epochs)
                    best[side] = min(best[side], s)
            results[name] = {**best, "ratio": best["new"] / best["old"]}
            print(f"{name}: {args.against} {best['old']:.3f} s/epoch, this tree "
                  f"{best['new']:.3f} s/epoch, ratio {best['new'] / best['old']:.3f}",
                  flush=True)
    output = args.output or (None if args.quick else HERE / "results" / "versions.json")
    if output is not None:
        write_report(output, {"against": args.against, "rounds": args.rounds,
                                   "epochs": args.epochs, "rows": args.rows,
                                   "machine": machine(), "results": results})


if __name__ == "__main__":
    main()
