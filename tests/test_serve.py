"""``portamlp serve``: the server's endpoints over HTTP, its errors, the drawing page in Chromium.

Server tests talk to a server on port 0 in a thread with urllib (no browser). The browser test
(slow) draws MNIST test digits as mouse strokes on the page in Debian's Chromium, driven by
Playwright, and reads the predictions the page shows.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest
from serve_helpers import CHROMIUM, CHROMIUM_ARGS, SETTLED, draw_and_read, start, stop

import portamlp
from portamlp.cli.serve import MAX_BODY_BYTES, DigitApp, make_server
from portamlp.datasets import Preprocessing, read_split
from portamlp.images import prepare_digit

ROOT = Path(__file__).resolve().parents[1]
# ------------------------------------------------------------------------------------ helpers
def canvas_rgba(image: np.ndarray, size: int = 280) -> np.ndarray:
    """An MNIST image as the page's canvas would hold it: RGBA, dark ink on opaque white."""
    from PIL import Image

    gray = np.asarray(Image.fromarray(255 - image).resize((size, size), Image.Resampling.BILINEAR))
    return np.dstack([gray, gray, gray, np.full_like(gray, 255)])


def predict_body(image: np.ndarray) -> bytes:
    """The JSON body the page sends for an (h, w) or (h, w, c) uint8 image."""
    h, w = image.shape[:2]
    c = 1 if image.ndim == 2 else image.shape[2]
    return json.dumps({"width": w, "height": h, "channels": c,
                       "pixels": base64.b64encode(image.tobytes()).decode()}).encode()


