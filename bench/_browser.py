"""Driving the draw-a-digit page in a browser: Debian's Chromium through Playwright (never a
downloaded browser), and an MNIST image drawn on the page's canvas as mouse strokes. Shared by
bench/page_latency.py and the page's tests."""

from __future__ import annotations

import os

import numpy as np

CHROMIUM = os.environ.get("PORTAMLP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


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


def draw_and_read(page, image: np.ndarray) -> str:
    """Clear the page's canvas, draw ``image`` on it and return the digit the page then shows
    (once its answer is for the finished drawing)."""
    page.click("#clear")
    page.wait_for_function(SETTLED)
    draw_digit(page, image)
    page.wait_for_function(SETTLED, timeout=20_000)
    return page.inner_text("#digit").strip()
