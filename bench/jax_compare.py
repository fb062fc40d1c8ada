"""JAX's compiled epoch against its peers, interleaved in one run on the same machine.

Rows (the issue's targets):

* 784-30-10, sigmoid, quadratic, batch 10, η = 3.0 (the original program's setting), 50,000
  images: portamlp's compiled JAX epoch against the plain hand-written NumPy loop
  (``bench/floor.py``), portamlp on NumPy, and JAX without compilation (the portable step on
  JAX arrays, ``fast_path="off"``; timed on 5,000 images and scaled by 10, since each of its
  ~20 operations per step is dispatched from Python);
* 784-256-128-10, ReLU, cross-entropy, momentum 0.9, batch 128, 60,000 images: the compiled JAX
  epoch against portamlp on NumPy and PyTorch eager (2 threads).

Each side trains one epoch per round; rounds alternate the sides and each side's best epoch
counts. The compiled epoch's compile time (``TrainResult.compile_seconds``, spent before the
first epoch starts) is reported apart and not counted as training time. Test accuracy after
one epoch is printed as a sanity check (float32; runs of different libraries differ in their
rounding, so weights are not compared here).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/jax_compare.py
    python bench/jax_compare.py --quick      # seconds: checks the script's logic
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import machine, write_report  # noqa: E402
from _common import run_torch as run_torch_on  # noqa: E402
from compare import run_floor  # noqa: E402

import portamlp  # noqa: E402

ROWS = [
    dict(name="784-30-10, sigmoid, quadratic, batch 10", layers=(784, 30, 10), relu=False,
         batch=10, lr=3.0, momentum=0.0, n_train=50_000,
         sides=("jax compiled", "numpy loop", "portamlp numpy", "jax uncompiled")),
    dict(name="784-256-128-10, ReLU, cross-entropy, momentum, batch 128",
         layers=(784, 256, 128, 10), relu=True, batch=128, lr=0.05, momentum=0.9,
         n_train=60_000, sides=("jax compiled", "portamlp numpy", "pytorch eager")),
]
#: The uncompiled JAX step is timed on this fraction of the rows (and scaled back).
UNCOMPILED_FRACTION = 10


def _portamlp(cfg, data, backend, fast_path="auto", n=None):
    """``(epoch seconds, test accuracy, compile seconds)`` of one portamlp epoch."""
    x, y, xt, yt = data
    n = cfg["n_train"] if n is None else n
    if backend == "jax":
        import jax.numpy as jnp

        x, y, xt, yt = (jnp.asarray(a) for a in (x, y, xt, yt))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = portamlp.train(
            x=x[:n], y=y[:n], test_data=(xt, yt), layers=cfg["layers"],
            activation="relu" if cfg["relu"] else "sigmoid",
            cost="cross_entropy" if cfg["relu"] else "quadratic", batch_size=cfg["batch"],
            learning_rate=cfg["lr"], momentum=cfg["momentum"], epochs=1, seed=0,
            backend=backend, fast_path=fast_path, progress=False)
    if backend == "jax" and fast_path != "off":
        assert result.fast_step, "the compiled epoch did not run"
    return result.history[0].seconds, result.test_accuracy, result.compile_seconds


def side(name, cfg, data):
    """One epoch of one side: ``(seconds for the row's images, accuracy, compile seconds)``."""
    if name == "jax compiled":
        return _portamlp(cfg, data, "jax", "on")
    if name == "jax uncompiled":
        n = cfg["n_train"] // UNCOMPILED_FRACTION
        seconds, accuracy, _ = _portamlp(cfg, data, "jax", "off", n=n)
        return seconds * UNCOMPILED_FRACTION, accuracy, 0.0
    if name == "portamlp numpy":
        return _portamlp(cfg, data, "numpy")
    if name == "numpy loop":  # bench/floor.py, as bench/compare.py runs it
        seconds, accuracy = run_floor(cfg, data, 1)
        return seconds, accuracy, 0.0
    if name == "pytorch eager":
        seconds, accuracy = run_torch_on(cfg, data, 1, device="cpu", threads=2)
        return seconds, accuracy, 0.0
    raise ValueError(name)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny settings, one round")
    parser.add_argument("--output", help="the JSON report (default: bench/results/"
                        "jax_compare.json; none with --quick)")
    args = parser.parse_args(argv)
    import jax

    rows = [dict(r) for r in ROWS]
    if args.quick:
        args.rounds = 1
        for r in rows:
            r["n_train"] = 2000
    x, y = portamlp.datasets.load_mnist("train", backend="numpy")
    xt, yt = portamlp.datasets.load_mnist("test", backend="numpy")
    data = (x, y, xt, yt)
    report = {"machine": machine(), "jax": jax.__version__, "rounds": args.rounds, "rows": []}
    print(f"{report['machine']}, JAX {jax.__version__}; best of {args.rounds} interleaved "
          "rounds, one epoch each")
    for cfg in rows:
        best: dict[str, tuple] = {}
        compiles, first = [], None
        for _ in range(args.rounds):
            for name in cfg["sides"]:
                seconds, accuracy, compiled = side(name, cfg, data)
                if compiled:
                    compiles.append(compiled)
                    first = seconds if first is None else first
                if name not in best or seconds < best[name][0]:
                    best[name] = (seconds, accuracy)
        base = best["jax compiled"][0]
        print(f"\n{cfg['name']} ({cfg['n_train']:,} images)")
        for name, (seconds, accuracy) in best.items():
            print(f"  {name:<16} {seconds:8.2f} s/epoch  x{seconds / base:5.2f} of the compiled "
                  f"JAX epoch  (test accuracy {accuracy:.2%})")
        print(f"  compiling the JAX epoch: {min(compiles):.2f} s (best) to {max(compiles):.2f} s "
              "(not counted above); the process's first compiled epoch took "
              f"{first:.2f} s (JAX also compiles the per-epoch summary's operations then)")
        if "numpy loop" in best:
            print(f"  compiled JAX / plain NumPy loop: {base / best['numpy loop'][0]:.2f}x "
                  "(target: within 1.4x)")
        report["rows"].append({"name": cfg["name"], "images": cfg["n_train"],
                               "seconds": {k: v[0] for k, v in best.items()},
                               "accuracy": {k: v[1] for k, v in best.items()},
                               "compile_seconds": compiles, "first_epoch_seconds": first})
    output = args.output or (None if args.quick else HERE / "results" / "jax_compare.json")
    if output is not None:
        write_report(output, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
