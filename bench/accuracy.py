"""Accuracy and training time of the README's results table, rerun from scratch, in one run.

Rows, on the embedded MNIST unless said otherwise (training rows from the start of the training
file, 10,000 validation rows from its end, the 10,000 t10k test images):

* Nielsen's chapter 1 network (784-30-10, sigmoid, quadratic, batch 10, η = 3.0, 30 epochs),
  3 seeds;
* the five configurations the original Rust program's README publishes, and one more it was
  measured on here, with its hyper-parameters (N(0, 1) initial weights, quadratic cost, sigmoid,
  batch 10, η = 3.0, pixels / 256), 15 seeds each;
* a modern configuration (ReLU, softmax cross-entropy, He init, momentum, cosine schedule);
* the recipes shipped in examples/ (read from their TOML files): MNIST with dropout and
  max-norm, Fashion-MNIST, and MNIST with distorted training images, 3 seeds each, with their
  time budgets per run.

``--original-split`` also scores the original program's rows on the images that program tests
on: its data crate takes its "test" images from the end of the training file (images 50,000
onwards) and its README used 1,000 of them, so the column uses training-file images 50,000 to
50,999 — never trained on (training uses at most the first 50,000).

It prints a Markdown table (median and range over the seeds, median training seconds) and
writes JSON.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/accuracy.py --original-split
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
from portamlp.cli.training import read_config

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import machine  # noqa: E402

EXAMPLES = HERE.parent / "examples"
ORIGINAL = dict(activation="sigmoid", cost="quadratic", init="normal", batch_size=10,
                learning_rate=3.0, scale=256)
#: Images 50,000 to 50,999 of the training file: the original program's "test" images.
ORIGINAL_TEST_ROWS = (50_000, 51_000)


def recipe(name: str) -> dict:
    """A shipped recipe's options, from its TOML file (declared once, in examples/)."""
    options = read_config(EXAMPLES / name)
    options["layers"] = tuple(int(s) for s in str(options["layers"]).split(","))
    return options


# Each row: name, options, seeds, and where it exists the original program's figures:
# "published": (accuracy, seconds) from its README (1,000 of its "test" images);
# "measured": (accuracy, seconds, runs, note) of its release build on this machine, tested on
# the first 10,000 t10k images. "budget": minutes allowed per run (the recipes).
RUNS = [
    dict(name="Nielsen 784-30-10, 30 epochs", seeds=3,
         options=dict(layers=(784, 30, 10), epochs=30, batch_size=10, learning_rate=3.0,
                      init="normal")),
    dict(name="original row 1: 784-16-16-10, 10,000 images, 30 epochs", seeds=15,
         options=dict(layers=(784, 16, 16, 10), epochs=30, train_length=10_000, **ORIGINAL),
         published=(0.919, 478), measured=(0.9115, 19.6, 1, "one run")),
    dict(name="original row 2: 784-16-16-10, 3 epochs", seeds=15,
         options=dict(layers=(784, 16, 16, 10), epochs=3, **ORIGINAL),
         published=(0.90, 232), measured=(0.916, 10.1, 5, "median of 5")),
    dict(name="original row 3: 784-10, 3 epochs", seeds=15,
         options=dict(layers=(784, 10), epochs=3, **ORIGINAL),
         published=(0.733, 137), measured=(0.683, 5.9, 5, "median of 5")),
    dict(name="original row 4: 784-100-50-10, 1 epoch", seeds=15,
         options=dict(layers=(784, 100, 50, 10), epochs=1, **ORIGINAL),
         published=(0.91, 503), measured=(0.914, 21.6, 5, "median of 5")),
    dict(name="original row 5: 784-300-100-50-10, 1 epoch", seeds=15,
         options=dict(layers=(784, 300, 100, 50, 10), epochs=1, **ORIGINAL),
         published=(0.889, 1691), measured=(0.838, 72.2, 1, "one run; class 5 never "
                                                             "predicted")),
    dict(name="original 784-30-10, 1 epoch (not in its README)", seeds=15,
         options=dict(layers=(784, 30, 10), epochs=1, **ORIGINAL),
         measured=(0.826, 5.95, 5, "median of 5")),
    dict(name="modern 784-256-128-10 ReLU/CE, momentum, cosine, 15 epochs", seeds=3,
         options=dict(layers=(784, 256, 128, 10), activation="relu", cost="cross_entropy",
                      batch_size=100, learning_rate=0.05, momentum=0.9, weight_decay=1e-4,
                      epochs=15, learning_rate_schedule="cosine", scale="standardize")),
    dict(name="recipe examples/mnist-dropout.toml", seeds=3, budget=15, goal=0.988,
         options=lambda: recipe("mnist-dropout.toml")),
    dict(name="recipe examples/fashion-mnist.toml", seeds=3, budget=30, goal=0.910,
         options=lambda: recipe("fashion-mnist.toml")),
    dict(name="recipe examples/mnist-distortions.toml (published: Simard et al. 2003, "
              "784-800-10 with elastic distortions, 99.3 %; Cireşan et al. 2010, "
              "784-2500-2000-1500-1000-500-10, 99.65 %)", seeds=3, budget=30, goal=0.993,
         options=lambda: recipe("mnist-distortions.toml")),
]


