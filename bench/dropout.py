"""The cost of dropout: portamlp's counter-based masks against NumPy's own generator.

One epoch of 784-1024-1024-10 (ReLU, softmax cross-entropy, momentum 0.9) at batch 128 on the
50,000 MNIST training images, NumPy backend, float32; dropout 0.5 on the hidden units and 0.2
on the inputs. The peer is the plain NumPy loop of bench/floor.py with its masks drawn by
``numpy.random.Generator.random``, measured in the same run. Both are also timed without dropout,
so the table shows what the masks themselves cost. Best of ``--repeats`` epochs each.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/dropout.py
    python bench/dropout.py --quick        # tiny settings: checks the script's logic
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import floor  # noqa: E402
from _common import machine, write_report  # noqa: E402

import portamlp  # noqa: E402

TARGET = 1.2  # portamlp with dropout, at most this many times the plain loop with dropout


def time_portamlp(x, y, layers, batch, repeats, dropout, input_dropout, threads):
    result = portamlp.train(x=x, y=y, layers=layers, activation="relu", cost="cross_entropy",
                            learning_rate=0.05, momentum=0.9, batch_size=batch, epochs=repeats,
                            dropout=dropout, input_dropout=input_dropout, seed=0,
                            backend="numpy", threads=threads, progress=False)
    return min(h.seconds for h in result.history)


def time_floor(x, y, layers, batch, repeats, dropout, input_dropout, threads):
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    ws, bs = floor.init(layers, rng, he=True)
    vs = [(np.zeros_like(w), np.zeros_like(b)) for w, b in zip(ws, bs)]
    onehot = np.eye(10, dtype=np.float32)[y]
    times = []
    with threadpool_limits(threads, user_api="blas"):
        for _ in range(repeats):
            start = time.perf_counter()
            floor.train_epoch(x, onehot, ws, bs, vs, lr=0.05, batch=batch, rng=rng, relu=True,
                              softmax=True, mu=0.9, dropout=dropout,
                              input_dropout=input_dropout)
            times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="BLAS threads for both")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "dropout.json")
    args = parser.parse_args(argv)
    x, y = (np.asarray(a) for a in portamlp.datasets.load_mnist("train", backend="numpy",
                                                                length=50_000))
    layers, batch, repeats = (784, 1024, 1024, 10), 128, args.repeats
    if args.quick:
        x, y, layers, repeats = x[:2048], y[:2048], (784, 128, 128, 10), 1
    print(f"machine: {machine()}")
    print(f"{x.shape[0]:,} images, layers {'-'.join(map(str, layers))}, batch {batch}, "
          f"{args.threads} BLAS threads, best of {repeats} epoch(s)\n")
    print("| dropout (hidden / input) | portamlp (counter-based masks) | plain NumPy loop "
          "(NumPy's generator) | ratio |")
    print("|---|---|---|---|")
    rows = []
    for dropout, input_dropout in ((0.0, 0.0), (0.5, 0.2)):
        mine = time_portamlp(x, y, layers, batch, repeats, dropout, input_dropout, args.threads)
        theirs = time_floor(x, y, layers, batch, repeats, dropout, input_dropout, args.threads)
        rows.append({"dropout": dropout, "input_dropout": input_dropout,
                     "portamlp_seconds": mine, "floor_seconds": theirs,
                     "ratio": mine / theirs})
        print(f"| {dropout} / {input_dropout} | {mine:.3f} s | {theirs:.3f} s | "
              f"{mine / theirs:.2f}× |", flush=True)
    ratio = rows[-1]["ratio"]
    print(f"\nwith dropout: {ratio:.2f}× the plain loop (target ≤ {TARGET}×): "
          f"{'met' if ratio <= TARGET else 'MISSED'}")
    report = {"machine": machine(), "quick": args.quick, "layers": list(layers),
              "batch": batch, "images": int(x.shape[0]), "threads": args.threads,
              "rows": rows, "target": TARGET, "meets_target": ratio <= TARGET}
    write_report(args.output, report)
    return report


if __name__ == "__main__":
    main()
