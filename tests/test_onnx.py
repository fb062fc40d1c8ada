"""ONNX export: the network's own forward pass recorded by ndonnx, run by ONNX Runtime."""

import json
import subprocess
import sys

import numpy as np
import pytest

ndonnx = pytest.importorskip("ndonnx", reason="the onnx extra is not installed: pip install "
                                              "\"portamlp[onnx]\"")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import portamlp  # noqa: E402
from portamlp import Network  # noqa: E402
from portamlp.backends import to_numpy  # noqa: E402
from portamlp.datasets import load  # noqa: E402
from portamlp.export import build_graph, check_onnx, read_onnx_metadata  # noqa: E402
from portamlp.nn.activations import ACTIVATIONS  # noqa: E402
from portamlp.nn.costs import COSTS  # noqa: E402


def _run(path, x, inputs="features"):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {inputs: x})))


@pytest.fixture(scope="module")
def trained():
    """A 784-64-10 ReLU network, one epoch on 5,000 MNIST images (÷255 recorded)."""
    return portamlp.train(layers=(784, 64, 10), activation="relu", cost="cross_entropy",
                          learning_rate=0.5, epochs=1, train_length=5000, seed=0).network


@pytest.fixture(scope="module")
def test_pixels():
    x, y = load("mnist", "test", dtype="float64", scale=255)
    return np.rint(x * 255.0), y


def test_mnist_test_set_labels_equal_predict(trained, test_pixels, tmp_path):
    pixels, _ = test_pixels
    features = (pixels / 255.0).astype(np.float32)
    path = trained.to_onnx(tmp_path / "net.onnx")
    onnx.checker.check_model(onnx.load(str(path)))
    got = _run(path, features)
    np.testing.assert_array_equal(got["label"], to_numpy(trained.predict(features)))
    np.testing.assert_allclose(got["outputs"], to_numpy(trained.predict_proba(features)),
                               atol=1e-5, rtol=0)
    assert got["label"].dtype == np.int64 and got["outputs"].shape == (10000, 10)
    # any batch size: the batch dimension is dynamic
    assert _run(path, features[:1])["outputs"].shape == (1, 10)


@pytest.mark.parametrize("inputs", ["pixels", "images"])
def test_raw_pixels_are_prepared_inside_the_graph(trained, test_pixels, tmp_path, inputs):
    pixels, _ = test_pixels
    x = pixels[:2000].astype(np.float32)
    if inputs == "images":
        x = x.reshape(-1, 28, 28)
    path = portamlp.export_onnx(trained, tmp_path / "raw.onnx", inputs=inputs)
    got = _run(path, x, inputs)
    np.testing.assert_array_equal(
        got["label"], to_numpy(trained.predict(trained.preprocessing.apply(pixels[:2000]))))
    meta = read_onnx_metadata(path)
    assert meta["inputs"] == inputs and meta["preprocessing"] == "pixels ÷255"
    assert meta["preprocessing_in_graph"] == "yes"
    assert json.loads(meta["preprocessing_json"])["divisor"] == 255.0
    features = read_onnx_metadata(trained.to_onnx(tmp_path / "f.onnx"))
    assert features["preprocessing"] == "pixels ÷255"  # what the caller must do itself
    assert features["preprocessing_in_graph"] == "no"


