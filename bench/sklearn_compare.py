"""portamlp.sklearn's MLPClassifier and MLPRegressor against scikit-learn's, side by side.

The same data in the same float dtype for both, the same parameters, one ``fit`` each per seed
(seeds 0, 1, 2 as ``random_state``; the three estimators of a seed run one after another, the
order rotated from seed to seed); the tables show the median over the seeds of the fit time and
of the test score (the JSON also keeps every run and the best time). With ``init="glorot"`` (the
default) portamlp's estimators draw scikit-learn's initial weights from ``random_state``, so
both sides of a seed start from the same network.

Rows with a fixed number of epochs (every Adam row): neither side stops early, so both run
exactly ``max_iter`` epochs and the times compare equal work: ``early_stopping=False`` (the
default) and ``n_iter_no_change=max_iter``, so that the "no improvement for more than
n_iter_no_change epochs" rule cannot fire within ``max_iter`` epochs; the script checks
``n_iter_ == max_iter`` (the ConvergenceWarning at ``max_iter`` is expected and ignored).

* ``mnist``: 784-256-128-10 (``hidden_layer_sizes=(256, 128)``), ReLU, Adam, batch 128, 20
  epochs, float32, 60,000 training images and the 10,000 test images, pixels ÷255. Target:
  portamlp at least as accurate (within 0.3 points) and at least 1.5× faster to fit.
* ``digits`` (scikit-learn's 8×8 images): 64-100-10, ReLU, Adam, batch 128, 100 epochs,
  float32, a stratified 75/25 split (``random_state=0``) of the 1,797 images, pixels ÷16.
* ``regression-adam``: ``MLPRegressor(hidden_layer_sizes=(100,), solver="adam",
  max_iter=200)``, the other parameters both libraries' defaults (ReLU, batch
  ``min(200, n)``, squared error), float32, 200 epochs (fixed as above). Data: California
  housing (20,640 rows) if scikit-learn finds it on disk (``download_if_missing=False``), else
  the diabetes data (442 rows, 10 features: ships with scikit-learn); a 75/25 split
  (``random_state=0``), ``StandardScaler`` on X and y standardised, both fitted on the
  training part. Score: test R² (``score``).

Rows where L-BFGS stops by itself (``solver="lbfgs"``: portamlp's own Array-API L-BFGS against
SciPy's L-BFGS-B, which scikit-learn calls): ``max_iter=200`` iterations, the defaults
``tol=1e-4`` and ``max_fun=15000``. The iterations differ between the sides, so the tables
also give ``n_iter_`` (the median and each seed's), the time per iteration and whether each fit
converged (a ConvergenceWarning caught = not converged). These rows run in float64: SciPy keeps
its parameter vector in float64, so scikit-learn's L-BFGS computes in float64 whatever the
input's dtype, and portamlp's estimator follows the input's dtype — float64 data makes both
sides compute in the same precision.

* ``digits-lbfgs``: ``MLPClassifier(solver="lbfgs", hidden_layer_sizes=(100,), max_iter=200)``
  on the ``digits`` row's split and scaling. Score: test accuracy.
* ``regression-lbfgs``: ``MLPRegressor(solver="lbfgs", hidden_layer_sizes=(100,),
  max_iter=200)`` on the ``regression-adam`` row's data. Score: test R².

BLAS threads: scikit-learn runs with OpenBLAS's default (every core); portamlp picks its own
(one thread for small products, else the cores other processes leave idle; see
``portamlp/backends/threads.py``), which matters a great deal on a shared machine, where a
multi-threaded BLAS waits on preempted threads. So a third column runs scikit-learn under
``threadpoolctl`` with the number of threads portamlp chooses at that moment (for L-BFGS, at
its batch of ``min(n, 8192)`` rows): the difference between the two libraries' code, with
threading equal. The report also records the load average before and after each row.

Run it with the OpenBLAS overrides of this machine unset, for this command only:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/sklearn_compare.py
    python bench/sklearn_compare.py --only digits-lbfgs,regression   # some rows; see below
    python bench/sklearn_compare.py --quick     # seconds, tiny settings: checks the logic

``--only`` takes row names, ``lbfgs`` (both L-BFGS rows) or ``regression`` (both regression
rows), comma-separated; it keeps the other rows of the existing ``--output`` file (a full run's)
as they were measured, and lists them under ``kept_rows`` in the report. ``--quick`` runs every
row on tiny settings (2,000 MNIST images, 2-3 epochs, 5 L-BFGS iterations, one seed).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
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
from portamlp.sklearn._base import LBFGS_CHUNK  # noqa: E402

SEEDS = (0, 1, 2)
#: Settings shared by both estimators on the Adam classification rows (the rest are both
#: libraries' defaults: alpha=1e-4, learning_rate_init=0.001, shuffle=True, tol=1e-4,
#: early_stopping=False).
COMMON = dict(activation="relu", solver="adam", batch_size=128)
#: Each row: its data, estimator, parameters, ``max_iter`` (full and ``--quick``), the float
#: dtype both sides get, and whether both must run exactly ``max_iter`` epochs.
ROWS = {
    "mnist": dict(data="mnist", task="classification", dtype="float32", fixed_epochs=True,
                  params=dict(COMMON, hidden_layer_sizes=(256, 128)), max_iter=(20, 2)),
    "digits": dict(data="digits", task="classification", dtype="float32", fixed_epochs=True,
                   params=dict(COMMON, hidden_layer_sizes=(100,)), max_iter=(100, 3)),
    "digits-lbfgs": dict(data="digits", task="classification", dtype="float64",
                         fixed_epochs=False, max_iter=(200, 5),
                         params=dict(solver="lbfgs", hidden_layer_sizes=(100,))),
    "regression-adam": dict(data="regression", task="regression", dtype="float32",
                            fixed_epochs=True, max_iter=(200, 3),
                            params=dict(solver="adam", hidden_layer_sizes=(100,))),
    "regression-lbfgs": dict(data="regression", task="regression", dtype="float64",
                             fixed_epochs=False, max_iter=(200, 5),
                             params=dict(solver="lbfgs", hidden_layer_sizes=(100,))),
}
#: ``--only`` names that stand for several rows.
GROUPS = {"lbfgs": ("digits-lbfgs", "regression-lbfgs"),
          "regression": ("regression-adam", "regression-lbfgs")}
SAME_THREADS = "scikit-learn, portamlp's BLAS threads"
LABELS = ("scikit-learn", SAME_THREADS, "portamlp")


def load(name: str, quick: bool, dtype: str):
    """``(x, y, x_test, y_test, dataset)``: x in ``dtype``, y int64 labels (classification) or
    standardised values in ``dtype`` (regression), and the data set's name."""
    from sklearn.model_selection import train_test_split

    if name == "mnist":
        n, n_test = (2_000, 500) if quick else (None, None)
        x, y = portamlp.datasets.load_mnist("train", backend="numpy", length=n)  # ÷255
        xt, yt = portamlp.datasets.load_mnist("test", backend="numpy", length=n_test)
        return x.astype(dtype), y, xt.astype(dtype), yt, "mnist"
    if name == "digits":
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        x = (x / 16.0).astype(dtype)
        x, xt, y, yt = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
        return x, y, xt, yt, "digits"
    from sklearn.datasets import fetch_california_housing, load_diabetes
    from sklearn.preprocessing import StandardScaler

    try:
        x, y = fetch_california_housing(return_X_y=True, download_if_missing=False)
        dataset = "california_housing"
        if quick:
            x, y = x[:2_000], y[:2_000]
    except OSError:  # not on disk, and no download
        x, y = load_diabetes(return_X_y=True)
        dataset = "diabetes"
    x, xt, y, yt = train_test_split(x, y, test_size=0.25, random_state=0)
    scaler = StandardScaler().fit(x)
    mean, std = y.mean(), y.std()
    return (scaler.transform(x).astype(dtype), ((y - mean) / std).astype(dtype),
            scaler.transform(xt).astype(dtype), ((yt - mean) / std).astype(dtype), dataset)


