"""How the shipped recipes were chosen: candidates compared on the validation split only.

Every candidate trains on the first 50,000 training images and is scored on the last 10,000
(the validation split); the test set is never loaded (``test_length=0``). The candidate with the
best final validation accuracy within the time budget becomes the recipe in ``examples/``;
bench/accuracy.py then measures that recipe on the test set.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/recipes.py --dataset mnist
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/recipes.py --dataset fashion-mnist
    python bench/recipes.py --quick        # tiny settings: checks the script's logic
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import machine, write_report  # noqa: E402

import portamlp  # noqa: E402

COMMON = dict(activation="relu", cost="cross_entropy", momentum=0.9, batch_size=128,
              scale="standardize", learning_rate_schedule="cosine", seed=0, test_length=0)
WIDE = dict(layers=(784, 1024, 1024, 10), dropout=0.5, input_dropout=0.2, max_norm=3.0)
#: The two variants the candidates combine: lighter dropout, and Adam instead of SGD momentum.
LIGHT = dict(dropout=0.3, input_dropout=0.1)
ADAM = dict(optimizer="adam", momentum=0.0, learning_rate=1e-3)
#: Distorted training images (issue 28): Cireşan et al.'s elastic σ and α, smaller affine ones.
DISTORTED = dict(shift=1.0, rotation=10.0, zoom=0.1, shear=10.0, elastic_alpha=36.0,
                 elastic_sigma=6.0)
CANDIDATES = {
    "mnist": {
        "distortions: 1000x2, elastic + affine, lr 0.05, 150 epochs":
            dict(DISTORTED, layers=(784, 1000, 1000, 10), learning_rate=0.05, epochs=150),
        "1024x2 dropout, lr 0.1, 60 epochs": dict(WIDE, learning_rate=0.1, epochs=60),
        "1024x2 dropout, lr 0.05, 60 epochs": dict(WIDE, learning_rate=0.05, epochs=60),
        "1024x2 dropout, lr 0.1, 120 epochs": dict(WIDE, learning_rate=0.1, epochs=120),
        "1200x2 dropout, lr 0.1, 100 epochs": dict(WIDE, layers=(784, 1200, 1200, 10),
                                                   learning_rate=0.1, epochs=100),
        "1024x2 dropout, lr 0.3, 25 epochs": dict(WIDE, learning_rate=0.3, epochs=25),
        "probe: 1024x2 dropout 0.3/0.1, lr 0.05, 25 epochs":
            dict(WIDE, **LIGHT, learning_rate=0.05, epochs=25),
        "probe: 1024x2 dropout, adam 0.001, 25 epochs": dict(WIDE, **ADAM, epochs=25),
        "probe: 1024x2 dropout 0.3/0.1, adam 0.001, 25 epochs":
            dict(WIDE, **LIGHT, **ADAM, epochs=25),
        "wide: 2048x2 dropout, adam 0.001, 25 epochs":
            dict(WIDE, **ADAM, layers=(784, 2048, 2048, 10), epochs=25),
        "long: 1024x2 dropout, adam 0.001, 75 epochs": dict(WIDE, **ADAM, epochs=75),
        "long: 1024x2 dropout, lr 0.05, 75 epochs": dict(WIDE, learning_rate=0.05, epochs=75),
        "800x2 no dropout, weight decay, 30 epochs": dict(layers=(784, 800, 800, 10),
                                                          learning_rate=0.05,
                                                          weight_decay=5e-4, epochs=30),
    },
    "fashion-mnist": {
        "distortions: 1024x2 dropout 0.3/0.1, flips, shift 1, lr 0.05, batch 125, 60 epochs":
            dict(WIDE, **LIGHT, learning_rate=0.05, batch_size=125, epochs=60, flip=True,
                 shift=1.0),
        "long: 1024x2 dropout 0.3/0.1, lr 0.05, 60 epochs":
            dict(WIDE, **LIGHT, learning_rate=0.05, epochs=60),
        "long: 1024x2 dropout, adam 0.001, 60 epochs": dict(WIDE, **ADAM, epochs=60),
        "probe: 1024x2 dropout, adam 0.001, 25 epochs": dict(WIDE, **ADAM, epochs=25),
        "probe: 1024x2 dropout 0.3/0.1, lr 0.05, 25 epochs":
            dict(WIDE, **LIGHT, learning_rate=0.05, epochs=25),
        "probe: 1024x2 dropout, lr 0.05, 25 epochs": dict(WIDE, learning_rate=0.05, epochs=25),
        "1024x2 dropout, lr 0.1, 40 epochs": dict(WIDE, learning_rate=0.1, epochs=40),
        "1024x2 dropout 0.3/0.1, lr 0.05, 40 epochs":
            dict(WIDE, **LIGHT, learning_rate=0.05, epochs=40),
        "512x2 dropout, lr 0.1, 60 epochs": dict(WIDE, layers=(784, 512, 512, 10),
                                                 learning_rate=0.1, epochs=60),
        "256-128-64 no dropout, 30 epochs": dict(layers=(784, 256, 128, 64, 10),
                                                 learning_rate=0.05, weight_decay=1e-4,
                                                 epochs=30),
    },
}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=sorted(CANDIDATES), default="mnist")
    parser.add_argument("--only", help="run only the candidates whose name contains this")
    parser.add_argument("--quick", action="store_true", help="tiny settings")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    output = args.output or HERE / "results" / f"recipes-{args.dataset}.json"
    print(f"machine: {machine()}\ndata set: {args.dataset}; scored on the validation split "
          "(the test set is not loaded)\n")
    print("| candidate | final validation accuracy | best (epoch) | minutes |")
    print("|---|---|---|---|")
    rows = []
    for name, options in CANDIDATES[args.dataset].items():
        if args.only and args.only not in name:
            continue
        options = dict(COMMON, **options, dataset=args.dataset)
        if args.quick:
            options.update(epochs=2, train_length=2000, validation_length=500,
                           layers=(784, 64, 10))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", portamlp.PortamlpWarning)
            result = portamlp.train(progress=False, **options)
        accs = [h.validation_accuracy for h in result.history]
        best = max(range(len(accs)), key=accs.__getitem__)
        minutes = sum(h.seconds for h in result.history) / 60
        rows.append({"candidate": name, "options": result.config.to_dict(),
                     "validation_accuracy": accs, "final": accs[-1], "minutes": minutes})
        print(f"| {name} | {accs[-1]:.2%} | {accs[best]:.2%} ({best + 1}) | {minutes:.1f} |",
              flush=True)
    report = {"machine": machine(), "dataset": args.dataset, "quick": args.quick, "rows": rows}
    write_report(output, report)
    return report


if __name__ == "__main__":
    main()