def original_split(dataset: str, scale, dtype: str):
    """The original program's "test" images: training-file rows 50,000 to 50,999."""
    start, stop = ORIGINAL_TEST_ROWS
    return portamlp.datasets.load(dataset, "train", start=start, length=stop - start,
                                  scale=scale, dtype=dtype, backend="numpy")


def run(options, seeds, quick, split: bool):
    accs, split_accs, secs, dead = [], [], [], []
    for seed in range(seeds):
        opts = dict(options, seed=seed, progress=False)
        if quick:
            opts.update(epochs=1, train_length=1000, validation_length=200, test_length=200)
            if "layers" in opts and opts["layers"][1] > 256:
                opts["layers"] = (784, 64, 10)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # dead-class warnings are counted below instead
            result = portamlp.train(**opts)
        accs.append(result.test_accuracy)
        secs.append(sum(r.seconds for r in result.history))
        dead.append(len(result.history[-1].never_predicted))
        if split:
            net = result.network
            x, y = original_split(opts.get("dataset", "mnist"), opts.get("scale", 255), net.dtype)
            split_accs.append(net.evaluate(x, y))
    return accs, split_accs, secs, dead


def _pct(v: float) -> str:
    return f"{v:.2%}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings, for a smoke test")
    parser.add_argument("--output", default="bench/results/accuracy.json")
    parser.add_argument("--only", help="run only the rows whose name contains this text")
    parser.add_argument("--skip", help="leave out the rows whose name contains this text")
    parser.add_argument("--original-split", action="store_true",
                        help="also score the original program's rows on its own test images "
                             "(training-file images 50,000 to 50,999)")
    args = parser.parse_args(argv)
    rows = []
    print(f"machine: {machine()}")
    print(f"OPENBLAS_CORETYPE set: {'OPENBLAS_CORETYPE' in os.environ}, "
          f"OPENBLAS_L2_SIZE set: {'OPENBLAS_L2_SIZE' in os.environ}")
    print()
    print("| configuration | seeds | portamlp: median test accuracy on t10k (min–max) | "
          "portamlp on training-file images 50,000–50,999 | runs with a dead class | "
          "portamlp: median training s | original, published (s) | original, measured here "
          "(s) |")
    print("|---|---|---|---|---|---|---|---|")
    for spec in RUNS:
        name, seeds = spec["name"], spec["seeds"]
        if (args.only and args.only not in name) or (args.skip and args.skip in name):
            continue
        options = spec["options"]() if callable(spec["options"]) else spec["options"]
        if args.quick:
            seeds = min(seeds, 2)
        split = args.original_split and ("published" in spec or "measured" in spec)
        start = time.perf_counter()
        accs, split_accs, secs, dead = run(options, seeds, args.quick, split)
        row = dict(name=name, options={k: (list(v) if isinstance(v, tuple) else v)
                                       for k, v in options.items()},
                   seeds=seeds, test_accuracy=accs, train_seconds=secs, dead_classes=dead,
                   median_accuracy=statistics.median(accs), median_seconds=statistics.median(secs),
                   wall_seconds=time.perf_counter() - start,
                   published=spec.get("published"), measured=spec.get("measured"))
        if split_accs:
            row.update(original_split_accuracy=split_accs,
                       median_original_split=statistics.median(split_accs))
        if "budget" in spec:
            row.update(budget_minutes=spec["budget"], goal=spec["goal"],
                       within_budget=max(secs) <= 60 * spec["budget"],
                       meets_goal=row["median_accuracy"] >= spec["goal"])
        rows.append(row)
        split_text = (f"{_pct(row['median_original_split'])} ({_pct(min(split_accs))}–"
                      f"{_pct(max(split_accs))})" if split_accs else "—")
        pub = spec.get("published")
        mes = spec.get("measured")
        pub_text = f"{pub[0]:.1%} ({pub[1]:,} s)" if pub else "—"
        mes_text = f"{mes[0]:.2%} ({mes[1]} s; {mes[3]})" if mes else "—"
        print(f"| {name} | {seeds} | {_pct(row['median_accuracy'])} ({_pct(min(accs))}–"
              f"{_pct(max(accs))}) | {split_text} | {sum(d > 0 for d in dead)}/{seeds} | "
              f"{row['median_seconds']:.2f} | {pub_text} | {mes_text} |", flush=True)
        if "budget" in spec:
            print(f"<!-- {name}: goal {spec['goal']:.1%} {'met' if row['meets_goal'] else 'MISSED'}"
                  f"; slowest run {max(secs) / 60:.1f} min of {spec['budget']} allowed -->",
                  flush=True)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine(), "quick": args.quick,
                               "original_split": args.original_split,
                               "portamlp": portamlp.__version__, "rows": rows}, indent=1))
    print(f"\nwrote {out}")
    return rows


if __name__ == "__main__":
    sys.exit(main() and 0)
