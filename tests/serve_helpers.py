"""What the tests of ``portamlp serve`` share: a server in a thread, the Chromium that
Playwright drives (Debian's, never a downloaded one), a trained model for the page, and drawing
an MNIST image on the page as mouse strokes."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

import portamlp

CHROMIUM = os.environ.get("PORTAMLP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def start(server):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


def stop(server, thread):
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory):
    """A 784-256-128-10 network trained for 5 epochs (≥ 97 % test accuracy) and its record."""
    from portamlp.files.run_records import write_run_record

    result = portamlp.train(layers=[784, 256, 128, 10], activation="relu", cost="cross_entropy",
                            learning_rate=0.05, momentum=0.9, batch_size=100, epochs=5,
                            scale="standardize", seed=0, progress=False)
    assert result.test_accuracy >= 0.97, result.test_accuracy
    path = tmp_path_factory.mktemp("trained") / "net.json"
    result.network.save(path)
    write_run_record(path.with_suffix(".run.json"), model=path,
                     config=result.config.to_dict(), network=result.network,
                     history=result.history, test_accuracy=result.test_accuracy,
                     stopped_early=result.stopped_early, overwrite=True)
    return path, result.test_accuracy


@pytest.fixture(scope="session")
def playwright_for_chromium():
    """Playwright's ``sync_playwright``, with Chromium present, or a skip saying what to install
    (checked before a network is trained for the browser test)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the browser test needs Playwright: pip install playwright (in the test "
                    "extra); never `playwright install`, it uses Debian's chromium")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"the browser test needs Chromium at {CHROMIUM}: sudo apt-get install "
                    "chromium (Debian), or set PORTAMLP_CHROMIUM to its path")
    return sync_playwright


def strokes(image: np.ndarray, threshold: int = 128):
    """The ink of a 28×28 image as horizontal strokes ((x0, y), (x1, y)) in pixel units: one
    per run of ink pixels in a row, through the pixels' centres."""
    ink = image >= threshold
    for row in range(28):
        cols = np.flatnonzero(ink[row])
        if not cols.size:
            continue
        breaks = np.flatnonzero(np.diff(cols) > 1)
        for start, end in zip(np.r_[0, breaks + 1], np.r_[breaks, cols.size - 1]):
            yield (cols[start] + 0.5, row + 0.5), (cols[end] + 0.5, row + 0.5)


def draw_digit(page, image: np.ndarray) -> None:
    box = page.evaluate("""() => { const p = document.getElementById('pad');
        const r = p.getBoundingClientRect();
        return {x: r.left + p.clientLeft, y: r.top + p.clientTop, w: p.clientWidth}; }""")
    scale = box["w"] / 28
    for (x0, y0), (x1, y1) in strokes(image):
        page.mouse.move(box["x"] + x0 * scale, box["y"] + y0 * scale)
        page.mouse.down()
        page.mouse.move(box["x"] + x1 * scale, box["y"] + y1 * scale,
                        steps=max(2, int(x1 - x0)))
        page.mouse.up()


SETTLED = ("() => document.getElementById('answer').dataset.version === "
            "document.getElementById('pad').dataset.version")
