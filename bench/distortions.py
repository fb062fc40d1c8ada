"""The cost of distortions: an epoch with distorted images against the same epoch without.

One epoch of 784-800-10 (Simard et al.'s network: ReLU here, softmax cross-entropy, momentum
0.9; ``--layers`` for another) at batch 128 on the 50,000 MNIST training images, NumPy backend,
float32. Rounds are
interleaved (plain, affine, elastic, all, plain, ...) and each side's best epoch is kept, so a
noisy neighbour slows both alike. The target (issue 28): distortions add at most 30 % to the
epoch.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/distortions.py
    python bench/distortions.py --quick        # tiny settings: checks the script's logic
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import machine, write_report  # noqa: E402

import portamlp  # noqa: E402

TARGET = 1.30  # an epoch with distortions, at most this many times the plain epoch
#: What each row turns on (the MNIST recipe's distortions are the last row).
SETTINGS = {
    "none": {},
    "affine (shift 2, rotation 15, zoom 0.15, shear 15)":
        dict(shift=2.0, rotation=15.0, zoom=0.15, shear=15.0),
    "elastic (α 34, σ 4)": dict(elastic_alpha=34.0, elastic_sigma=4.0),
    "affine + elastic": dict(shift=2.0, rotation=15.0, zoom=0.15, shear=15.0,
                             elastic_alpha=34.0, elastic_sigma=4.0),
}


def epoch_seconds(x, y, layers, batch, threads, options) -> float:
    result = portamlp.train(x=x, y=y, layers=layers, activation="relu", cost="cross_entropy",
                            learning_rate=0.05, momentum=0.9, batch_size=batch, epochs=1,
                            seed=0, backend="numpy", threads=threads, progress=False,
                            **options)
    return result.history[0].seconds


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="BLAS threads")
    parser.add_argument("--layers", default="784,800,10",
                        help="the network (default: 784,800,10; the MNIST recipe's is "
                             "784,1000,1000,10)")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "distortions.json")
    args = parser.parse_args(argv)
    x, y = (np.asarray(a) for a in portamlp.datasets.load_mnist("train", backend="numpy",
                                                                length=50_000))
    layers = tuple(int(s) for s in args.layers.split(","))
    batch, rounds = 128, args.rounds
    if args.quick:
        x, y, layers, rounds = x[:1024], y[:1024], (784, 64, 10), 1
    print(f"machine: {machine()}")
    print(f"{x.shape[0]:,} images, layers {'-'.join(map(str, layers))}, batch {batch}, "
          f"{args.threads} BLAS threads, best of {rounds} interleaved epoch(s)\n")
    best = {name: float("inf") for name in SETTINGS}
    for _ in range(rounds):
        for name, options in SETTINGS.items():
            best[name] = min(best[name], epoch_seconds(x, y, layers, batch, args.threads,
                                                       options))
    plain = best["none"]
    print("| distortions | epoch | ratio to none |")
    print("|---|---|---|")
    rows = []
    for name, seconds in best.items():
        rows.append({"distortions": name, "options": SETTINGS[name], "seconds": seconds,
                     "ratio": seconds / plain})
        print(f"| {name} | {seconds:.2f} s | {seconds / plain:.2f}× |")
    worst = max(r["ratio"] for r in rows)
    print(f"\nthe dearest distortions: {worst:.2f}× the plain epoch (target ≤ {TARGET}×): "
          f"{'met' if worst <= TARGET else 'MISSED'}")
    report = {"machine": machine(), "quick": args.quick, "layers": list(layers),
              "batch": batch, "images": int(x.shape[0]), "threads": args.threads,
              "rounds": rounds, "rows": rows, "target": TARGET, "meets_target": worst <= TARGET}
    write_report(args.output, report)
    return report


if __name__ == "__main__":
    main()
