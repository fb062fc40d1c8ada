"""portamlp against its peers, side by side, in one process, on the same data and settings.

Peers: a plain hand-written NumPy loop (bench/floor.py, the floor), PyTorch eager on the CPU
(2 threads), scikit-learn's MLPClassifier (solver="sgd"; it always uses the log-loss, so it is
timed but its accuracy is not comparable on the quadratic-cost rows), and the original Rust
program when ``--rust-command`` gives a way to run it. Each row reports seconds per epoch (best of
``--repeats`` epochs), each peer's ratio to portamlp, test accuracy after those epochs and the
process's peak resident memory so far. Then: time to 98 % test accuracy, peak memory of a full
training run and import time, each in a fresh subprocess, and the effect of BLAS threads while a
busy loop keeps one core occupied.

Run it with the OpenBLAS overrides of this machine unset, for this command only:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/compare.py
    python bench/compare.py --quick     # seconds, tiny settings: checks the script's logic
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import floor  # noqa: E402
from _common import machine, write_report  # noqa: E402
from _common import run_torch as run_torch_on  # noqa: E402

import portamlp  # noqa: E402

CONFIGS = [
    dict(name="784-30-10, sigmoid, quadratic, batch 10", layers=(784, 30, 10), relu=False,
         batch=10, lr=3.0, momentum=0.0, n_train=50_000),
    dict(name="784-100-50-10, sigmoid, quadratic, batch 10", layers=(784, 100, 50, 10),
         relu=False, batch=10, lr=3.0, momentum=0.0, n_train=50_000),
    dict(name="784-256-128-10, ReLU, cross-entropy, momentum, batch 128",
         layers=(784, 256, 128, 10), relu=True, batch=128, lr=0.05, momentum=0.9, n_train=60_000),
    dict(name="784-1024-1024-10, ReLU, cross-entropy, momentum, batch 256",
         layers=(784, 1024, 1024, 10), relu=True, batch=256, lr=0.05, momentum=0.9,
         n_train=60_000),
]
#: The original Rust program, release build, measured on this machine (seconds per run of one
#: epoch on 50,000 images; from the project's issue). Used when --rust-command is not given.
RUST_RECORDED = {"784-30-10, sigmoid, quadratic, batch 10": 5.95,
                 "784-100-50-10, sigmoid, quadratic, batch 10": 21.6}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20




# ------------------------------------------------------------------------------------ peers
def run_portamlp(cfg, data, repeats, threads=None):
    x, y, xt, yt = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = portamlp.train(
            x=x[:cfg["n_train"]], y=y[:cfg["n_train"]], test_data=(xt, yt),
            layers=cfg["layers"], activation="relu" if cfg["relu"] else "sigmoid",
            cost="cross_entropy" if cfg["relu"] else "quadratic", batch_size=cfg["batch"],
            learning_rate=cfg["lr"], momentum=cfg["momentum"], epochs=repeats, seed=0,
            backend="numpy", progress=False, threads=threads)
    return min(r.seconds for r in result.history), result.test_accuracy


def run_floor(cfg, data, repeats, threads=None):
    from threadpoolctl import threadpool_limits

    x, y, xt, yt = data
    x, y = x[:cfg["n_train"]], y[:cfg["n_train"]]
    onehot = np.eye(10, dtype=np.float32)[y]
    rng = np.random.default_rng(0)
    ws, bs = floor.init(cfg["layers"], rng, he=cfg["relu"])
    vs = [(np.zeros_like(w), np.zeros_like(b)) for w, b in zip(ws, bs)]
    times = []
    with threadpool_limits(limits=threads, user_api="blas"):
        for _ in range(repeats):
            start = time.perf_counter()
            floor.train_epoch(x, onehot, ws, bs, vs, lr=cfg["lr"], batch=cfg["batch"], rng=rng,
                              relu=cfg["relu"], softmax=cfg["relu"], mu=cfg["momentum"])
            times.append(time.perf_counter() - start)
    return min(times), floor.accuracy(xt, yt, ws, bs, relu=cfg["relu"])


def run_torch(cfg, data, repeats, threads=2):
    return run_torch_on(cfg, data, repeats, device="cpu", threads=threads or 2)


def run_sklearn(cfg, data, repeats, threads=None):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    x, y, xt, yt = data
    clf = MLPClassifier(hidden_layer_sizes=cfg["layers"][1:-1],
                        activation="relu" if cfg["relu"] else "logistic", solver="sgd",
                        batch_size=cfg["batch"], learning_rate_init=min(cfg["lr"], 0.1),
                        momentum=cfg["momentum"], nesterovs_momentum=False, alpha=0.0,
                        shuffle=True, random_state=0)
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(repeats):
            start = time.perf_counter()
            clf.partial_fit(x[:cfg["n_train"]], y[:cfg["n_train"]], classes=np.arange(10))
            times.append(time.perf_counter() - start)
    return min(times), float(clf.score(xt, yt))


def run_rust(cfg, template, repeats):
    """Time the original program (one epoch per run) through a user-given command template."""
    layers = ",".join(map(str, cfg["layers"]))
    cmd = template.format(layers=layers, epochs=1, batch=cfg["batch"], lr=cfg["lr"])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, shell=True, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return min(times), None


PEERS = {"portamlp": run_portamlp, "numpy floor": run_floor, "torch eager": run_torch,
         "scikit-learn": run_sklearn}


def available_peers():
    out = {"portamlp": None, "numpy floor": None}
    for name, module in (("torch eager", "torch"), ("scikit-learn", "sklearn")):
        try:
            __import__(module)
            out[name] = None
        except ImportError:
            out[name] = f"{module} is not installed"
    return out


# --------------------------------------------------------------------------- extra checks
def fresh(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def peak_memory_of_full_run(quick: bool) -> dict:
    length = 2000 if quick else None
    return fresh(f"""
