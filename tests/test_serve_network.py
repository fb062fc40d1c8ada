"""The page's network view (issue 29): every layer's activations and the weights from the
server, checked against the library's forward pass; in Chromium, the view drawn from them, the
weight image of a hovered neuron, the keyboard path and the stroke-to-update time."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from serve_helpers import CHROMIUM, CHROMIUM_ARGS, SETTLED, draw_digit, start, stop

import portamlp
from portamlp.backends import to_numpy
from portamlp.cli.serve import DigitApp, RequestError, make_server
from portamlp.datasets import Preprocessing, read_split


@pytest.fixture(scope="module")
def app():
    net = portamlp.Network.initialize([784, 40, 20, 10], activation="relu",
                                      cost="cross_entropy", seed=2)
    return DigitApp(net, Preprocessing.from_scale("standardize"), seed=0)


def _forward(app, pixels):
    x = app.preprocessing.apply(np.asarray(pixels, dtype=np.uint8).reshape(1, 784), "float32")
    return [to_numpy(a)[0] for a in app.network.activations(x)]


def test_every_layer_s_activations_come_from_the_library_s_forward_pass(app):
    images, _ = read_split("mnist", "test")
    answer = app.test_digit(7, activations=True)
    layers = answer["activations"]
    assert [len(a) for a in layers] == [40, 20, 10]
    for got, expected in zip(layers, _forward(app, answer["input"])):
        np.testing.assert_array_equal(np.float32(got), expected)
    np.testing.assert_allclose(layers[-1], answer["probabilities"], rtol=1e-6)
    assert "activations" not in app.test_digit(7)
    drawn = app.predict(255 - np.repeat(np.repeat(images[3], 10, 0), 10, 1), activations=True)
    assert [len(a) for a in drawn["activations"]] == [40, 20, 10]
    blank = app.predict(np.full((50, 50), 255, np.uint8), activations=True)
    assert blank["prediction"] is None and "activations" not in blank


def test_weights_of_one_unit_or_of_a_small_layer(app):
    net = app.network
    w1, b1 = to_numpy(net.weights[0]), to_numpy(net.biases[0])
    one = app.weights(1, 5)
    assert one["inputs"] == 784 and one["unit"] == 5
    np.testing.assert_array_equal(np.float32(one["weights"]), w1[5])
    assert np.float32(one["bias"]) == b1[5]
    whole = app.weights(1)
    assert whole["units"] == 40 and len(whole["weights"]) == 40
    np.testing.assert_array_equal(np.float32(whole["weights"]), w1)
    last = app.weights(3, 9)
    np.testing.assert_array_equal(np.float32(last["weights"]), to_numpy(net.weights[2])[9])
    for args, message in (((0,), "layer 0 is out of range: the network has weight layers 1 to "
                           "3"), ((4, 0), "layer 4"), ((2, 20), "unit 20 is out of range")):
        with pytest.raises(RequestError, match=message):
            app.weights(*args)
    big = DigitApp(portamlp.Network.initialize([784, 300, 10], seed=0),
                   Preprocessing.from_scale(255))
    with pytest.raises(RequestError, match="layer 1 has 300 units.*256 or fewer.*unit=J"):
        big.weights(1)


def test_the_endpoints_over_http(app, tmp_path):
    from test_serve import call, predict_body

    images, _ = read_split("mnist", "test")
    srv = make_server(_save(app, tmp_path), port=0, seed=0)
    thread = start(srv)
    try:
        status, answer = call(srv, "/api/test-digit?index=3&activations=1")
        assert status == 200 and [len(a) for a in answer["activations"]] == [40, 20, 10]
        body = predict_body(255 - np.repeat(np.repeat(images[0], 10, 0), 10, 1))
        status, drawn = call(srv, "/api/predict", body[:-1] + b', "activations": true}')
        assert status == 200 and len(drawn["activations"]) == 3
        status, error = call(srv, "/api/predict", body[:-1] + b', "activations": "yes"}')
        assert status == 400 and "'activations' must be true or false" in error["error"]
        status, weights = call(srv, "/api/weights?layer=2&unit=4")
        assert status == 200 and weights["inputs"] == 40
        for query, message in (("", "say which layer"), ("?layer=x", "layer must be an integer"),
                               ("?layer=9", "out of range"),
                               ("?layer=1&unit=-1", "unit -1 is out of range"),
                               ("?layer=1&unit=", "unit must be an integer, got ''"),
                               ("?layer=1&unit=0&unit=1", "unit is given 2 times"),
                               ("?layer=1&layer=1", "layer is given 2 times")):
            status, error = call(srv, "/api/weights" + query)
            assert status == 400 and message in error["error"], error
        status, error = call(srv, "/api/test-digit?activations=maybe")
        assert status == 400 and "activations must be 1, true, 0 or false" in error["error"]
        status, error = call(srv, "/api/test-digit?activations=")
        assert status == 400 and "got ''" in error["error"]
        for extra, message in ((b', "activations": null}', "must be true or false, got null"),
                               (b', "activation": true}', "unknown field 'activation' (did you "
                                                          "mean 'activations'?)")):
            status, error = call(srv, "/api/predict", body[:-1] + extra)
            assert status == 400 and message in error["error"], error
    finally:
        stop(srv, thread)


def _save(app, folder: Path) -> Path:
    path = folder / "view.json"
    app.network.preprocessing = app.preprocessing
    app.network.save(path)
    return path


# -------------------------------------------------------------------------------- browser
def _open(p, url):
    context = p.chromium.launch_persistent_context(
        tempfile.mkdtemp(), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
        viewport={"width": 1100, "height": 1400})
    page = context.pages[0] if context.pages else context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_function("() => document.getElementById('grid-caption').textContent"
                           ".startsWith('All')")
    return context, page, errors


@pytest.mark.slow
def test_the_network_view_lights_up_as_a_digit_is_drawn(playwright_for_chromium,
                                                        trained_model, tmp_path):
    path, _ = trained_model
    net = portamlp.load(path)
    images, labels = read_split("mnist", "test")
    srv = make_server(path, port=0, seed=0)
    thread = start(srv)
    try:
        with playwright_for_chromium() as p:
            context, page, errors = _open(p, srv.url)
            page.wait_for_function(SETTLED)
            draw_digit(page, images[int(np.flatnonzero(labels == 3)[0])])
            page.wait_for_function(SETTLED, timeout=20_000)
            page.wait_for_function("() => document.querySelectorAll('#net .unit').length > 0")
            layers = page.evaluate("""() => Array.from(document.querySelectorAll('#net .layer'),
                g => [+g.dataset.layer, +g.dataset.units, +g.dataset.shown])""")
            assert layers == [[1, 256, 16], [2, 128, 16], [3, 10, 10]]
            # the values drawn are the library's forward pass of the 28×28 input shown
            pixels = page.evaluate("() => portamlpView.last.input")
            x = net.preprocessing.apply(np.asarray(pixels, np.uint8).reshape(1, 784), net.dtype)
            expected = [to_numpy(a)[0] for a in net.activations(x)]
            units = page.evaluate("""() => Array.from(document.querySelectorAll('#net .unit'),
                c => [+c.dataset.layer, +c.dataset.unit, +c.dataset.activation])""")
            assert len(units) == 16 + 16 + 10
            for layer, unit, value in units:
                assert np.float32(value) == expected[layer - 1][unit]
            hidden = [u for u in units if u[0] == 1]
            top16 = np.argsort(-expected[0], kind="stable")[:16]
            assert {u[1] for u in hidden} == set(top16.tolist())  # the most active are shown
            # hovering a first-layer neuron shows its incoming weights as a 28×28 image
            unit = hidden[0][1]
            page.hover(f"#net .unit[data-layer='1'][data-unit='{unit}']")
            page.wait_for_function(f"() => document.getElementById('neuron-weights')"
                                   f".dataset.unit === '{unit}'")
            rgba = np.array(page.evaluate("""() => Array.from(document.getElementById(
                'neuron-weights').getContext('2d').getImageData(0, 0, 28, 28).data)"""),
                            dtype=np.int64).reshape(784, 4)
            w = to_numpy(net.weights[0])[unit]
            strong = np.abs(w) > 0.5 * np.abs(w).max()
            blue = rgba[:, 2] > rgba[:, 0]
            assert strong.any() and np.array_equal(blue[strong], w[strong] > 0)
            assert f"unit {unit}: what it looks for" in page.inner_text("#neuron-caption")
            links = page.evaluate("""() => Array.from(document.querySelectorAll('#net .link'),
                l => [+l.dataset.from, +l.dataset.weight, l.getAttribute('stroke-dasharray')])""")
            assert len(links) == 12
            assert all((d == "none") == (wt >= 0) for _, wt, d in links)  # sign by line style
            order = np.argsort(-np.abs(w))[:12]
            assert sorted(f for f, _, _ in links) == sorted(order.tolist())
            # the stroke-to-update time of every drawn answer, measured in the browser
            latencies = page.evaluate("() => portamlpView.latencies")
            assert latencies and all(ms > 0 for ms in latencies)
            shot = tmp_path / "network.png"
            page.locator("main").screenshot(path=str(shot))
            target = os.environ.get("PORTAMLP_NETWORK_SCREENSHOT")
            if target:
                shutil.copy(shot, target)
            context.close()
    finally:
        stop(srv, thread)
    assert not errors, errors
    from PIL import Image

    image = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert image.shape[0] > 600 and image.std() > 20  # a drawn page, not a blank one


@pytest.mark.slow
def test_the_keyboard_reaches_every_neuron(playwright_for_chromium, trained_model):
    path, _ = trained_model
    srv = make_server(path, port=0, seed=0)
    thread = start(srv)
    try:
        with playwright_for_chromium() as p:
            context, page, errors = _open(p, srv.url)
            page.click("#test")
            page.wait_for_function("() => document.querySelectorAll('#net .unit').length > 0")
            for _ in range(12):  # Tab from the buttons into the network view
                page.keyboard.press("Tab")
                focused = page.evaluate("() => document.activeElement.getAttribute('class')")
                if focused and "unit" in focused:
                    break
            assert "unit" in (focused or ""), "Tab never reached a neuron"
            page.wait_for_function("() => document.getElementById('net').dataset.drawn")
            first = page.evaluate("() => document.getElementById('net').dataset.selected")
            assert first.startswith("1/")
            page.keyboard.press("ArrowDown")
            page.wait_for_function(f"() => document.getElementById('net').dataset.drawn "
                                   f"!== '{first}'")
            second = page.evaluate("() => document.getElementById('net').dataset.selected")
            page.wait_for_function("() => document.getElementById('neuron-weights').dataset"
                                   f".unit === '{second.split('/')[1]}'")
            assert second.startswith("1/") and "what it looks for" in page.inner_text(
                "#neuron-caption")
            assert page.evaluate("() => document.getElementById('neuron-weights').dataset.unit")\
                == second.split("/")[1]
            page.keyboard.press("ArrowRight")
            page.wait_for_function("() => document.getElementById('net').dataset.selected"
                                   ".startsWith('2/')")
            label = page.evaluate("() => document.activeElement.getAttribute('aria-label')")
            assert label.startswith("hidden layer 2, unit") and "activation" in label
            page.keyboard.press("ArrowRight")
            page.wait_for_function("() => document.getElementById('net').dataset.selected"
                                   ".startsWith('3/')")
            assert page.evaluate("() => document.activeElement.getAttribute('aria-label')")\
                .startswith("output layer, digit")
            context.close()
    finally:
        stop(srv, thread)
    assert not errors, errors


# ---------------------------------------------------------------- the same pictures offline
def test_plot_weights_and_activations(tmp_path, app):
    import json

    from cli_helpers import run
    from PIL import Image

    from portamlp.images import digit_to_png

    model = _save(app, tmp_path)
    report = json.loads(run("plot", "weights", "view.json", "--json", cwd=tmp_path).stdout)
    assert report == {"output": "weights.png", "units": 40, "shown": 40}
    images, labels = read_split("mnist", "test")
    digit_to_png(images[5], tmp_path / "five.png")
    report = json.loads(run("plot", "activations", "view.json", "five.png", "--json",
                            cwd=tmp_path).stdout)
    from portamlp.images import prepare_digit

    x = app.preprocessing.apply(prepare_digit(tmp_path / "five.png").reshape(1, 784), "float32")
    assert report["layers"] == [40, 20, 10]
    assert report["prediction"] == int(to_numpy(app.network.predict(x))[0])
    report = json.loads(run("plot", "activations", "view.json", "--index", "3", "-o", "t.png",
                            "--json", cwd=tmp_path).stdout)
    assert report["output"] == "t.png"
    for name in ("weights.png", "activations.png", "t.png"):
        pixels = np.asarray(Image.open(tmp_path / name).convert("L"), dtype=float)
        assert pixels.std() > 20, name  # drawn, not blank
    for argv, message in ((["weights"], "portamlp plot weights MODEL: 1 file after 'weights', "
                                        "got 0"),
                          (["wieghts", "view.json"], "did you mean `portamlp plot weights`"),
                          (["weights", "view.json", "--index", "5"],
                           "--index does not apply to `portamlp plot weights`"),
                          (["weights", "nothing.json"], "nothing.json: no such model file"),
                          (["activations", "view.json", "five.png", "--index", "2"],
                           "not both"),
                          (["activations", "view.json", "--index", "10000"], "out of range"),
                          (["distortions", "view.json"], "0 files after 'distortions'"),
                          (["weights", "view.json"], "already exists")):
        proc = run("plot", *argv, cwd=tmp_path, check=False)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert model.exists()


@pytest.mark.slow
def test_the_page_latency_benchmark_reports_its_figures(playwright_for_chromium, trained_model,
                                                       tmp_path):
    import json

    from cli_helpers import run_bench

    path, _ = trained_model
    out_file = tmp_path / "page.json"
    out = run_bench("page_latency.py", "--model", str(path), "--digits", "2", "--output",
                    str(out_file), "--screenshot", str(tmp_path / "shot.png"))
    report = json.loads(out_file.read_text())
    assert report["digits"] == 2 and report["answers"] >= 2 and report["read_right"] <= 2
    lat = report["latency_ms"]
    assert 0 < lat["min"] <= lat["median"] <= lat["p95"] <= lat["max"]
    assert report["meets_target"] == (lat["median"] < 50.0) and "stroke to update" in out
    assert (tmp_path / "shot.png").stat().st_size > 10_000
