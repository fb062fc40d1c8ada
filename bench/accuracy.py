"""Accuracy and training time of the README's results table, rerun from scratch.

Runs, on the embedded MNIST (50,000 training images, 10,000 validation, the 10,000 test images):

* Nielsen's chapter 1 network (784-30-10, sigmoid, quadratic, batch 10, η = 3.0, 30 epochs),
  3 seeds;
* the original program's four configurations with its hyper-parameters (N(0, 1) initial weights,
  quadratic cost, sigmoid, batch 10, η = 3.0, pixels / 256), 15 seeds each;
* a modern configuration (ReLU, softmax cross-entropy, He init, momentum, cosine schedule), 3 seeds.

It prints a Markdown table (median test accuracy and median training seconds) and writes JSON.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/accuracy.py
    python bench/accuracy.py --quick      # a smoke run with tiny settings
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import portamlp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

ORIGINAL = dict(activation="sigmoid", cost="quadratic", init="normal", batch_size=10,
                learning_rate=3.0, scale=256)
# (name, options, seeds, the original program's median accuracy and seconds measured on this
# machine, 5 runs each, release build; None where it has no counterpart)
RUNS = [
    ("Nielsen 784-30-10, 30 epochs", dict(layers=(784, 30, 10), epochs=30, batch_size=10,
                                          learning_rate=3.0), 3, None),
    ("original 784-16-16-10, 3 epochs", dict(layers=(784, 16, 16, 10), epochs=3, **ORIGINAL), 15,
     (0.916, 10.1)),
    ("original 784-10, 3 epochs", dict(layers=(784, 10), epochs=3, **ORIGINAL), 15, (0.683, 5.9)),
    ("original 784-100-50-10, 1 epoch", dict(layers=(784, 100, 50, 10), epochs=1, **ORIGINAL), 15,
     (0.914, 21.6)),
    ("original 784-30-10, 1 epoch", dict(layers=(784, 30, 10), epochs=1, **ORIGINAL), 15,
     (0.826, 5.95)),
    ("modern 784-256-128-10 ReLU/CE, momentum, cosine, 15 epochs",
     dict(layers=(784, 256, 128, 10), activation="relu", cost="cross_entropy", batch_size=100,
          learning_rate=0.05, momentum=0.9, weight_decay=1e-4, epochs=15,
          learning_rate_schedule="cosine", scale="standardize"), 3, None),
]




def run(options, seeds, quick):
    accs, secs, dead = [], [], []
    for seed in range(seeds):
        opts = dict(options, seed=seed)
        if quick:
            opts.update(epochs=1, train_length=1000, validation_length=200, test_length=200)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # dead-class warnings are counted below instead
            result = portamlp.train(**opts)
        accs.append(result.test_accuracy)
        secs.append(sum(r.seconds for r in result.history))
        dead.append(len(result.history[-1].never_predicted))
    return accs, secs, dead


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings, for a smoke test")
    parser.add_argument("--output", default="bench/results/accuracy.json")
    parser.add_argument("--only", help="run only the rows whose name contains this text")
    args = parser.parse_args(argv)
    rows = []
    print(f"machine: {machine()}")
    print(f"OPENBLAS_CORETYPE set: {'OPENBLAS_CORETYPE' in os.environ}, "
          f"OPENBLAS_L2_SIZE set: {'OPENBLAS_L2_SIZE' in os.environ}")
    print()
    print("| configuration | seeds | median test accuracy (min–max) | runs with a dead class "
          "| median training s | original program: median accuracy (s) |")
    print("|---|---|---|---|---|---|")
    for name, options, seeds, original in RUNS:
        if args.only and args.only not in name:
            continue
        if args.quick:
            seeds = min(seeds, 2)
        start = time.perf_counter()
        accs, secs, dead = run(options, seeds, args.quick)
        row = dict(name=name, options={k: (list(v) if isinstance(v, tuple) else v)
                                       for k, v in options.items()},
                   seeds=seeds, test_accuracy=accs, train_seconds=secs, dead_classes=dead,
                   median_accuracy=statistics.median(accs), median_seconds=statistics.median(secs),
                   wall_seconds=time.perf_counter() - start, original=original)
        rows.append(row)
        orig = f"{original[0]:.1%} ({original[1]} s)" if original else "—"
        print(f"| {name} | {seeds} | {row['median_accuracy']:.2%} ({min(accs):.2%}–{max(accs):.2%})"
              f" | {sum(d > 0 for d in dead)}/{seeds} | {row['median_seconds']:.2f} | {orig} |",
              flush=True)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine(), "quick": args.quick,
                               "portamlp": portamlp.__version__, "rows": rows}, indent=1))
    print(f"\nwrote {out}")
    return rows


if __name__ == "__main__":
    sys.exit(main() and 0)
