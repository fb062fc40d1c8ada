"""What the benchmarks share: the machine they ran on, their JSON report, the PyTorch peer."""

import json
import os
import platform
import time
from pathlib import Path

import numpy as np


def machine() -> str:
    """CPU model, cores, Python and NumPy versions, on one line."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"NumPy {np.__version__}")


def write_report(path, report: dict) -> None:
    """Write a benchmark's report as JSON (creating the folder) and say where."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {out}")


def run_torch(cfg, data, repeats, device="cpu", threads=None):
    """PyTorch eager: the same network, loss and SGD as portamlp; ``(best s/epoch, accuracy)``.

    ``cfg`` holds ``layers``, ``relu`` (ReLU + cross-entropy, else sigmoid + quadratic),
    ``batch``, ``lr``, ``momentum`` and ``n_train``; ``data`` is ``(x, y, x_test, y_test)``.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    x, y, xt, yt = data
    X = torch.from_numpy(x[:cfg["n_train"]]).to(dev)
    Y = torch.from_numpy(y[:cfg["n_train"]]).to(dev)
    onehot = torch.nn.functional.one_hot(Y, 10).float()
    mods = []
    for i, (a, b) in enumerate(zip(cfg["layers"][:-1], cfg["layers"][1:])):
        mods.append(torch.nn.Linear(a, b))
        if i < len(cfg["layers"]) - 2 or not cfg["relu"]:
            mods.append(torch.nn.ReLU() if cfg["relu"] else torch.nn.Sigmoid())
    model = torch.nn.Sequential(*mods).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"])
    n, batch, times = X.shape[0], cfg["batch"], []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        perm = torch.randperm(n, device=dev)
        for k in range(0, n, batch):
            idx = perm[k:k + batch]
            out = model(X[idx])
            if cfg["relu"]:
                loss = torch.nn.functional.cross_entropy(out, Y[idx])
            else:
                loss = 0.5 * ((out - onehot[idx]) ** 2).sum() / len(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync()
        times.append(time.perf_counter() - start)
    with torch.no_grad():
        pred = model(torch.from_numpy(xt).to(dev)).argmax(1).cpu().numpy()
    return min(times), float((pred == yt).mean())
