"""The one-shot GPU check: everything a GPU run must confirm, in one command and one report.

    python bench/gpu_check.py                 # writes bench/results/gpu_check.json and .txt
    python bench/gpu_check.py --skip-bench    # without bench/gpu.py's table

It needs only the project, numpy, cupy, pytest and array-api-compat. It runs, on a machine with
a CUDA GPU:

1. the whole test suite with CuPy as the default backend (``PORTAMLP_BACKEND=cupy``), which
   includes the CuPy-only tests (the backend fixture's cupy cases, NumPy <-> CuPy agreement,
   examples/gpu.py and bench/gpu.py on CuPy);
2. NumPy <-> CuPy agreement from the same seed (float64 and float32);
3. one epoch of the training step (``Network.backprop``, the optimizer, device batches) under
   ``cupyx.allow_synchronize(False)``, where CuPy raises on any synchronisation;
4. a run with ``device=1`` when there are two GPUs, checking where every array lives;
5. the fast step (portamlp.fast): one step's buffers against NumPy, kernel by kernel, and an
   epoch of it under ``cupyx.allow_synchronize(False)``;
6. bench/gpu.py's table (and its wide row again with ``--tf32``).

Where something is missing it says what to install; on a machine without a GPU it reports
"no GPU: skipped" and exits 0.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NEEDED = {"numpy": "pip install numpy", "cupy": 'pip install "cupy-cuda12x[ctk]"',
          "pytest": "pip install pytest", "array_api_compat": "pip install array-api-compat",
          "portamlp": "pip install -e . (from the repository)"}


def missing_packages() -> dict[str, str]:
    """Packages the check needs that cannot be imported, with the command that installs each."""
    out = {}
    for name, how in NEEDED.items():
        try:
            importlib.import_module(name)
        except ImportError as exc:
            out[name] = f"{how} ({exc})"
        except Exception as exc:  # a broken CUDA install can raise anything on import
            out[name] = f"{name} fails to import: {exc}"
    return out


def run_suite(timeout: int) -> dict:
    """The test suite with CuPy as the default backend; counts from its JUnit XML."""
    xml = ROOT / "bench" / "results" / "gpu_check_junit.xml"
    xml.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PORTAMLP_BACKEND="cupy", PORTAMLP_SKIP_INSTALL_TEST="1")
    start = time.perf_counter()
    parallel = ["-n", "8"] if importlib.util.find_spec("xdist") else []
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *parallel, f"--junitxml={xml}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    failed = []
    if xml.exists():
        suite = ET.parse(xml).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        for key in counts:
            counts[key] = int(suite.get(key, 0))
        for case in suite.iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failed.append(f"{case.get('classname')}::{case.get('name')}")
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return {"returncode": proc.returncode, "seconds": round(time.perf_counter() - start, 1),
            "counts": counts, "failed": failed, "tail": proc.stdout[-3000:]}


def agreement() -> dict:
    """The same seed on NumPy and CuPy: the largest differences of the trained parameters."""
    import numpy as np

    import portamlp

    x, y = portamlp.datasets.load_mnist("train", length=1000, backend="numpy")
    out = {}
    for dtype, steps, tolerance in (("float64", 100, 1e-10), ("float32", 10, 1e-4)):
        n = steps * 10
        runs = [portamlp.train(x=x[:n], y=y[:n], layers=(784, 30, 10), dtype=dtype, epochs=1,
                               batch_size=10, seed=7, backend=name).network.host_parameters()
                for name in ("numpy", "cupy")]
        worst = max(float(np.max(np.abs(a - b) / (np.abs(a) + 1e-6)))
                    for a, b in zip(sum(runs[0], []), sum(runs[1], [])))
        out[dtype] = {"steps": steps, "max_relative_difference": worst, "tolerance": tolerance,
                      "ok": worst <= tolerance}
    return out


def epoch_without_synchronisation() -> dict:
    """One epoch of the training step with CuPy forbidden to synchronise."""
    import cupyx
    import numpy as np

    import portamlp
    from portamlp.datasets import DeviceDataset
    from portamlp.training.optimizers import make_optimizer

    be = portamlp.get_backend("cupy")
    results = {}
    for name, options in (("sigmoid/quadratic, sgd, batch 10", dict(activation="sigmoid",
                                                                     cost="quadratic")),
                          ("relu/cross_entropy, momentum, batch 128", dict(
                              activation="relu", cost="cross_entropy"))):
        batch = 10 if "batch 10" in name else 128
        net = portamlp.Network.initialize((784, 100, 10), seed=0, backend=be, **options)
        data = DeviceDataset.from_split("mnist", "train", backend=be, length=20_000)
        with be.activate():
            opt = make_optimizer("sgd", net.parameters(), be, learning_rate=0.05,
                                 momentum=0.9 if batch == 128 else 0.0)
            batches = data.batches(batch, np.random.default_rng(0))
            first = next(batches)  # the permutation crosses to the device here, once
            costs, count = [], 1
            try:
                with cupyx.allow_synchronize(False):
                    cost, grads = net.backprop(*first[:2])
                    opt.step(grads, 1.0 / batch)
                    costs.append(cost)
                    for xb, tb, _ in batches:
                        cost, grads = net.backprop(xb, tb)
                        opt.step(grads, 1.0 / xb.shape[0])
                        costs.append(cost)
                        count += 1
                results[name] = {"ok": True, "batches": count,
                                 "finite": bool(np.isfinite(float(be.xp.sum(
                                     be.xp.stack(costs)))))}
            except Exception as exc:
                results[name] = {"ok": False, "batches": count,
                                 "error": f"{type(exc).__name__}: {exc}"}
    return results


def fast_step_buffers() -> dict:
    """One eager fast step (no graph) on 10 rows against a float64 NumPy reference, buffer by
    buffer: which kernel is wrong, if one is."""
    import numpy as np

    import portamlp
    from portamlp.backends import to_numpy
    from portamlp.datasets import DeviceDataset
    from portamlp.fast.cuda import FastEpoch
    from portamlp.training.config import TrainConfig
    from portamlp.training.optimizers import make_optimizer

    be = portamlp.get_backend("cupy")
    x, y = (np.asarray(a) for a in portamlp.datasets.load_mnist("train", length=10,
                                                                backend="numpy"))
    order = np.random.default_rng(0).permutation(10)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    out = {}
    for name, activation, cost, opt_name, extra in (
            ("sigmoid/quadratic sgd", "sigmoid", "quadratic", "sgd", {}),
            ("relu/cross_entropy momentum", "relu", "cross_entropy", "sgd", {"momentum": 0.9}),
            ("tanh/cross_entropy adam", "tanh", "cross_entropy", "adam", {})):
        try:
            net = portamlp.Network.initialize((784, 20, 16, 10), seed=1, backend=be,
                                              activation=activation, cost=cost)
            W = [w.astype(np.float64) for w in net.host_parameters()[0]]
            b = [v.astype(np.float64) for v in net.host_parameters()[1]]
            data = DeviceDataset(be.asarray(x, "float32"), be.asarray(y), 10, be)
            with be.activate():
                opt = make_optimizer(opt_name, net.parameters(), be, learning_rate=0.1,
                                     **extra)
            runner = FastEpoch(net, opt, data, TrainConfig(batch_size=10))
            runner.capture = False
            list(runner.run(order))
            f = {"sigmoid": sig, "relu": lambda z: np.maximum(z, 0), "tanh": np.tanh}[activation]
            fp = {"sigmoid": lambda a: a * (1 - a), "relu": lambda a: (a > 0) * 1.0,
                  "tanh": lambda a: 1 - a * a}[activation]
            a0 = x[order].astype(np.float64)
            a1 = f(a0 @ W[0].T + b[0])
            a2 = f(a1 @ W[1].T + b[1])
            z3 = a2 @ W[2].T + b[2]
            t = np.eye(10)[y[order]]
            if cost == "cross_entropy":
                e = np.exp(z3 - z3.max(1, keepdims=True))
                a3 = e / e.sum(1, keepdims=True)
                d3, cost, out3 = a3 - t, np.sum(np.log(a3[np.arange(10), y[order]])), z3
            else:
                a3 = f(z3)
                d3, cost, out3 = (a3 - t) * fp(a3), np.sum((a3 - t) ** 2), a3
            d2 = (d3 @ W[2]) * fp(a2)
            d1 = (d2 @ W[1]) * fp(a1)
            g0 = d1.T @ a0 / 10
            if opt_name == "adam":  # first step: m/(sqrt(v)+eps) = sign(g) (nearly)
                w0 = W[0] - 0.1 * g0 / (np.abs(g0) + 1e-8)
            else:  # plain SGD, and momentum's first step (v = -eta g; W + v)
                w0 = W[0] - 0.1 * g0
            reference = {"forward 1": a1, "forward 2": a2, "forward 3 (output)": out3,
                         "output delta": d3, "backward delta 2": d2, "backward delta 1": d1,
                         "cost": np.array([cost]), "updated W1": w0}
            got = {"forward 1": runner.acts[0], "forward 2": runner.acts[1],
                   "forward 3 (output)": runner.acts[2], "output delta": runner.deltas[2],
                   "backward delta 2": runner.deltas[1], "backward delta 1": runner.deltas[0],
                   "cost": runner.costs[:1], "updated W1": net.weights[0]}
            diffs = {}
            for key, ref in reference.items():
                value = np.asarray(to_numpy(got[key]), dtype=np.float64)
                diffs[key] = float(np.max(np.abs(value - ref)) / (np.max(np.abs(ref)) + 1e-30))
            out[name] = {"ok": all(d < 1e-4 for d in diffs.values()), "relative": diffs}
        except Exception as exc:
            import traceback

            out[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                         "traceback": traceback.format_exc()[-2500:]}
    return out


def fast_epoch_without_synchronisation() -> dict:
    """Two epochs of the fast step (graph replays, eager steps, a partial batch) with CuPy
    forbidden to synchronise inside them."""
    import cupyx
    import numpy as np

    import portamlp
    from portamlp.datasets import DeviceDataset
    from portamlp.fast.cuda import FastEpoch
    from portamlp.training.config import TrainConfig
    from portamlp.training.optimizers import make_optimizer

    be = portamlp.get_backend("cupy")
    try:
        net = portamlp.Network.initialize((784, 30, 10), seed=0, backend=be)
        data = DeviceDataset.from_split("mnist", "train", backend=be, length=12_345)
        with be.activate():
            opt = make_optimizer("sgd", net.parameters(), be, learning_rate=3.0)
        runner = FastEpoch(net, opt, data, TrainConfig(batch_size=10))
        rng = np.random.default_rng(0)
        list(runner.run(rng.permutation(len(data))))  # compiles and captures
        order = rng.permutation(len(data))
        with cupyx.allow_synchronize(False):
            steps = list(runner.run(order))
        return {"ok": True, "groups": len(steps), "steps": steps[-1]}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def second_device() -> dict:
    """device=1 keeps every array of training, prediction and optimizer state on GPU 1."""
    import cupy

    import portamlp

    count = cupy.cuda.runtime.getDeviceCount()
    if count < 2:
        return {"ok": True, "skipped": f"one GPU only ({count})"}
    result = portamlp.train(layers=(784, 30, 10), epochs=1, train_length=5000,
                            validation_length=1000, test_length=1000, momentum=0.9,
                            learning_rate=0.1, cost="cross_entropy", seed=0, device=1,
                            backend="cupy")
    net = result.network
    x, _ = portamlp.datasets.load_mnist("test", length=100, backend=net.backend)
    devices = {int(p.device.id) for p in net.parameters()}
    devices |= {int(net.predict(x).device.id), int(net.predict_proba(x).device.id)}
    return {"devices_seen": sorted(devices), "ok": devices == {1},
            "test_accuracy": result.test_accuracy}


def run_bench(timeout: int) -> dict:
    out = ROOT / "bench" / "results" / "gpu.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "--repeats", "2",
                           "--output", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    report = json.loads(out.read_text()) if out.exists() and proc.returncode == 0 else None
    tf32 = out.with_name("gpu-tf32.json")
    proc32 = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "--tf32", "--only",
                             "4096", "--skip-host", "--repeats", "2", "--output", str(tf32)],
                            cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    return {"returncode": proc.returncode, "table": proc.stdout[-6000:],
            "stderr": proc.stderr[-2000:], "report": report,
            "tf32_table": proc32.stdout[-2000:], "tf32_stderr": proc32.stderr[-1500:]}


def environment() -> dict:
    info: dict = {"python": sys.version.split()[0]}
    try:
        import cupy
        import numpy

        info.update(numpy=numpy.__version__, cupy=cupy.__version__,
                    cuda_runtime=cupy.cuda.runtime.runtimeGetVersion(),
                    driver=cupy.cuda.runtime.driverGetVersion())
        props = cupy.cuda.runtime.getDeviceProperties(0)
        info["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) \
            else props["name"]
        info["gpus"] = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        info["cupy_error"] = f"{type(exc).__name__}: {exc}"
    return info


def summary(report: dict) -> str:
    lines = [f"portamlp GPU check — {report['status']}"]
    broken = {key: value["error"] for key, value in report.items()
              if isinstance(value, dict) and "error" in value and "ok" in value}
    lines += [f"  {key}: ERROR {error}" for key, error in broken.items()]
    report = {key: value for key, value in report.items() if key not in broken}
    if report.get("missing"):
        lines += [f"  missing {k}: {v}" for k, v in report["missing"].items()]
    if report.get("reason"):
        lines.append(f"  {report['reason']}")
    env = report.get("environment", {})
    if env.get("gpu"):
        lines.append(f"  {env['gpu']} ×{env.get('gpus')}, driver {env.get('driver')}, CUDA "
                     f"runtime {env.get('cuda_runtime')}, CuPy {env.get('cupy')}, NumPy "
                     f"{env.get('numpy')}")
    suite = report.get("suite")
    if suite:
        c = suite["counts"]
        if suite["returncode"] and not c["tests"]:
            lines += ["    " + line for line in suite["tail"].splitlines()[-20:]]
        lines.append(f"  test suite (PORTAMLP_BACKEND=cupy): {c['passed']} passed, "
                     f"{c['failures'] + c['errors']} failed, {c['skipped']} skipped "
                     f"({suite['seconds']} s)")
        lines += [f"    FAILED {name}" for name in suite["failed"][:30]]
    for dtype, a in (report.get("agreement") or {}).items():
        lines.append(f"  NumPy <-> CuPy {dtype}: max relative difference "
                     f"{a['max_relative_difference']:.2e} after {a['steps']} steps "
                     f"({'ok' if a['ok'] else 'ABOVE'} {a['tolerance']:g})")
    for name, r in (report.get("no_synchronisation") or {}).items():
        state = "ok" if r["ok"] else f"FAILED at batch {r['batches']}: {r.get('error')}"
        lines.append(f"  epoch under allow_synchronize(False), {name}: {state}")
    for name, r in (report.get("fast_step") or {}).items():
        if r["ok"]:
            worst = max(r["relative"].values())
            lines.append(f"  fast step vs NumPy, {name}: ok (largest relative difference "
                         f"{worst:.1e})")
        else:
            lines.append(f"  fast step vs NumPy, {name}: FAILED {r.get('error') or r['relative']}")
            if r.get("traceback"):
                lines += ["    " + line for line in r["traceback"].splitlines()[-12:]]
    if report.get("fast_no_synchronisation"):
        lines.append(f"  fast step epoch under allow_synchronize(False): "
                     f"{report['fast_no_synchronisation']}")
    if report.get("second_device"):
        lines.append(f"  device=1: {report['second_device']}")
    if report.get("bench"):
        lines.append("  bench/gpu.py:")
        lines += ["    " + line for line in report["bench"]["table"].splitlines()]
        if report["bench"]["returncode"]:
            lines += ["    " + line for line in report["bench"]["stderr"].splitlines()[-15:]]
        lines.append("  bench/gpu.py --tf32 (wide row):")
        lines += ["    " + line for line in report["bench"]["tf32_table"].splitlines()[-6:]]
    return "\n".join(lines)


def _stage(report: dict, key: str, fn, output: Path) -> None:
    """Run one stage of the check and write the report so far (a later stage that hangs
    leaves the earlier results on disk)."""
    try:
        report[key] = fn()
    except Exception as exc:
        report[key] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    _write(report, output, final=False)


def _write(report: dict, output: Path, final: bool = True) -> str:
    output.parent.mkdir(parents=True, exist_ok=True)
    text = summary(dict(report, status=report.get("status", "running")))
    output.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str))
    output.with_suffix(".txt").write_text(text + "\n")
    return text


def _all_ok(report: dict, key: str) -> bool:
    value = report.get(key)
    if value is None:
        return True
    if "ok" in value:
        return bool(value["ok"])
    return all(r.get("ok", False) for r in value.values())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "gpu_check",
                        help="report path without extension (.json and .txt are written)")
    parser.add_argument("--skip-bench", action="store_true", help="leave out bench/gpu.py")
    parser.add_argument("--skip-suite", action="store_true", help="leave out the test suite")
    parser.add_argument("--suite-timeout", type=int, default=330)
    args = parser.parse_args(argv)
    report: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S")}
    missing = missing_packages()
    cupy_missing = missing.pop("cupy", None)
    if missing:
        report.update(status="cannot run: missing packages", missing=missing)
    elif cupy_missing or not __import__("portamlp").available_backends()["cupy"]:
        import portamlp

        reason = (f"CuPy is not installed: {cupy_missing}" if cupy_missing
                  else portamlp.available_backends()["cupy"].reason)
        report.update(status="no GPU: skipped", reason=reason)
    else:
        report["environment"] = environment()
        # the quick checks first, the long ones last: each stage's result is on disk at once
        stages = [("agreement", agreement), ("no_synchronisation", epoch_without_synchronisation),
                  ("second_device", second_device), ("fast_step", fast_step_buffers),
                  ("fast_no_synchronisation", fast_epoch_without_synchronisation)]
        if not args.skip_bench:
            stages.append(("bench", lambda: run_bench(timeout=240)))
        if not args.skip_suite:
            stages.append(("suite", lambda: run_suite(timeout=args.suite_timeout)))
        for key, fn in stages:
            _stage(report, key, fn, args.output)
        ok = (all(_all_ok(report, key) for key in ("agreement", "no_synchronisation",
                                                   "second_device", "fast_step",
                                                   "fast_no_synchronisation"))
              and (args.skip_suite or report["suite"].get("returncode") == 0))
        report["status"] = "passed" if ok else "FAILED"
    text = _write(report, args.output)
    print(text)
    print(f"\nwrote {args.output.with_suffix('.json')} and {args.output.with_suffix('.txt')}")
    return 1 if report["status"] == "FAILED" else 0


if __name__ == "__main__":
    sys.exit(main())