def test_standardised_preprocessing_goes_into_the_graph(test_pixels, tmp_path):
    net = portamlp.train(layers=(784, 16, 10), activation="tanh", cost="cross_entropy",
                         learning_rate=0.1, epochs=1, train_length=2000, scale="standardize",
                         seed=0).network
    pixels, _ = test_pixels
    path = net.to_onnx(tmp_path / "std.onnx", inputs="pixels")
    got = _run(path, pixels[:500].astype(np.float32), "pixels")
    expected = to_numpy(net.predict_proba(net.preprocessing.apply(pixels[:500])))
    np.testing.assert_allclose(got["outputs"], expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cost", sorted(COSTS))
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_cost_and_dtype_exports(activation, cost, dtype, tmp_path):
    net = Network.initialize((6, 5, 3), activation=activation, cost=cost, dtype=dtype, seed=1)
    x = np.random.default_rng(0).standard_normal((40, 6)).astype(dtype)
    path = net.to_onnx(tmp_path / "n.onnx", check=x)  # check_onnx: labels equal, outputs 1e-5
    got = _run(path, x)
    assert got["outputs"].dtype == np.dtype(dtype)
    assert ("label" in got) == (net.targets != "values")
    meta = read_onnx_metadata(path)
    assert meta["layers"] == "6,5,3" and meta["activation"] == activation
    assert meta["cost"] == cost and meta["dtype"] == dtype
    assert meta["portamlp"] == portamlp.__version__ and int(meta["opset"]) >= 13


def test_the_graph_is_the_forward_pass_traced(monkeypatch):
    """The export runs nn.network.forward (the function predict runs), not a copy of it."""
    import portamlp.export as export

    calls = []
    real = export.forward
    monkeypatch.setattr(export, "forward", lambda *a: calls.append(a[0]) or real(*a))
    build_graph(Network.initialize((4, 3, 2), cost="cross_entropy", seed=0))
    assert calls == [ndonnx]


def test_a_network_on_another_backend_exports_the_same_graph(backend, tmp_path):
    net = Network.initialize((5, 4, 3), activation="tanh", cost="cross_entropy",
                             dtype="float32", seed=2, backend=backend)
    host = Network.initialize((5, 4, 3), activation="tanh", cost="cross_entropy",
                              dtype="float32", seed=2, backend="numpy")
    x = np.random.default_rng(1).standard_normal((9, 5)).astype(np.float32)
    a = _run(net.to_onnx(tmp_path / "a.onnx"), x)
    b = _run(host.to_onnx(tmp_path / "b.onnx"), x)
    np.testing.assert_array_equal(a["outputs"], b["outputs"])


def test_refusals(trained, tmp_path):
    path = trained.to_onnx(tmp_path / "n.onnx")
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True.*--force"):
        trained.to_onnx(path)
    assert path.read_bytes() == before
    trained.to_onnx(path, overwrite=True, inputs="images")
    assert path.read_bytes() != before
    with pytest.raises(ValueError, match="a .onnx file"):
        trained.to_onnx(tmp_path / "n.json")
    plain = Network.initialize((6, 3), cost="cross_entropy", seed=0)
    with pytest.raises(ValueError, match="does not record one.*inputs='features'"):
        plain.to_onnx(tmp_path / "p.onnx", inputs="pixels")
    with pytest.raises(ValueError, match="unknown inputs 'rows'"):
        plain.to_onnx(tmp_path / "p.onnx", inputs="rows")
    with pytest.raises(ValueError, match=r"check inputs of shape \(5, 3\); the graph takes "
                                         r"features of shape \(N, 784\)"):
        trained.to_onnx(tmp_path / "c.onnx", check=np.zeros((5, 3)))
    assert not (tmp_path / "c.onnx").exists()
    other = Network.initialize((784, 3, 10), cost="cross_entropy", seed=5)
    with pytest.raises(AssertionError, match="differ"):  # a check that fails is reported
        check_onnx(trained.to_onnx(tmp_path / "f.onnx").read_bytes(), other,
                   np.random.default_rng(0).uniform(0, 1, (50, 784)), "features")


def test_portamlp_reads_no_onnx_files_and_says_so(trained, tmp_path):
    path = trained.to_onnx(tmp_path / "n.onnx")
    with pytest.raises(portamlp.ModelFormatError, match="an ONNX model.*ONNX Runtime"):
        portamlp.load(path)
    foreign = tmp_path / "foreign.onnx"
    model = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])]))
    foreign.write_bytes(model.SerializeToString())
    with pytest.raises(ValueError, match="not one portamlp exported"):
        read_onnx_metadata(foreign)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not an ONNX model"):
        read_onnx_metadata(tmp_path / "junk.onnx")
    with pytest.raises(portamlp.ModelFormatError) as caught:  # judged by content, not name
        portamlp.load(tmp_path / "junk.onnx")
    assert "an ONNX model" not in str(caught.value)
    trained.save(tmp_path / "model.json")
    (tmp_path / "model.onnx").write_bytes((tmp_path / "model.json").read_bytes())
    assert portamlp.load(tmp_path / "model.onnx").layers == trained.layers


