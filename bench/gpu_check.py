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
5. bench/gpu.py's table.

Where something is missing it says what to install; on a machine without a GPU it reports
"no GPU: skipped" and exits 0.
"""

from __future__ import annotations

import argparse
import importlib
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
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"--junitxml={xml}"], cwd=ROOT, env=env,
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
    from portamlp.optim import make_optimizer

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
            opt = make_optimizer("sgd", net.parameters(), be.xp, learning_rate=0.05,
                                 momentum=0.9 if batch == 128 else 0.0)
            batches = data.batches(batch, np.random.default_rng(0))
            first = next(batches)  # the permutation crosses to the device here, once
            losses, count = [], 1
            try:
                with cupyx.allow_synchronize(False):
                    loss, grads = net.backprop(*first[:2])
                    opt.step(grads, 1.0 / batch)
                    losses.append(loss)
                    for xb, tb, _ in batches:
                        loss, grads = net.backprop(xb, tb)
                        opt.step(grads, 1.0 / xb.shape[0])
                        losses.append(loss)
                        count += 1
                results[name] = {"ok": True, "batches": count,
                                 "finite": bool(np.isfinite(float(be.xp.sum(
                                     be.xp.stack(losses)))))}
            except Exception as exc:
                results[name] = {"ok": False, "batches": count,
                                 "error": f"{type(exc).__name__}: {exc}"}
    return results


def second_device() -> dict:
    """device=1 keeps every array of training, prediction and optimizer state on GPU 1."""
    import cupy

    import portamlp

    count = cupy.cuda.runtime.getDeviceCount()
    if count < 2:
        return {"skipped": f"one GPU only ({count})"}
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
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "--output",
                           str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    report = json.loads(out.read_text()) if out.exists() and proc.returncode == 0 else None
    return {"returncode": proc.returncode, "table": proc.stdout[-6000:],
            "stderr": proc.stderr[-2000:], "report": report}


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
    if report.get("second_device"):
        lines.append(f"  device=1: {report['second_device']}")
    if report.get("bench"):
        lines.append("  bench/gpu.py:")
        lines += ["    " + line for line in report["bench"]["table"].splitlines()]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "gpu_check",
                        help="report path without extension (.json and .txt are written)")
    parser.add_argument("--skip-bench", action="store_true", help="leave out bench/gpu.py")
    parser.add_argument("--skip-suite", action="store_true", help="leave out the test suite")
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
        if not args.skip_suite:
            report["suite"] = run_suite(timeout=330)
        report["agreement"] = agreement()
        report["no_synchronisation"] = epoch_without_synchronisation()
        report["second_device"] = second_device()
        if not args.skip_bench:
            report["bench"] = run_bench(timeout=240)
        ok = (all(a["ok"] for a in report["agreement"].values())
              and all(r["ok"] for r in report["no_synchronisation"].values())
              and report["second_device"].get("ok", True)
              and (args.skip_suite or report["suite"]["returncode"] == 0))
        report["status"] = "passed" if ok else "FAILED"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    text = summary(report)
    args.output.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str))
    args.output.with_suffix(".txt").write_text(text + "\n")
    print(text)
    print(f"\nwrote {args.output.with_suffix('.json')} and {args.output.with_suffix('.txt')}")
    return 1 if report["status"] == "FAILED" else 0


if __name__ == "__main__":
    sys.exit(main())
