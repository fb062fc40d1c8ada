"""portamlp.sklearn.MLPClassifier against sklearn.neural_network.MLPClassifier, side by side.

The same data (float32 for both: scikit-learn keeps float32 input in float32, and portamlp's
estimator follows the input's dtype), the same parameters, one ``fit`` each per seed; the table
shows the median over the seeds of the fit time and of the test accuracy. Neither stops early,
so both run exactly ``max_iter`` epochs: ``early_stopping=False`` (the default) and
``n_iter_no_change=max_iter``, so that the "no improvement for more than n_iter_no_change
epochs" rule cannot fire within ``max_iter`` epochs; the script checks ``n_iter_ == max_iter``.

* MNIST: 784-256-128-10 (``hidden_layer_sizes=(256, 128)``), ReLU, Adam, batch 128, 20 epochs,
  60,000 training images and the 10,000 test images, pixels ÷255. Target: portamlp at least as
  accurate (within 0.3 points) and at least 1.5× faster to fit.
* digits (scikit-learn's 8×8 images): 64-100-10, ReLU, Adam, batch 128, 100 epochs, a stratified
  75/25 split of the 1,797 images, pixels ÷16.

BLAS threads: scikit-learn runs with OpenBLAS's default (every core); portamlp picks its own
(one thread for small products, else the cores other processes leave idle; see
``portamlp/threads.py``), which matters a great deal on a shared machine, where a
multi-threaded BLAS waits on preempted threads. So a third column runs scikit-learn under
``threadpoolctl`` with the number of threads portamlp chooses at that moment: the difference
between the two libraries' code, with threading equal. The report also records the load
average before and after each row.

Run it with the OpenBLAS overrides of this machine unset, for this command only:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/sklearn_compare.py
    python bench/sklearn_compare.py --quick     # seconds, tiny settings: checks the logic
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import machine, write_report  # noqa: E402

import portamlp  # noqa: E402
from portamlp.backends.threads import blas_threads  # noqa: E402

SEEDS = (0, 1, 2)
ROWS = {
    "mnist": dict(network="784-256-128-10", hidden_layer_sizes=(256, 128), max_iter=20),
    "digits": dict(network="64-100-10", hidden_layer_sizes=(100,), max_iter=100),
}
#: Settings shared by both estimators on every row (the rest are both libraries' defaults:
#: alpha=1e-4, learning_rate_init=0.001, shuffle=True, tol=1e-4, early_stopping=False).
COMMON = dict(activation="relu", solver="adam", batch_size=128)
SAME_THREADS = "scikit-learn, portamlp's BLAS threads"
LABELS = ("scikit-learn", SAME_THREADS, "portamlp")


def load(name: str, quick: bool):
    """``(x, y, x_test, y_test)`` as float32 / int64 NumPy arrays."""
    if name == "mnist":
        n, n_test = (2_000, 500) if quick else (None, None)
        x, y = portamlp.datasets.load_mnist("train", backend="numpy", length=n)  # ÷255
        xt, yt = portamlp.datasets.load_mnist("test", backend="numpy", length=n_test)
        return x, y, xt, yt
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x, xt, y, yt = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
    return x, y, xt, yt


def portamlp_threads(data, params: dict) -> int:
    """The BLAS threads portamlp's training would use now (it decides per fit)."""
    layers = (data[0].shape[1], *params["hidden_layer_sizes"], 10)
    return blas_threads(layers, params["batch_size"])


def fit_once(estimator_class, params: dict, data, threads: int | None = None) -> dict:
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    x, y, xt, yt = data
    est = estimator_class(**params)
    limit = threadpool_limits(limits=threads, user_api="blas") if threads else \
        contextlib.nullcontext()
    with warnings.catch_warnings(), limit:  # every run ends at max_iter, by design
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        est.fit(x, y)
        seconds = time.perf_counter() - start
    if est.n_iter_ != params["max_iter"]:
        raise RuntimeError(f"{estimator_class.__module__} ran {est.n_iter_} epochs, not "
                           f"{params['max_iter']}: the comparison needs equal epochs")
    return {"seed": params["random_state"], "fit_seconds": seconds, "blas_threads": threads,
            "test_accuracy": float(est.score(xt, yt)), "n_iter": int(est.n_iter_),
            "final_loss": float(est.loss_curve_[-1])}