def layer_sizes(data, spec: dict) -> tuple[int, ...]:
    n_out = len(np.unique(data[1])) if spec["task"] == "classification" else 1
    return (data[0].shape[1], *spec["params"]["hidden_layer_sizes"], n_out)


def portamlp_threads(data, spec: dict) -> int:
    """The BLAS threads portamlp's training would use now (it decides per fit), at the batch
    it trains with: ``batch_size`` (``"auto"``: ``min(200, n)``), or for L-BFGS the rows it
    evaluates at a time."""
    n = data[0].shape[0]
    if spec["params"]["solver"] == "lbfgs":
        batch = min(n, LBFGS_CHUNK)
    else:
        batch = min(spec["params"].get("batch_size", 200), n)
    return blas_threads(layer_sizes(data, spec), batch)


def fit_once(estimator_class, params: dict, data, spec: dict,
             threads: int | None = None) -> dict:
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    x, y, xt, yt = data[:4]
    est = estimator_class(**params)
    limit = threadpool_limits(limits=threads, user_api="blas") if threads else \
        contextlib.nullcontext()
    with warnings.catch_warnings(record=True) as caught, limit:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        est.fit(x, y)
        seconds = time.perf_counter() - start
    converged = True
    for w in caught:  # any other warning is shown as usual
        if issubclass(w.category, ConvergenceWarning):
            converged = False
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    n_iter = int(est.n_iter_)
    if spec["fixed_epochs"] and n_iter != params["max_iter"]:
        raise RuntimeError(f"{estimator_class.__module__} ran {n_iter} epochs, not "
                           f"{params['max_iter']}: the comparison needs equal epochs")
    if not 1 <= n_iter <= params["max_iter"]:
        raise RuntimeError(f"{estimator_class.__module__} reports n_iter_={n_iter}")
    score = "test_accuracy" if spec["task"] == "classification" else "test_r2"
    result = {"seed": params["random_state"], "fit_seconds": seconds, "blas_threads": threads,
              score: float(est.score(xt, yt)), "n_iter": n_iter,
              "final_loss": float(est.loss_)}
    if not spec["fixed_epochs"]:  # an Adam row's warning at max_iter is by design
        result["converged"] = converged
    return result