def test_command_exports_and_checks(trained, tmp_path):
    model = tmp_path / "net.json"
    trained.save(model)
    run = [sys.executable, "-m", "portamlp", "export", str(model), str(tmp_path / "net.onnx")]
    done = subprocess.run(run, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert ("checked on the 10,000 mnist test images with ONNX Runtime: the labels equal "
            "portamlp's") in done.stdout
    again = subprocess.run(run, capture_output=True, text=True, cwd=tmp_path)
    assert again.returncode != 0 and "pass --force to replace it" in again.stderr
    assert "overwrite=True" not in again.stderr  # command-line words on the command line
    as_json = subprocess.run(run + ["--force", "--json", "--no-check"], capture_output=True,
                             text=True, cwd=tmp_path)
    report = json.loads(as_json.stdout)
    assert report["inputs"] == "features" and report["checked_rows"] is None
    regression = Network.initialize((5, 4, 2), cost="squared_error", seed=0)
    regression.save(tmp_path / "reg.json")
    done = subprocess.run([sys.executable, "-m", "portamlp", "export", "reg.json", "reg.onnx"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert ("checked on 256 random rows (the network takes its own features) with ONNX "
            "Runtime: the values agree with portamlp's") in done.stdout, done.stderr
    refused = subprocess.run([sys.executable, "-m", "portamlp", "export", "reg.json", "r.onnx",
                              "--inputs", "images"], capture_output=True, text=True,
                             cwd=tmp_path)
    assert refused.returncode != 0 and "use --inputs features" in refused.stderr
    predict = subprocess.run([sys.executable, "-m", "portamlp", "predict",
                              str(tmp_path / "net.onnx"), "--index", "0"],
                             capture_output=True, text=True, cwd=tmp_path)
    assert predict.returncode != 0 and "an ONNX model" in predict.stderr


def test_benchmark_quick_mode_compares_both_on_every_network(tmp_path):
    import json

    from cli_helpers import run_bench

    out = tmp_path / "onnx.json"
    stdout = run_bench("onnx_compare.py", "--quick", "--output", out)
    report = json.loads(out.read_text())
    assert [(r["network"], r["batch"]) for r in report["rows"]] == [
        ("784-30-10", 1), ("784-30-10", 100), ("784-1024-1024-10", 1),
        ("784-1024-1024-10", 100)]
    for row in report["rows"]:
        assert row["onnxruntime_seconds"] > 0 and row["portamlp_seconds"] > 0
        assert row["portamlp_over_onnxruntime"] == pytest.approx(
            row["portamlp_seconds"] / row["onnxruntime_seconds"])
    assert "| 784-30-10 | 1 |" in stdout and report["quick"] is True


def test_guide_script_gives_portamlps_test_accuracy(trained, tmp_path, monkeypatch, capsys):
    """The guide's five-line ONNX Runtime script, run as written next to an export."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "docs" / "guide" / "model-files.md").read_text()
    start = readme.index("```python\n", readme.index("Then, anywhere ONNX Runtime runs"))
    code = readme[start + len("```python\n"):readme.index("```", start + 10)]
    assert len(code.strip().splitlines()) == 5
    trained.to_onnx(tmp_path / "net.onnx")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/guide/model-files.md", "exec"), {})
    assert float(capsys.readouterr().out) == trained.evaluate("mnist")
