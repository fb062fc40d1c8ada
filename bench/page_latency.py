"""Stroke-to-update time of the draw-a-digit page, measured in the browser.

``portamlp serve`` runs in this process (a thread) on a 784-256-128-10 ReLU network trained as
the README's serve example trains it (5 epochs), or on ``--model``. Debian's Chromium, driven by
Playwright, opens the page and draws the first test image of each digit as mouse strokes, as
the page's browser test does. For every answer the page shows while drawing, the page itself
records the time from the canvas change that answer is for to the moment the answer, the bars,
the 28×28 input and the network view are all updated (``portamlpView.latencies``). The page
asks at most every 50 ms, one request at a time, so a change made just after a request left
waits for the next. Target (issue 29): under 50 ms, median over the answers.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/page_latency.py
    python bench/page_latency.py --screenshot docs/serve-network.png   # the picture in the docs
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _browser import CHROMIUM, CHROMIUM_ARGS, SETTLED, draw_and_read  # noqa: E402
from _common import machine, write_report  # noqa: E402

import portamlp  # noqa: E402

TARGET_MS = 50.0


def trained_model(folder: Path) -> Path:
    result = portamlp.train(layers=[784, 256, 128, 10], activation="relu", cost="cross_entropy",
                            learning_rate=0.05, momentum=0.9, batch_size=100, epochs=5,
                            scale="standardize", seed=0, progress=False)
    path = folder / "net.json"
    result.network.save(path)
    return path


def main(argv=None) -> dict:
    from playwright.sync_api import sync_playwright

    from portamlp.cli.serve import make_server
    from portamlp.datasets import read_split

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a saved network (default: train one)")
    parser.add_argument("--digits", type=int, default=10, help="digits drawn (default: 10)")
    parser.add_argument("--screenshot", type=Path, help="save the page after the last digit")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "page_latency.json")
    args = parser.parse_args(argv)
    images, labels = read_split("mnist", "test")
    chosen = [int(np.flatnonzero(labels == d % 10)[d // 10]) for d in range(args.digits)]
    with tempfile.TemporaryDirectory() as folder:
        model = args.model or trained_model(Path(folder))
        server = make_server(model, port=0, seed=0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            with sync_playwright() as p:
                context = p.chromium.launch_persistent_context(
                    str(Path(folder) / "profile"), executable_path=CHROMIUM, headless=True,
                    args=CHROMIUM_ARGS, viewport={"width": 1100, "height": 1400})
                page = context.pages[0] if context.pages else context.new_page()
                page.goto(server.url)
                page.wait_for_function(SETTLED)
                read = [draw_and_read(page, images[i]) == str(labels[i]) for i in chosen]
                latencies = page.evaluate("() => portamlpView.latencies")
                if args.screenshot:
                    unit = page.get_attribute("#net .unit[data-layer='1']", "data-unit")
                    page.hover(f"#net .unit[data-layer='1'][data-unit='{unit}']")
                    page.wait_for_function("() => document.getElementById('neuron-weights')"
                                           f".dataset.unit === '{unit}'")
                    args.screenshot.parent.mkdir(parents=True, exist_ok=True)
                    page.locator("main").screenshot(path=str(args.screenshot))
                context.close()
        finally:
            server.shutdown()
            server.server_close()
    ms = sorted(latencies)
    report = {"machine": machine(), "digits": len(chosen), "read_right": sum(read),
              "answers": len(ms), "latency_ms": {
                  "median": statistics.median(ms), "p95": ms[int(0.95 * (len(ms) - 1))],
                  "min": ms[0], "max": ms[-1]},
              "target_median_ms": TARGET_MS}
    report["meets_target"] = report["latency_ms"]["median"] < TARGET_MS
    lat = report["latency_ms"]
    print(f"machine: {machine()}")
    print(f"{len(chosen)} digits drawn, {sum(read)} read right; {len(ms)} answers while drawing")
    print(f"stroke to update: median {lat['median']:.1f} ms, p95 {lat['p95']:.1f} ms, "
          f"min {lat['min']:.1f} ms, max {lat['max']:.1f} ms (target: median under "
          f"{TARGET_MS:.0f} ms: {'met' if report['meets_target'] else 'MISSED'})")
    write_report(args.output, report)
    return report


if __name__ == "__main__":
    main()