import json, portamlp, warnings
warnings.simplefilter("ignore")
r = portamlp.train(epochs=1, seed=0, backend="numpy", train_length={length!r})
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({{"peak_rss_mb": int(hwm) / 1024, "test_accuracy": r.test_accuracy}}))
""")


def import_time() -> dict:
    code = ("import json, sys, time; t = time.perf_counter(); import portamlp; "
            "d = time.perf_counter() - t; print(json.dumps({'seconds': d, 'heavy': sorted(m for m "
            "in ('cupy', 'torch', 'matplotlib', 'sklearn') if m in sys.modules)}))")
    runs = [fresh(code) for _ in range(5)]
    return {"seconds": min(r["seconds"] for r in runs), "heavy_modules": runs[0]["heavy"]}


def time_to_98(quick: bool) -> dict:
    """Training seconds until the test accuracy first reaches 98 %, portamlp and the floor.

    Both run the same recipe: standardised pixels, He initialisation, momentum SGD with a
    cosine schedule planned over ``epochs`` epochs, all 60,000 training images; the test
    accuracy is checked after every epoch, outside the timed part.
    """
    n = 3000 if quick else None
    x, y = (np.asarray(a) for a in portamlp.datasets.load_mnist(
        "train", backend="numpy", scale="standardize", length=n))
    xt, yt = (np.asarray(a) for a in portamlp.datasets.load_mnist(
        "test", backend="numpy", scale="standardize", length=500 if quick else None))
    settings = dict(layers=(784, 256, 128, 10), batch=128, lr=0.1, momentum=0.9,
                    epochs=2 if quick else 10)
    target = 0.98
    # portamlp: the test accuracy is checked in a callback, outside the timed epoch.
    accs = []

    def check(record, network):
        accs.append(network.evaluate(xt, yt))
        return accs[-1] >= target

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = portamlp.train(x=x, y=y, layers=settings["layers"], activation="relu",
                           cost="cross_entropy", batch_size=settings["batch"],
                           learning_rate=settings["lr"], momentum=settings["momentum"],
                           learning_rate_schedule="cosine", epochs=settings["epochs"], seed=0,
                           callbacks=[check], backend="numpy", progress=False)
    ours = {"seconds": sum(h.seconds for h in r.history), "epochs": len(r.history),
            "reached": accs[-1] >= target, "accuracy": accs[-1]}
    onehot = np.eye(10, dtype=np.float32)[y]
    rng = np.random.default_rng(0)
    ws, bs = floor.init(settings["layers"], rng, he=True)
    vs = [(np.zeros_like(w), np.zeros_like(b)) for w, b in zip(ws, bs)]
    spent, acc, epochs = 0.0, 0.0, 0
    while epochs < settings["epochs"] and acc < target:
        lr = 0.5 * settings["lr"] * (1 + np.cos(np.pi * epochs / settings["epochs"]))
        start = time.perf_counter()
        floor.train_epoch(x, onehot, ws, bs, vs, lr=lr, batch=settings["batch"],
                          rng=rng, relu=True, softmax=True, mu=settings["momentum"])
        spent += time.perf_counter() - start
        epochs += 1
        acc = floor.accuracy(xt, yt, ws, bs, relu=True)
    return {"settings": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
            "portamlp": ours, "floor": {"seconds": spent, "epochs": epochs,
                                        "reached": acc >= target, "accuracy": acc}}


def busy_core_effect(data, quick: bool) -> list[dict]:
    """Seconds per epoch at batch 100 with one core kept busy by another process."""
    cfg = dict(name="784-100-50-10, sigmoid, batch 100", layers=(784, 100, 50, 10), relu=False,
               batch=100, lr=3.0, momentum=0.0, n_train=2000 if quick else 50_000)
    busy = subprocess.Popen([sys.executable, "-c",
                             "import time\nend = time.time() + 600\nwhile time.time() < end: pass"])
    rows = []
    try:
        time.sleep(0.5)
        for label, fn, threads in (("portamlp, default threads", run_portamlp, None),
                                   ("portamlp, threads=2", run_portamlp, 2),
                                   ("numpy floor, 1 BLAS thread", run_floor, 1),
                                   ("numpy floor, 2 BLAS threads", run_floor, 2)):
            seconds, _ = fn(cfg, data, 2, threads=threads)
            rows.append({"peer": label, "seconds_per_epoch": seconds})
    finally:
        busy.kill()
        busy.wait()
    return rows


# -------------------------------------------------------------------------------- report
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings (a logic check)")
    parser.add_argument("--repeats", type=int, default=3, help="epochs per peer (best is kept)")
    parser.add_argument("--rust-command", help="shell command template running the original "
                        "program for one epoch, with {layers}, {batch}, {lr} placeholders")
    parser.add_argument("--only", help="run only the configurations whose name contains this")
    parser.add_argument("--output", default=str(HERE / "results" / "compare.json"))
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats

    print(f"machine: {machine()}")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        print(f"{var} is {'SET to ' + os.environ[var] if var in os.environ else 'unset'}")
    try:
        from threadpoolctl import threadpool_info

        blas = [f"{i['internal_api']} {i.get('version')} {i.get('architecture')}, "
                f"{i['num_threads']} threads" for i in threadpool_info()
                if i["user_api"] == "blas"]
        print(f"BLAS: {'; '.join(blas)}")
    except ImportError:
        pass
    x, y = portamlp.datasets.load_mnist("train", backend="numpy")
    xt, yt = portamlp.datasets.load_mnist("test", backend="numpy")
    x, y, xt, yt = (np.asarray(a) for a in (x, y, xt, yt))
    if args.quick:
        x, y, xt, yt = x[:3000], y[:3000], xt[:500], yt[:500]
    data = (x, y, xt, yt)
    peers = available_peers()
    for name, why in peers.items():
        if why:
            print(f"skipping {name}: {why}")

    report = {"machine": machine(), "quick": args.quick, "openblas_env": {
        v: os.environ.get(v) for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}, "rows": []}
    for cfg in CONFIGS:
        if args.only and args.only not in cfg["name"]:
            continue
        cfg = dict(cfg, n_train=min(cfg["n_train"], x.shape[0]))
        print(f"\n### {cfg['name']} ({cfg['n_train']:,} images)")
        print("| peer | s / epoch | × portamlp | test accuracy | peak RSS so far (MB) |")
        print("|---|---|---|---|---|")
        results = {}
        for name, fn in PEERS.items():
            if peers[name]:
                continue
            seconds, acc = fn(cfg, data, repeats)
            results[name] = {"seconds_per_epoch": seconds, "test_accuracy": acc,
                             "peak_rss_mb": peak_rss_mb()}
        if args.rust_command and not cfg["relu"]:
            seconds, _ = run_rust(cfg, args.rust_command, repeats)
            results["original Rust program"] = {"seconds_per_epoch": seconds,
                                                "test_accuracy": None, "peak_rss_mb": None}
        base = results["portamlp"]["seconds_per_epoch"]
        for name, r in results.items():
            r["ratio_to_portamlp"] = r["seconds_per_epoch"] / base
            acc = f"{r['test_accuracy']:.2%}" if r["test_accuracy"] is not None else "—"
            if name == "scikit-learn" and not cfg["relu"]:
                acc += " (log-loss)"
            rss = f"{r['peak_rss_mb']:.0f}" if r["peak_rss_mb"] else "—"
            print(f"| {name} | {r['seconds_per_epoch']:.3f} | {r['ratio_to_portamlp']:.2f} | "
                  f"{acc} | {rss} |", flush=True)
        if cfg["name"] in RUST_RECORDED and not args.rust_command:
            rec = RUST_RECORDED[cfg["name"]]
            print(f"| original Rust program (recorded earlier, not this run) | {rec} | "
                  f"{rec / base:.1f} | — | — |")
        report["rows"].append({"config": {k: list(v) if isinstance(v, tuple) else v
                                          for k, v in cfg.items()}, "results": results})

    print("\n### time to 98 % test accuracy (784-256-128-10, ReLU, cross-entropy, momentum 0.9, "
          "batch 128, η 0.1 with a cosine schedule over 10 epochs, standardised pixels, 60,000 "
          "images)")
    t98 = time_to_98(args.quick)
    for who in ("portamlp", "floor"):
        r = t98[who]
        print(f"- {who}: {r['seconds']:.2f} s of training, {r['epochs']} epochs, "
              f"{'reached' if r['reached'] else 'NOT reached'} ({r['accuracy']:.2%})")
    report["time_to_98"] = t98

    mem = peak_memory_of_full_run(args.quick)
    imp = import_time()
    print(f"\npeak RSS of `portamlp.train(epochs=1)` on full MNIST, fresh process: "
          f"{mem['peak_rss_mb']:.0f} MB")
    print(f"`import portamlp`: {imp['seconds']:.3f} s (best of 5); heavy modules imported: "
          f"{imp['heavy_modules'] or 'none'}")
    report["full_run_memory"], report["import"] = mem, imp

    print("\n### one core kept busy by another process (784-100-50-10, batch 100)")
    busy = busy_core_effect(data, args.quick)
    for row in busy:
        print(f"- {row['peer']}: {row['seconds_per_epoch']:.3f} s / epoch")
    report["busy_core"] = busy

    write_report(args.output, report)
    return report


if __name__ == "__main__":
    main()
