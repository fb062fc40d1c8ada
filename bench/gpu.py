"""portamlp on a GPU (CuPy backend) against PyTorch on CUDA and portamlp on the host CPUs.

Peers, all in one run: portamlp's fast CuPy step (portamlp.fast: fused kernels, 100 steps per
CUDA graph), portamlp's portable step on CuPy (``fast_path="off"``), PyTorch eager, PyTorch with
the whole step captured in a CUDA graph and replayed per batch, and portamlp on NumPy on the
same machine's CPUs. On the wide network the fast step is its cuBLAS variant (products through
cuBLAS, the elementwise work fused around them).

Configurations: the two batch-10 sigmoid networks of the original program, a ReLU network at
batch 128, and a wide 784-4096-4096-10 network at batch 1024, for which the achieved TFLOP/s
are reported (6 floating-point operations per weight per sample for a training step, less the
input gradient of the first layer, which backpropagation does not need).

On a machine without a CUDA device the GPU rows are skipped with the reason and the CPU rows
still run, so the script's logic is exercised everywhere:

    python bench/gpu.py             # full run (on a GPU machine)
    python bench/gpu.py --quick     # tiny settings
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import warnings
from pathlib import Path

import numpy as np

import portamlp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import run_torch, run_torch_graphed, write_report  # noqa: E402

CONFIGS = [
    dict(name="784-100-50-10, sigmoid, batch 10", layers=(784, 100, 50, 10), relu=False,
         batch=10, lr=3.0, momentum=0.0, n_train=50_000),
    dict(name="784-30-10, sigmoid, batch 10", layers=(784, 30, 10), relu=False, batch=10,
         lr=3.0, momentum=0.0, n_train=50_000),
    dict(name="784-256-128-10, ReLU/CE, batch 128", layers=(784, 256, 128, 10), relu=True,
         batch=128, lr=0.05, momentum=0.9, n_train=50_000),
    dict(name="784-4096-4096-10, ReLU/CE, batch 1024", layers=(784, 4096, 4096, 10), relu=True,
         batch=1024, lr=0.05, momentum=0.9, n_train=50_000),
]


def training_flops(layers, n_samples: int) -> float:
    """Floating-point operations of one epoch of training (multiply-adds count as 2)."""
    products = [a * b for a, b in zip(layers[:-1], layers[1:])]
    forward = 2 * sum(products)
    weight_grads = 2 * sum(products)
    input_grads = 2 * sum(products[1:])
    return float(n_samples) * (forward + weight_grads + input_grads)


FAST, PORTABLE = "portamlp fast step (cupy)", "portamlp portable step (cupy)"
TORCH, TORCH_GRAPH = "torch eager (cuda)", "torch, step in a CUDA graph (cuda)"
HOST = "portamlp (numpy, host CPUs)"


def gpu_status() -> dict[str, str | None]:
    """Why each GPU peer cannot run here (None: it can)."""
    cupy = portamlp.available_backends()["cupy"]
    status = {FAST: None if cupy.usable else cupy.reason}
    status[PORTABLE] = status[FAST]
    try:
        import torch

        status[TORCH] = None if torch.cuda.is_available() else "PyTorch has no usable CUDA device"
    except ImportError:
        status[TORCH] = "torch is not installed"
    status[TORCH_GRAPH] = status[TORCH]
    return status


def run_portamlp(cfg, data, repeats, backend, fast_path="auto"):
    x, y, xt, yt = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = portamlp.train(x=x[:cfg["n_train"]], y=y[:cfg["n_train"]], test_data=(xt, yt),
                           layers=cfg["layers"], activation="relu" if cfg["relu"] else "sigmoid",
                           cost="cross_entropy" if cfg["relu"] else "quadratic",
                           batch_size=cfg["batch"], learning_rate=cfg["lr"],
                           momentum=cfg["momentum"], epochs=repeats, seed=0, backend=backend,
                           progress=False, fast_path=fast_path)
    return min(h.seconds for h in r.history), r.test_accuracy


def run_fast(cfg, data, repeats):
    """The fast step, or None where it does not apply to this configuration."""
    try:
        return run_portamlp(cfg, data, repeats, "cupy", "on")
    except ValueError as exc:  # fast_path="on" names why the fast step cannot train it
        if "fast_path='on' cannot be honoured" in str(exc):
            return None
        raise


PEERS = [(FAST, run_fast),
         (PORTABLE, lambda cfg, data, repeats: run_portamlp(cfg, data, repeats, "cupy", "off")),
         (TORCH, lambda cfg, data, repeats: run_torch(cfg, data, repeats, device="cuda")),
         (TORCH_GRAPH, run_torch_graphed),
         (HOST, lambda cfg, data, repeats: run_portamlp(cfg, data, repeats, "numpy"))]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings (a logic check)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tf32", action="store_true",
                        help="allow TF32 matrix products in CuPy (CUPY_TF32=1) and PyTorch "
                        "(off by default: float32 throughout)")
    parser.add_argument("--only", default="", help="run only the configurations whose name "
                        "contains this text (e.g. 4096)")
    parser.add_argument("--skip-host", action="store_true", help="leave out the NumPy peer")
    parser.add_argument("--output", default=str(HERE / "results" / "gpu.json"))
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    print(f"machine: {platform.node()}, {os.cpu_count()} CPU cores, Python "
          f"{platform.python_version()}")
    if args.tf32:  # CuPy reads its switch from the environment, before its first product
        os.environ["CUPY_TF32"] = "1"
    status = gpu_status()
    for name, why in status.items():
        print(f"{name}: {'usable' if why is None else 'skipped: ' + why}")
    if args.tf32 and status[TORCH] is None:
        import torch

        torch.backends.cuda.matmul.allow_tf32 = True
    x, y = (np.asarray(a) for a in portamlp.datasets.load_mnist("train", backend="numpy"))
    xt, yt = (np.asarray(a) for a in portamlp.datasets.load_mnist("test", backend="numpy"))
    if args.quick:
        x, y, xt, yt = x[:2048], y[:2048], xt[:500], yt[:500]
    data = (x, y, xt, yt)
    report = {"quick": args.quick, "tf32": args.tf32, "status": status, "rows": []}
    for cfg in CONFIGS:
        if args.only not in cfg["name"]:
            continue
        cfg = dict(cfg, n_train=min(cfg["n_train"], x.shape[0]))
        if args.quick and cfg["layers"][1] > 1000:
            cfg["layers"] = (784, 256, 256, 10)  # the wide shape's logic, at CPU-friendly size
        flops = training_flops(cfg["layers"], cfg["n_train"])
        print(f"\n### {cfg['name']} ({cfg['n_train']:,} images, "
              f"{flops / 1e12:.3f} TFLOP per epoch)")
        print("| peer | s / epoch | TFLOP/s | test accuracy |")
        print("|---|---|---|---|")
        row = {"config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
               "results": {}}
        for name, fn in PEERS:
            if status.get(name) or (name == HOST and args.skip_host):
                continue
            result = fn(cfg, data, repeats)
            if result is None:
                print(f"| {name} | does not apply (cuBLAS is faster at this size) | | |")
                continue
            seconds, acc = result
            row["results"][name] = {"seconds_per_epoch": seconds, "tflops": flops / seconds / 1e12,
                                    "test_accuracy": acc}
            print(f"| {name} | {seconds:.3f} | {flops / seconds / 1e12:.2f} | {acc:.2%} |",
                  flush=True)
        report["rows"].append(row)
    write_report(args.output, report)
    return report


if __name__ == "__main__":
    sys.exit(main() and 0)
