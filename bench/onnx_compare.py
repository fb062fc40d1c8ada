"""ONNX Runtime against ``Network.predict`` on NumPy: the same network, the same inputs.

(Not ``bench/onnx.py``: with this folder first on ``sys.path`` that name would hide the ``onnx``
package from ndonnx.)

For each network (784-30-10 sigmoid, and 784-1024-1024-10 ReLU; float32, random weights — the
time does not depend on their values) the network is exported with ``Network.to_onnx`` and run
by an ONNX Runtime ``InferenceSession`` (CPU, its default threads) and by
``Network.predict_proba`` on NumPy, for batches of 1, 100 and 10,000 rows. The rounds are
interleaved (ONNX Runtime, then portamlp, then again) and each side's best time of the rounds is
kept; each round times enough calls to last about 0.2 s. Both outputs are compared (labels equal,
probabilities within 1e-5) before timing.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/onnx_compare.py
    python bench/onnx_compare.py --quick        # seconds: checks the logic
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_report  # noqa: E402

import portamlp  # noqa: E402
from portamlp import Network  # noqa: E402

NETWORKS = {"784-30-10": ((784, 30, 10), "sigmoid"),
            "784-1024-1024-10": ((784, 1024, 1024, 10), "relu")}
BATCHES = (1, 100, 10_000)


def _per_call(func, budget: float) -> float:
    """Seconds per call of ``func``, timing enough calls to fill ``budget`` seconds."""
    func()
    calls, start = 0, time.perf_counter()
    while True:
        func()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= budget:
            return elapsed / calls


def measure(name: str, rounds: int, budget: float, batches, folder: Path) -> list[dict]:
    import onnxruntime as ort

    layers, activation = NETWORKS[name]
    net = Network.initialize(layers, activation=activation, cost="cross_entropy", seed=0)
    path = net.to_onnx(folder / f"{name}.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rows = []
    for batch in batches:
        x = np.random.default_rng(batch).uniform(0, 1, (batch, layers[0])).astype(np.float32)
        ours = np.asarray(net.predict_proba(x))
        theirs, labels = session.run(["outputs", "label"], {"features": x})
        assert np.array_equal(labels, ours.argmax(axis=1))
        assert float(np.max(np.abs(theirs - ours))) <= 1e-5
        best = {"onnxruntime": np.inf, "portamlp": np.inf}
        for _ in range(rounds):
            best["onnxruntime"] = min(best["onnxruntime"], _per_call(
                lambda x=x: session.run(None, {"features": x}), budget))
            best["portamlp"] = min(best["portamlp"], _per_call(
                lambda x=x: net.predict_proba(x), budget))
        rows.append({"network": name, "batch": batch, "onnxruntime_seconds": best["onnxruntime"],
                     "portamlp_seconds": best["portamlp"],
                     "portamlp_over_onnxruntime": best["portamlp"] / best["onnxruntime"]})
        print(f"{name:>18}  batch {batch:>6}: ONNX Runtime {best['onnxruntime'] * 1e3:9.3f} ms,"
              f" portamlp {best['portamlp'] * 1e3:9.3f} ms "
              f"(portamlp/ONNX Runtime {rows[-1]['portamlp_over_onnxruntime']:.2f})")
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| network | batch | ONNX Runtime | portamlp (NumPy) | portamlp ÷ ONNX Runtime |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['network']} | {r['batch']:,} | {r['onnxruntime_seconds'] * 1e3:.3f} ms"
                     f" | {r['portamlp_seconds'] * 1e3:.3f} ms | "
                     f"{r['portamlp_over_onnxruntime']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short round, small batches")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" /
                        "onnx_compare.json")
    args = parser.parse_args(argv)
    import onnxruntime as ort

    rounds, budget = (1, 0.01) if args.quick else (5, 0.2)
    batches = (1, 100) if args.quick else BATCHES
    with tempfile.TemporaryDirectory() as folder:
        rows = [row for name in NETWORKS
                for row in measure(name, rounds, budget, batches, Path(folder))]
    text = table(rows)
    print("\n" + text)
    write_report(args.output, {"machine": machine(), "portamlp": portamlp.__version__,
                               "onnxruntime": ort.__version__, "quick": args.quick,
                               "rounds": rounds, "rows": rows, "table": text})
    return 0


if __name__ == "__main__":
    sys.exit(main())