def compare(name: str, quick: bool, seeds) -> dict:
    from sklearn.neural_network import MLPClassifier as SklearnClassifier
    from sklearn.neural_network import MLPRegressor as SklearnRegressor

    from portamlp.sklearn import MLPClassifier, MLPRegressor

    spec = ROWS[name]
    classify = spec["task"] == "classification"
    ours, theirs = (MLPClassifier, SklearnClassifier) if classify else \
        (MLPRegressor, SklearnRegressor)
    score = "test_accuracy" if classify else "test_r2"
    max_iter = spec["max_iter"][1 if quick else 0]
    data = load(spec["data"], quick, spec["dtype"])
    settings = dict(spec["params"], max_iter=max_iter)
    if spec["fixed_epochs"]:
        settings["n_iter_no_change"] = max_iter
    runs: dict[str, list] = {label: [] for label in LABELS}
    load_before = os.getloadavg()
    for seed in seeds:
        params = dict(settings, random_state=seed)
        # rotate the order so none always runs on a warmer (or busier) machine
        order = list(LABELS)
        order = order[seed % 3:] + order[:seed % 3]
        for label in order:
            cls = ours if label == "portamlp" else theirs
            chosen = portamlp_threads(data, spec)  # what portamlp would choose now
            result = fit_once(cls, params, data, spec,
                              chosen if label == SAME_THREADS else None)
            if label == "portamlp":
                result["blas_threads"] = chosen  # it decides again inside fit, about the same
            runs[label].append(result)
            shown = f"{result[score]:.2%}" if classify else f"R² {result[score]:.4f}"
            print(f"  {name} seed {seed} {label}: {result['fit_seconds']:.2f} s, {shown}, "
                  f"{result['n_iter']} iterations"
                  + ("" if result.get("converged", True) else ", not converged"), flush=True)
    out: dict = {"row": name, "dataset": data[4],
                 "network": "-".join(map(str, layer_sizes(data, spec))),
                 "task": spec["task"], "solver": spec["params"]["solver"],
                 "dtype": spec["dtype"], "fixed_epochs": spec["fixed_epochs"],
                 "measured": datetime.datetime.now().isoformat(timespec="seconds"),
                 "load_average_before": load_before, "load_average_after": os.getloadavg(),
                 "settings": {k: (list(v) if isinstance(v, tuple) else v)
                              for k, v in settings.items()},
                 "n_train": int(data[0].shape[0]), "n_test": int(data[2].shape[0])}
    for label, results in runs.items():
        summary = {"runs": results,
                   "fit_seconds": statistics.median(r["fit_seconds"] for r in results),
                   "fit_seconds_best": min(r["fit_seconds"] for r in results),
                   score: statistics.median(r[score] for r in results),
                   "n_iter": statistics.median(r["n_iter"] for r in results),
                   "seconds_per_iteration": statistics.median(
                       r["fit_seconds"] / r["n_iter"] for r in results)}
        if not spec["fixed_epochs"]:
            summary["converged_runs"] = sum(r["converged"] for r in results)
        out[label] = summary
    mine = out["portamlp"]
    out["speedup"] = out["scikit-learn"]["fit_seconds"] / mine["fit_seconds"]
    out["speedup_same_threads"] = out[SAME_THREADS]["fit_seconds"] / mine["fit_seconds"]
    if not spec["fixed_epochs"]:  # the iterations differ: the time of one compares the code
        out["speedup_per_iteration_same_threads"] = (
            out[SAME_THREADS]["seconds_per_iteration"] / mine["seconds_per_iteration"])
    if classify:
        out["accuracy_points"] = 100 * (mine[score] - out["scikit-learn"][score])
    else:
        out["r2_difference"] = mine[score] - out["scikit-learn"][score]
    return out


def adam_classification(row: dict) -> bool:
    """The rows of the first table (rows saved before the others existed lack the keys)."""
    return row.get("task", "classification") == "classification" and \
        row.get("solver", "adam") == "adam"


def table(rows: list[dict]) -> str:
    """The Adam classification rows: fit time and accuracy."""
    lines = ["| data set | network | estimator | fit time (median) | test accuracy (median) |",
             "|---|---|---|---|---|"]
    for row in filter(adam_classification, rows):
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


