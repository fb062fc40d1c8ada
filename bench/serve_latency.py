"""Latency of ``portamlp serve``'s predict endpoint, as the drawing page sees it.

The server runs as its own process (``python -m portamlp serve MODEL --port 0``), as it does for a
user; this client sends N requests one after another over one keep-alive connection (as a
browser does), each the body the page sends: a 280×280 RGBA canvas, dark ink on white, as
base64 in JSON (an MNIST test digit scaled up, a different one each time). The round trip is
timed from sending the request to having parsed the JSON answer. The model is a 784-256-128-10
ReLU network with random weights (the work per request does not depend on the weights' values).
Target: p95 ≤ 10 ms on this 2-core machine.

It also times the server's three steps in this process (median of the same inputs): decoding the
body, :func:`~portamlp.images.prepare_digit`, and the network's forward pass.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/serve_latency.py
    python bench/serve_latency.py --requests 50 --output /tmp/serve.json      # a quick run
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_report  # noqa: E402

TARGET_P95_MS = 10.0
LAYERS = (784, 256, 128, 10)
CANVAS = 280
DISTINCT = 100  # different canvases, sent in turn


def canvas_bodies(n: int) -> list[bytes]:
    """The page's request bodies for the first ``n`` MNIST test digits, drawn 10× larger."""
    from PIL import Image

    from portamlp.datasets import read_split

    images, _ = read_split("mnist", "test")
    bodies = []
    for image in images[:n]:
        big = Image.fromarray(255 - image).resize((CANVAS, CANVAS), Image.Resampling.BILINEAR)
        gray = np.asarray(big)
        rgba = np.dstack([gray, gray, gray, np.full_like(gray, 255)])
        bodies.append(json.dumps({"width": CANVAS, "height": CANVAS, "channels": 4,
                                  "pixels": base64.b64encode(rgba.tobytes()).decode()}).encode())
    return bodies


def start_server(model: Path) -> tuple[subprocess.Popen, str]:
    """``portamlp serve MODEL --port 0`` in a child process, and the URL it printed."""
    proc = subprocess.Popen([sys.executable, "-m", "portamlp", "serve", str(model), "--port", "0",
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "http://" not in line:
        proc.kill()
        raise RuntimeError(f"the server did not start: {line}{proc.communicate()[1]}")
    return proc, line.split(" at ", 1)[1].strip()


def time_requests(url: str, bodies: list[bytes], n: int, warmup: int) -> list[float]:
    """Seconds per round trip of ``n`` predict requests (after ``warmup`` untimed ones)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    headers = {"Content-Type": "application/json"}
    times = []
    for i in range(warmup + n):
        body = bodies[i % len(bodies)]
        start = time.perf_counter()
        conn.request("POST", "/api/predict", body=body, headers=headers)
        response = conn.getresponse()
        answer = json.loads(response.read())
        elapsed = time.perf_counter() - start
        if response.status != 200 or answer.get("prediction") is None:
            raise RuntimeError(f"request {i}: {response.status} {answer}")
        if i >= warmup:
            times.append(elapsed)
    conn.close()
    return times


def time_steps(model: Path, bodies: list[bytes]) -> dict[str, float]:
    """Median milliseconds of each step the server takes, run here on the same bodies."""
    import portamlp
    from portamlp.cli.serve import decode_image
    from portamlp.images import prepare_digit

    net = portamlp.load(model)
    prep = net.preprocessing
    assert prep is not None  # saved with one above
    steps: dict[str, list[float]] = {"decode": [], "prepare_digit": [], "forward": []}
    for body in bodies:
        t0 = time.perf_counter()
        image = decode_image(json.loads(body))
        t1 = time.perf_counter()
        digit = prepare_digit(image)
        t2 = time.perf_counter()
        net.predict_proba(prep.apply(digit.reshape(1, 784), net.dtype))
        t3 = time.perf_counter()
        steps["decode"].append(t1 - t0)
        steps["prepare_digit"].append(t2 - t1)
        steps["forward"].append(t3 - t2)
    return {k: round(1000 * float(np.median(v)), 3) for k, v in steps.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="timed requests (1000)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests first (20)")
    parser.add_argument("--output", type=Path,
                        default=Path(__file__).resolve().parent / "results" /
                        "serve_latency.json", help="JSON report")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.warmup < 0:
        parser.error("--requests must be ≥ 1 and --warmup ≥ 0")

    import portamlp
    from portamlp.datasets import Preprocessing

    bodies = canvas_bodies(DISTINCT)
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "net.json"
        net = portamlp.Network.initialize(LAYERS, activation="relu", cost="cross_entropy",
                                          seed=0)
        net.preprocessing = Preprocessing.from_scale("standardize")
        net.save(model)
        proc, url = start_server(model)
        try:
            seconds = time_requests(url, bodies, args.requests, args.warmup)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        steps = time_steps(model, bodies)

    ms = np.array(seconds) * 1000.0
    latency = {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
               "mean": float(ms.mean()), "min": float(ms.min()), "max": float(ms.max())}
    latency = {k: round(v, 3) for k, v in latency.items()}
    report = {
        "benchmark": "serve_latency",
        "machine": machine(),
        "settings": {"requests": args.requests, "warmup": args.warmup, "layers": list(LAYERS),
                     "canvas": [CANVAS, CANVAS, 4], "distinct_canvases": DISTINCT,
                     "body_bytes": len(bodies[0]), "connection": "one keep-alive connection",
                     "server": "python -m portamlp serve MODEL --port 0, its own process"},
        "latency_ms": latency,
        "server_steps_median_ms": steps,
        "target_p95_ms": TARGET_P95_MS,
        "meets_target": latency["p95"] <= TARGET_P95_MS,
    }
    print(f"portamlp serve, POST /api/predict, {args.requests} requests "
          f"({len(bodies[0]):,}-byte canvas bodies), {'-'.join(map(str, LAYERS))} network")
    print(f"machine: {report['machine']}")
    print(f"p50 {latency['p50']:.2f} ms   p95 {latency['p95']:.2f} ms   mean "
          f"{latency['mean']:.2f} ms   min {latency['min']:.2f} ms   max {latency['max']:.2f} ms")
    print("server steps (median): " + ", ".join(f"{k} {v:.2f} ms" for k, v in steps.items()))
    print(f"target p95 ≤ {TARGET_P95_MS:.0f} ms: {'met' if report['meets_target'] else 'NOT met'}")
    write_report(args.output, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
