"""What the tests of ``portamlp serve`` share: a server in a thread, the Chromium that
Playwright drives (Debian's, never a downloaded one), a trained model for the page, and drawing
an MNIST image on the page as mouse strokes."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

import portamlp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from _browser import (  # noqa: E402,F401
    CHROMIUM,
    CHROMIUM_ARGS,
    SETTLED,
    draw_and_read,
    draw_digit,
    strokes,
)


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
