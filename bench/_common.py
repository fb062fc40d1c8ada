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


def _torch_setup(cfg, data, device):
    """The PyTorch network, optimizer, loss and data of a peer run (``cfg`` as in run_torch)."""
    import torch

    torch.manual_seed(0)
    dev = torch.device(device)
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

    def loss_of(out, labels, targets):
        if cfg["relu"]:
            return torch.nn.functional.cross_entropy(out, labels)
        return 0.5 * ((out - targets) ** 2).sum() / out.shape[0]

    def accuracy():
        with torch.no_grad():
            pred = model(torch.from_numpy(xt).to(dev)).argmax(1).cpu().numpy()
        return float((pred == yt).mean())

    return dev, X, Y, onehot, model, opt, loss_of, accuracy


def run_torch(cfg, data, repeats, device="cpu", threads=None):
    """PyTorch eager: the same network, loss and SGD as portamlp; ``(best s/epoch, accuracy)``.

    ``cfg`` holds ``layers``, ``relu`` (ReLU + cross-entropy, else sigmoid + quadratic),
    ``batch``, ``lr``, ``momentum`` and ``n_train``; ``data`` is ``(x, y, x_test, y_test)``.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    dev, X, Y, onehot, model, opt, loss_of, accuracy = _torch_setup(cfg, data, device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    n, batch, times = X.shape[0], cfg["batch"], []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        perm = torch.randperm(n, device=dev)
        for k in range(0, n, batch):
            idx = perm[k:k + batch]
            loss = loss_of(model(X[idx]), Y[idx], onehot[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync()
        times.append(time.perf_counter() - start)
    return min(times), accuracy()


def run_torch_graphed(cfg, data, repeats, device="cuda"):
    """PyTorch with the whole training step (forward, backward, SGD) captured in one CUDA graph
    and replayed per mini-batch, the batch copied into static inputs first (PyTorch's
    "whole-network capture"). Full batches only: a last partial batch is left out."""
    import torch

    dev, X, Y, onehot, model, opt, loss_of, accuracy = _torch_setup(cfg, data, device)
    n, batch, times = X.shape[0], cfg["batch"], []
    static_x, static_y, static_t = X[:batch].clone(), Y[:batch].clone(), onehot[:batch].clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on a side stream, as capture requires
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            loss_of(model(static_x), static_y, static_t).backward()
            opt.step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        static_loss = loss_of(model(static_x), static_y, static_t)
        static_loss.backward()
        opt.step()
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        perm = torch.randperm(n, device=dev)
        for k in range(0, n - batch + 1, batch):
            idx = perm[k:k + batch]
            static_x.copy_(X[idx])
            static_y.copy_(Y[idx])
            static_t.copy_(onehot[idx])
            graph.replay()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times), accuracy()