def compare(name: str, quick: bool, seeds) -> dict:
    from sklearn.neural_network import MLPClassifier as SklearnMLP

    from portamlp.sklearn import MLPClassifier

    row = ROWS[name]
    max_iter = (2 if name == "mnist" else 3) if quick else row["max_iter"]
    data = load(name, quick)
    settings = dict(COMMON, hidden_layer_sizes=row["hidden_layer_sizes"], max_iter=max_iter,
                    n_iter_no_change=max_iter)
    runs: dict[str, list] = {label: [] for label in LABELS}
    load_before = os.getloadavg()
    for seed in seeds:
        params = dict(settings, random_state=seed)
        # rotate the order so none always runs on a warmer (or busier) machine
        order = list(LABELS)
        order = order[seed % 3:] + order[:seed % 3]
        for label in order:
            cls = MLPClassifier if label == "portamlp" else SklearnMLP
            chosen = portamlp_threads(data, params)  # what portamlp would choose now
            result = fit_once(cls, params, data, chosen if label == SAME_THREADS else None)
            if label == "portamlp":
                result["blas_threads"] = chosen  # it decides again inside fit, about the same
            runs[label].append(result)
            print(f"  {name} seed {seed} {label}: {result['fit_seconds']:.2f} s, "
                  f"{result['test_accuracy']:.2%}", flush=True)
    out: dict = {"dataset": name, "network": row["network"],
                 "load_average_before": load_before, "load_average_after": os.getloadavg(),
                 "settings": {k: (list(v) if isinstance(v, tuple) else v)
                              for k, v in settings.items()},
                 "n_train": int(data[0].shape[0]), "n_test": int(data[2].shape[0])}
    for label, results in runs.items():
        out[label] = {"runs": results,
                      "fit_seconds": statistics.median(r["fit_seconds"] for r in results),
                      "test_accuracy": statistics.median(r["test_accuracy"] for r in results)}
    ours = out["portamlp"]
    out["speedup"] = out["scikit-learn"]["fit_seconds"] / ours["fit_seconds"]
    out["speedup_same_threads"] = out[SAME_THREADS]["fit_seconds"] / ours["fit_seconds"]
    out["accuracy_points"] = 100 * (ours["test_accuracy"]
                                    - out["scikit-learn"]["test_accuracy"])
    return out


def table(rows: list[dict]) -> str:
    lines = ["| data set | network | estimator | fit time (median) | test accuracy (median) |",
             "|---|---|---|---|---|"]
    for row in rows:
        for label in LABELS:
            result = row[label]
            note = diff = ""
            if label == "portamlp":
                note = (f" ({row['speedup']:.2f}× faster; {row['speedup_same_threads']:.2f}× "
                        "with the same threads)")
                diff = f" ({row['accuracy_points']:+.2f} points)"
            lines.append(f"| {row['dataset']} | {row['network']} | {label} | "
                         f"{result['fit_seconds']:.2f} s{note} | "
                         f"{result['test_accuracy']:.2%}{diff} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings (a test)")
    parser.add_argument("--output", default=str(HERE / "results" / "sklearn_compare.json"))
    parser.add_argument("--only", choices=sorted(ROWS), help="one data set")
    args = parser.parse_args(argv)
    import sklearn

    seeds = SEEDS[:1] if args.quick else SEEDS
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        print(f"{var} is {'set' if var in os.environ else 'unset'}")
    print(f"machine: {machine()}, scikit-learn {sklearn.__version__}, "
          f"portamlp {portamlp.__version__}")
    rows = [compare(name, args.quick, seeds) for name in ROWS if args.only in (None, name)]
    print()
    print(table(rows))
    mnist = next((r for r in rows if r["dataset"] == "mnist"), None)
    report = {"machine": machine(), "scikit-learn": sklearn.__version__,
              "portamlp": portamlp.__version__, "numpy": np.__version__, "quick": args.quick,
              "seeds": list(seeds), "common_settings": COMMON,
              "openblas_overrides": {v: os.environ.get(v) for v in ("OPENBLAS_CORETYPE",
                                                                    "OPENBLAS_L2_SIZE")},
              "rows": rows, "table": table(rows)}
    if mnist is not None:
        report["target"] = {"faster_1_5x": mnist["speedup"] >= 1.5,
                            "faster_1_5x_same_threads": mnist["speedup_same_threads"] >= 1.5,
                            "accuracy_within_0_3_points": mnist["accuracy_points"] >= -0.3}
        print(f"\nMNIST target: {mnist['speedup']:.2f}× faster, "
              f"{mnist['speedup_same_threads']:.2f}× with the same BLAS threads (want >= 1.5), "
              f"{mnist['accuracy_points']:+.2f} accuracy points (want >= -0.3)")
    write_report(args.output, report)
    return report


if __name__ == "__main__":
    main()