def call(server, path: str, body: bytes | None = None,
         content_type: str = "application/json", method: str | None = None):
    """(status, decoded JSON or text) of one request; HTTP errors are returned, not raised."""
    req = urllib.request.Request(server.url.rstrip("/") + path, data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            status, ctype, data = response.status, response.headers["Content-Type"], \
                response.read()
    except urllib.error.HTTPError as exc:
        status, ctype, data = exc.code, exc.headers["Content-Type"], exc.read()
    return status, json.loads(data) if ctype == "application/json" else data.decode()


def expected_answer(net, digit: np.ndarray) -> np.ndarray:
    """What the library itself says of a prepared digit."""
    x = net.preprocessing.apply(digit.reshape(1, 784), net.dtype)
    return portamlp.backends.to_numpy(net.predict_proba(x))[0]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A small untrained network with its preprocessing, and a run record beside it."""
    d = tmp_path_factory.mktemp("serve")
    net = portamlp.Network.initialize([784, 32, 10], activation="relu", cost="cross_entropy",
                                      seed=1)
    net.preprocessing = Preprocessing.from_scale("standardize")
    net.save(d / "net.json")
    (d / "net.run.json").write_text(json.dumps({"test_accuracy": 0.1234,
                                                "options": {"dataset": "mnist"}}))
    return d / "net.json"


@pytest.fixture(scope="module")
def server(model):
    srv = make_server(model, port=0, seed=0)
    thread = start(srv)
    yield srv
    stop(srv, thread)


@pytest.fixture(scope="module")
def mnist_test():
    return read_split("mnist", "test")


# ------------------------------------------------------------------------------ the endpoints
def test_page_and_its_assets_are_served_from_the_package(server):
    status, html = call(server, "/")
    assert status == 200 and "<canvas id=\"pad\"" in html and "static/app.js" in html
    for path in ("/static/app.js", "/static/style.css"):
        status, text = call(server, path)
        assert status == 200 and len(text) > 500
    with urllib.request.urlopen(server.url + "static/app.js", timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/javascript")
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def test_assets_load_nothing_from_elsewhere():
    """Offline: no URL to another host (CDN, web font, analytics) in the page's files."""
    static = ROOT / "portamlp" / "cli" / "static"
    files = sorted(static.iterdir())
    assert {f.name for f in files} == {"index.html", "app.js", "network.js", "style.css"}
    for f in files:
        # the SVG namespace is a name, never fetched
        text = f.read_text().replace('"http://www.w3.org/2000/svg"', "")
        assert not re.search(r"(https?:)?//[\w.-]+\.[a-z]{2,}", text), f.name
        assert "@import" not in text and "@font-face" not in text


def test_model_info_names_the_model_and_its_test_accuracy(server):
    status, info = call(server, "/api/model")
    assert status == 200
    assert info["name"] == "net.json" and info["layers"] == [784, 32, 10]
    assert info["activation"] == "relu" and info["cost"] == "cross_entropy"
    assert info["test_accuracy"] == 0.1234 and info["scale"] == "standardize"


def test_model_info_without_a_run_record(model, tmp_path):
    shutil.copy(model, tmp_path / "bare.json")
    app = DigitApp.from_model(tmp_path / "bare.json")
    assert app.model_info()["test_accuracy"] is None


def test_predict_gives_the_library_s_probabilities(server, model, mnist_test):
    images, _ = mnist_test
    net = portamlp.load(model)
    for i in (0, 1, 2):
        canvas = canvas_rgba(images[i])
        digit = prepare_digit(canvas)
        status, answer = call(server, "/api/predict", predict_body(canvas))
        assert status == 200
        expected = expected_answer(net, digit)
        np.testing.assert_allclose(answer["probabilities"], expected, rtol=1e-6, atol=1e-7)
        assert answer["prediction"] == int(np.argmax(expected))
        assert answer["input"] == digit.reshape(-1).tolist()  # what the network sees
    gray = 255 - np.asarray(canvas_rgba(images[3])[:, :, 0])  # one channel, light ink on dark
    status, answer = call(server, "/api/predict", predict_body(gray))
    assert status == 200
    np.testing.assert_allclose(answer["probabilities"],
                               expected_answer(net, prepare_digit(gray)), rtol=1e-6, atol=1e-7)


def test_a_blank_canvas_is_no_digit_found(server):
    blank = np.full((280, 280, 4), 255, dtype=np.uint8)
    status, answer = call(server, "/api/predict", predict_body(blank))
    assert status == 200
    assert answer["prediction"] is None and answer["error"] == "no digit found"
    assert "blank" in answer["detail"] and "probabilities" not in answer


def test_test_digit_has_its_label_and_the_library_s_prediction(server, model, mnist_test):
    images, labels = mnist_test
    net = portamlp.load(model)
    status, answer = call(server, "/api/test-digit?index=7")
    assert status == 200 and answer["index"] == 7 and answer["label"] == labels[7]
    expected = expected_answer(net, images[7])  # a test image is used as it is stored
    np.testing.assert_allclose(answer["probabilities"], expected, rtol=1e-6, atol=1e-7)
    assert answer["correct"] == (answer["prediction"] == labels[7])
    assert answer["input"] == images[7].reshape(-1).tolist()
    seen = set()
    for _ in range(5):
        status, answer = call(server, "/api/test-digit")
        assert status == 200 and 0 <= answer["index"] < 10_000
        assert answer["label"] == labels[answer["index"]]
        seen.add(answer["index"])
    assert len(seen) > 1  # random


def _raw(server, data: bytes) -> bytes:
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


BAD_REQUESTS = {
    "garbage JSON": ("/api/predict", b"{this is not json", "application/json", None, 400,
                     "malformed JSON"),
    "not UTF-8": ("/api/predict", b"\xff\xfe{}", "application/json", None, 400,
                  "malformed JSON"),
    "a JSON list": ("/api/predict", b"[1, 2, 3]", "application/json", None, 400, "JSON object"),
    "deep nesting": ("/api/predict", b"[" * 200_000, "application/json", None, 400,
                     "malformed JSON"),
    "oversized body": ("/api/predict", b"x" * (MAX_BODY_BYTES + 1), "application/json", None,
                       413, "limit"),
    "wrong content type": ("/api/predict", b"{}", "text/plain", None, 415, "application/json"),
    "form content type": ("/api/predict", b"a=1", "application/x-www-form-urlencoded", None,
                          415, "application/json"),
    "wrong image size": ("/api/predict", json.dumps(
        {"width": 28, "height": 28, "channels": 1,
         "pixels": base64.b64encode(bytes(27 * 28)).decode()}).encode(),
        "application/json", None, 400, "wrong image size"),
    "too large an image": ("/api/predict", json.dumps(
        {"width": 5000, "height": 28, "channels": 1, "pixels": ""}).encode(),
        "application/json", None, 400, "wrong image size"),
    "a width that is not a number": ("/api/predict", json.dumps(
        {"width": "28", "height": 28, "channels": 1, "pixels": ""}).encode(),
        "application/json", None, 400, "'width' must be an integer"),
    "bad base64": ("/api/predict", json.dumps(
        {"width": 28, "height": 28, "channels": 1, "pixels": "@@@"}).encode(),
        "application/json", None, 400, "base64"),
    "GET on predict": ("/api/predict", None, "", "GET", 405, "takes POST"),
    "POST on model": ("/api/model", b"{}", "application/json", None, 405, "takes GET"),
    "an unknown page": ("/etc/passwd", None, "", None, 404, "no such page"),
    "a parent path": ("/static/../serve.py", None, "", None, 404, "no such page"),
    "an index out of range": ("/api/test-digit?index=10000", None, "", None, 400,
                              "out of range"),
    "an index not a number": ("/api/test-digit?index=two", None, "", None, 400, "integer"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=list(BAD_REQUESTS))
def test_bad_requests_get_a_4xx_and_the_server_goes_on(server, case):
    path, body, ctype, method, status, words = BAD_REQUESTS[case]
    got, answer = call(server, path, body, ctype, method)
    assert got == status and words in answer["error"], answer
    assert call(server, "/api/model")[0] == 200


def test_requests_http_server_itself_rejects_get_json_too(server):
    """A malformed request line, a body without length, an Expect: 100-continue too large."""
    answer = _raw(server, b"NONSENSE\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400") or answer.startswith(b"HTTP/1.0 400")
    assert b"application/json" in answer
    host = f"127.0.0.1:{server.server_address[1]}".encode()  # its own: others get 421
    answer = _raw(server, b"POST /api/predict HTTP/1.1\r\nHost: " + host + b"\r\nContent-Type: "
                          b"application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"2\r\n{}\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 411") and b"Content-Length" in answer
    answer = _raw(server, b"POST /api/predict HTTP/1.1\r\nHost: " + host + b"\r\nContent-Type: "
                          b"application/json\r\nContent-Length: 999999999\r\n"
                          b"Expect: 100-continue\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413") and b"100 Continue" not in answer
    assert call(server, "/api/model")[0] == 200


def test_keep_alive_connection_survives_errors(server):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    for body, status in ((b"{oops", 400), (b"{}", 400), (b"{oops", 400)):
        conn.request("POST", "/api/predict", body=body,
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == status and "error" in json.loads(response.read())
    conn.request("GET", "/api/model")
    assert conn.getresponse().status == 200
    conn.close()


def test_concurrent_requests(server, model, mnist_test):
    images, labels = mnist_test
    net = portamlp.load(model)
    canvases = [canvas_rgba(images[i]) for i in range(20)]
    expected = [expected_answer(net, prepare_digit(c)) for c in canvases]
    results: dict[int, tuple] = {}

    def client(k: int) -> None:
        try:
            got = [call(server, "/api/predict", predict_body(canvases[k])),
                   call(server, f"/api/test-digit?index={k}"),
                   call(server, "/api/predict", b"{bad", "application/json"),
                   call(server, "/api/model")]
            results[k] = tuple(got)
        except Exception as exc:  # reported below, with the thread's number
            results[k] = (exc,)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results) == list(range(20))
    for k, got in results.items():
        assert len(got) == 4, got
        (s1, predicted), (s2, test), (s3, _), (s4, _) = got
        assert (s1, s2, s3, s4) == (200, 200, 400, 200)
        np.testing.assert_allclose(predicted["probabilities"], expected[k], rtol=1e-6,
                                   atol=1e-7)
        assert test["label"] == labels[k]


# ----------------------------------------------------------------------- the command line
def test_import_portamlp_does_not_import_the_server():
    code = ("import sys, portamlp; "
            "print([m for m in ('http.server', 'socketserver', 'portamlp.cli.serve') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
    core = [p for p in (ROOT / "portamlp").rglob("*.py") if "cli" not in p.parts]
    for path in core:
        text = path.read_text()
        assert "http.server" not in text and "cli.serve" not in text, path


def test_the_application_does_not_import_the_http_layer():
    """portamlp.cli.serve.app is transport-free: importing it (and so its package) leaves
    http.server and the HTTP layer unimported."""
    code = ("import sys, portamlp.cli.serve.app; "
            "print([m for m in ('http.server', 'socketserver', 'portamlp.cli.serve.web', "
            "'portamlp.cli.serve.command') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_the_package_re_exports_its_public_names():
    import portamlp.cli.serve as serve
    from portamlp.cli.serve import app, command, web

    for name in serve.__all__:
        home = next(m for m in (app, web, command) if name in vars(m))
        assert getattr(serve, name) is getattr(home, name), name
        assert name in dir(serve)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        serve.nothing  # noqa: B018


def test_without_pillow_the_server_says_what_to_install(model, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"pip install \"portamlp\[serve\]\""):
        DigitApp.from_model(model)


def test_a_host_other_than_loopback_warns(model):
    with pytest.warns(portamlp.PortamlpWarning, match="anyone who can reach"):
        srv = make_server(model, host="0.0.0.0", port=0)
    srv.server_close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_server(model, host="127.0.0.1", port=0).server_close()


def test_the_command_prints_the_url_warns_for_host_and_stops_cleanly(model):
    proc = subprocess.Popen([sys.executable, "-m", "portamlp", "serve", str(model),
                             "--host", "0.0.0.0", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
        assert match, line
        with urllib.request.urlopen(match.group(1) + "api/model", timeout=30) as response:
            assert json.loads(response.read())["layers"] == [784, 32, 10]
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "portamlp: warning: serving on 0.0.0.0" in err and "Traceback" not in err


def test_command_errors_are_one_line(model, tmp_path, capsys):
    from portamlp.cli import main

    assert main(["serve", str(tmp_path / "missing.json"), "--port", "0"]) == 2
    assert main(["serve", str(model), "--port", "70000"]) == 2
    small = portamlp.Network.initialize([784, 8, 5], seed=0)
    small.save(tmp_path / "five.json")
    assert main(["serve", str(tmp_path / "five.json"), "--port", "0"]) == 2
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["serve", str(model), "--port", str(busy.getsockname()[1])]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("portamlp: error:")]
    assert len(lines) == 4 and "Traceback" not in err
    assert "missing.json" in lines[0] and "--port 70000" in lines[1]
    assert "784 inputs" in lines[2] and "10 classes" in lines[2]
    assert "--port 0" in lines[3]


# ------------------------------------------------------------------------------- benchmark
@pytest.mark.slow
def test_latency_benchmark_reports_its_figures(tmp_path):
    out_file = tmp_path / "serve_latency.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "serve_latency.py"),
                           "--requests", "50", "--warmup", "5", "--output", str(out_file)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "p50" in proc.stdout and "p95" in proc.stdout
    report = json.loads(out_file.read_text())
    assert report["settings"]["requests"] == 50 and report["settings"]["layers"] == [
        784, 256, 128, 10]
    assert set(report["latency_ms"]) == {"p50", "p95", "mean", "min", "max"}
    assert all(v > 0 for v in report["latency_ms"].values())
    assert report["latency_ms"]["p50"] <= report["latency_ms"]["p95"]
    assert set(report["server_steps_median_ms"]) == {"decode", "prepare_digit", "forward"}
    assert all(v > 0 for v in report["server_steps_median_ms"].values())
    assert report["target_p95_ms"] == 10.0 and isinstance(report["meets_target"], bool)


# -------------------------------------------------------------------------------- browser
@pytest.mark.slow
def test_drawn_digits_are_read_in_the_browser(playwright_for_chromium, trained_model, tmp_path):
    sync_playwright = playwright_for_chromium
    path, accuracy = trained_model
    images, labels = read_split("mnist", "test")
    chosen = [int(np.flatnonzero(labels == d)[0]) for d in range(10)]  # the first of each digit
    srv = make_server(path, port=0, seed=0)
    thread = start(srv)
    try:
        with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
            try:
                context = p.chromium.launch_persistent_context(
                    profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                    viewport={"width": 1100, "height": 760})
            except Exception as exc:  # a chromium that cannot start here
                pytest.skip(f"Chromium at {CHROMIUM} did not start: {exc}")
            page = context.pages[0] if context.pages else context.new_page()
            outside = []
            page.on("request", lambda r: None if r.url.startswith(srv.url)
                    else outside.append(r.url))
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(srv.url)
            page.wait_for_function("() => /test accuracy/.test("
                                   "document.getElementById('model').textContent)")
            header = page.inner_text("#model")
            assert "784-256-128-10" in header and "relu" in header
            assert f"{100 * accuracy:.2f} %" in header
            page.wait_for_function(SETTLED)
            assert "No digit found" in page.inner_text("#verdict")  # the blank canvas

            shown = [draw_and_read(page, images[i]) for i in chosen]
            right = sum(s == str(labels[i]) for s, i in zip(shown, chosen))
            print(f"\nbrowser: {right}/10 drawn digits read right ({shown} for "
                  f"{[int(labels[i]) for i in chosen]}); model test accuracy {accuracy:.2%}")

            # What the network sees is prepare_digit of the canvas, as the server computed it.
            pad = np.array(page.evaluate("""() => { const p = document.getElementById('pad');
                return Array.from(p.getContext('2d').getImageData(0, 0, p.width, p.height)
                                  .data); }"""), dtype=np.uint8).reshape(280, 280, 4)
            seen = np.array(page.evaluate("""() => Array.from(document.getElementById('seen')
                .getContext('2d').getImageData(0, 0, 28, 28).data)"""),
                            dtype=np.uint8).reshape(28, 28, 4)
            np.testing.assert_array_equal(seen[:, :, 0], prepare_digit(pad))
            bars = page.locator("#bars li")
            assert bars.count() == 10 and "top" in (bars.nth(int(shown[-1]))
                                                    .get_attribute("class") or "")
            widths = page.evaluate("""() => Array.from(document.querySelectorAll(
                '#bars li'), li => li.querySelector('.bar').getBoundingClientRect().width /
                li.querySelector('.track').getBoundingClientRect().width)""")
            probabilities = [float(v.rstrip(" %")) / 100 for v in
                             page.locator("#bars .value").all_inner_texts()]
            np.testing.assert_allclose(widths, probabilities, atol=0.01)  # bars drawn to scale

            screenshot = tmp_path / "serve.png"
            page.screenshot(path=str(screenshot))
            if os.environ.get("PORTAMLP_SCREENSHOT"):
                target = Path(os.environ["PORTAMLP_SCREENSHOT"])
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(screenshot, target)

            page.click("#test")
            page.wait_for_function("() => document.getElementById('answer').dataset.label "
                                   "!== undefined")
            label = page.get_attribute("#answer", "data-label")
            assert f"True label {label}" in page.inner_text("#verdict")
            context.close()
    finally:
        stop(srv, thread)
    assert screenshot.stat().st_size > 10_000
    assert not outside, f"the page requested other hosts: {outside}"
    assert not errors, errors
    assert right >= 8, f"{right}/10 right: shown {shown}, labels {[labels[i] for i in chosen]}"