def solver_table(rows: list[dict]) -> str:
    """The L-BFGS and regression rows: also iterations, time per iteration, convergence."""
    lines = ["| row | data set | network, dtype | estimator | fit time (median) | "
             "per iteration | iterations: median (each seed) | converged | "
             "test score (median) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if adam_classification(row):
            continue
        classify = row["task"] == "classification"
        for label in LABELS:
            result = row[label]
            note = diff = ""
            per_iteration = f"{result['seconds_per_iteration'] * 1e3:.2f} ms"
            if label == "portamlp":
                note = (f" ({row['speedup']:.2f}× faster; {row['speedup_same_threads']:.2f}× "
                        "with the same threads)")
                if "speedup_per_iteration_same_threads" in row:
                    per_iteration += (f" ({row['speedup_per_iteration_same_threads']:.2f}× "
                                      "with the same threads)")
                diff = (f" ({row['accuracy_points']:+.2f} points)" if classify
                        else f" ({row['r2_difference']:+.4f})")
            each = ", ".join(str(r["n_iter"]) for r in result["runs"])
            converged = (f"{result['converged_runs']}/{len(result['runs'])}"
                         if "converged_runs" in result else "— (fixed epochs)")
            shown = (f"{result['test_accuracy']:.2%}" if classify
                     else f"R² {result['test_r2']:.4f}")
            lines.append(f"| {row['row']} | {row['dataset']} | {row['network']}, "
                         f"{row['dtype']} | {label} | {result['fit_seconds']:.3f} s{note} | "
                         f"{per_iteration} | {result['n_iter']:g} ({each}) | {converged} | "
                         f"{shown}{diff} |")
    return "\n".join(lines)


def selected(only: str | None) -> list[str]:
    """The row names ``--only`` asks for (all without it), in the tables' order."""
    if only is None:
        return list(ROWS)
    wanted = set()
    for word in filter(None, (w.strip() for w in only.split(","))):
        if word not in ROWS and word not in GROUPS:
            raise SystemExit(f"--only: unknown row {word!r}; rows: {', '.join(ROWS)}; "
                             f"groups: {', '.join(GROUPS)}")
        wanted.update(GROUPS.get(word, (word,)))
    return [name for name in ROWS if name in wanted]


def kept_rows(path: Path, measured: list[str]) -> tuple[list[dict], dict | None]:
    """The rows of an earlier full (not ``--quick``) report at ``path`` that this run does not
    measure again, and where they came from."""
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError):
        return [], None
    if previous.get("quick"):
        return [], None
    rows = [r for r in previous.get("rows", []) if r.get("row", r["dataset"]) in ROWS
            and r.get("row", r["dataset"]) not in measured]
    if not rows:
        return [], None
    source = {"rows": [r.get("row", r["dataset"]) for r in rows],
              "machine": previous.get("machine"), "scikit-learn": previous.get("scikit-learn"),
              "portamlp": previous.get("portamlp"), "seeds": previous.get("seeds")}
    for r in rows:
        r.setdefault("row", r["dataset"])
    return rows, source


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings (a test)")
    parser.add_argument("--output", default=str(HERE / "results" / "sklearn_compare.json"))
    parser.add_argument("--only", help="comma-separated rows to measure (the others are kept "
                        f"from --output): {', '.join(ROWS)}, or {', '.join(GROUPS)}")
    args = parser.parse_args(argv)
    import sklearn

    names = selected(args.only)
    seeds = SEEDS[:1] if args.quick else SEEDS
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        print(f"{var} is {'set' if var in os.environ else 'unset'}")
    print(f"machine: {machine()}, scikit-learn {sklearn.__version__}, "
          f"portamlp {portamlp.__version__}")
    rows = [compare(name, args.quick, seeds) for name in names]
    print()
    print(table(rows))
    print()
    print(solver_table(rows))
    source = None
    if args.only is not None and not args.quick:
        kept, source = kept_rows(Path(args.output), names)
        order = list(ROWS)
        rows = sorted(rows + kept, key=lambda r: order.index(r["row"]))
    mnist = next((r for r in rows if r["dataset"] == "mnist"), None)
    report = {"machine": machine(), "scikit-learn": sklearn.__version__,
              "portamlp": portamlp.__version__, "numpy": np.__version__, "quick": args.quick,
              "seeds": list(seeds), "common_settings": COMMON,
              "openblas_overrides": {v: os.environ.get(v) for v in ("OPENBLAS_CORETYPE",
                                                                    "OPENBLAS_L2_SIZE")},
              "measured_rows": names, "rows": rows, "table": table(rows),
              "solver_table": solver_table(rows)}
    if source is not None:
        report["kept_rows"] = source
        print(f"\nkept from {args.output} as measured before: {', '.join(source['rows'])}")
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
