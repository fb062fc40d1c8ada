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

Then, each in a fresh process (``--first-run`` alone skips the rows): the default run on the
embedded MNIST, ``portamlp.train(backend=..., epochs=3)``, on JAX twice in one process and on
NumPy: each epoch's seconds (with the 10,000 validation images), the compile seconds and the
wall time with the imports: what a process's first JAX run pays.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/jax_compare.py
    python bench/jax_compare.py --quick      # seconds: checks the script's logic
"""

from __future__ import annotations

import argparse
import json
import subprocess
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


#: A fresh process: the default run on the embedded MNIST, twice on JAX, once on NumPy.
FIRST_RUN = '''
import json, sys, time
start = time.perf_counter()
import portamlp
out = []
for backend in sys.argv[1].split(","):
    result = portamlp.train(backend=backend, epochs=int(sys.argv[2]), seed=0, progress=False,
                            **json.loads(sys.argv[3]))
    out.append({"backend": backend, "epochs": [h.seconds for h in result.history],
                "compile": result.compile_seconds, "wall": time.perf_counter() - start,
                "test_accuracy": result.test_accuracy})
print(json.dumps(out))
'''


def first_runs(quick: bool) -> list[dict]:
    """The default run in fresh processes: JAX twice in one, NumPy in another."""
    small = dict(train_length=2000, validation_length=500, test_length=500) if quick else {}
    runs = []
    for backends in ("jax,jax", "numpy"):
        proc = subprocess.run([sys.executable, "-c", FIRST_RUN, backends, "1" if quick else "3",
                               json.dumps(small)], capture_output=True, text=True, check=True)
        runs += json.loads(proc.stdout.strip().splitlines()[-1])
    print("\nthe default run, portamlp.train(backend=..., epochs=3), in fresh processes:")
    for i, r in enumerate(runs):
        which = "first" if i == 0 else ("second, same process" if r["backend"] == "jax" else "")
        print(f"  {r['backend']:<6}{' (' + which + ')' if which else '':<24} epochs "
              + ", ".join(f"{s:.2f}" for s in r["epochs"]) + f" s; compile {r['compile']:.2f} s;"
              f" wall {r['wall']:.1f} s since the process started; test accuracy "
              f"{r['test_accuracy']:.2%}")
    return runs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny settings, one round")
    parser.add_argument("--first-run", action="store_true",
                        help="only the first-run measurement (fresh processes)")
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
    for cfg in [] if args.first_run else rows:
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
    report["first_run"] = first_runs(args.quick)
    name = "jax_first_run.json" if args.first_run else "jax_compare.json"
    output = args.output or (None if args.quick else HERE / "results" / name)
    if output is not None:
        write_report(output, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
