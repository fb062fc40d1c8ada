"""Saving and loading: exact round trips, the original Rust program's format, malformed files."""

import json
from pathlib import Path

import numpy as np
import pytest

import portamlp
from portamlp import ModelFormatError, Network
from portamlp.backends import to_numpy


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_round_trip_is_exact(tmp_path, backend, dtype):
    net = Network.initialize((784, 30, 10), activation="tanh", cost="cross_entropy",
                             dtype=dtype, seed=4, backend=backend)
    path = tmp_path / "net.json"
    net.save(path)
    loaded = portamlp.load(path, backend=backend)
    assert loaded.layers == net.layers and loaded.dtype == dtype
    assert loaded.activation == "tanh" and loaded.cost == "cross_entropy"
    assert loaded.backend.name == backend.name
    for a, b in zip(net.parameters(), loaded.parameters()):
        np.testing.assert_array_equal(to_numpy(b), to_numpy(a))


def test_saved_file_is_the_documented_json(tmp_path):
    net = Network.from_arrays([np.array([[1.0, 2.0], [3.0, 4.0]])], [np.array([0.5, -0.5])],
                              backend="numpy")
    net.save(tmp_path / "n.json")
    doc = json.loads((tmp_path / "n.json").read_text())
    assert doc == {"format": "portamlp-mlp", "version": 1, "layers": [2, 2],
                   "activation": "sigmoid", "cost": "quadratic", "dtype": "float64",
                   "weights": [[[1.0, 2.0], [3.0, 4.0]]], "biases": [[0.5, -0.5]]}


def test_existing_file_is_not_overwritten_without_consent(tmp_path):
    path = tmp_path / "n.json"
    path.write_text("precious")
    net = Network.initialize((3, 2), seed=0, backend="numpy")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        net.save(path)
    assert path.read_text() == "precious"
    net.save(path, overwrite=True)
    assert portamlp.load(path).layers == (3, 2)
    assert [p.name for p in tmp_path.iterdir()] == ["n.json"]  # no temporary file left behind


def test_unknown_extension_asks_for_a_format(tmp_path):
    net = Network.initialize((3, 2), seed=0, backend="numpy")
    with pytest.raises(ValueError, match="format='json'"):
        net.save(tmp_path / "n.model")
    net.save(tmp_path / "n.model", format="json")
    assert portamlp.load(tmp_path / "n.model").layers == (3, 2)


def _rust_file(tmp_path, function_type="Sigmoid"):
    # Written by hand in the original program's layout: a 4-3-2 network.
    doc = {
        "layers": [4, 3, 2],
        "weights": [[[0.5, -0.25, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [-1.0, 0.5, 0.25, 0.0]],
                    [[2.0, 0.0, -2.0], [-2.0, 0.0, 2.0]]],
        "biases": [[0.0, 0.1, -0.1], [0.0, 0.0]],
        "activation_function": {"function_type": function_type},
    }
    path = tmp_path / "rust.json"
    path.write_text(json.dumps(doc))
    return path


def test_rust_program_file_loads_and_predicts(tmp_path):
    net = portamlp.load(_rust_file(tmp_path), backend="numpy")
    assert net.layers == (4, 3, 2) and net.activation == "sigmoid" and net.cost == "quadratic"
    x = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0], [-1.0, 0.0, 1.0, 0.0]])
    # hidden unit 0 sees +0.5 / +1.0 / -0.5, unit 2 sees -1 / 0 / 1.25: output 0 = 2(h0 - h2)
    h = 1 / (1 + np.exp(-(x @ np.array([[0.5, -0.25, 0.0, 1.0], [0, 0, 0, 0],
                                         [-1.0, 0.5, 0.25, 0.0]]).T + [0.0, 0.1, -0.1])))
    expected = np.argmax(h @ np.array([[2.0, 0.0, -2.0], [-2.0, 0.0, 2.0]]).T, axis=1)
    np.testing.assert_array_equal(net.predict(x), expected)
    np.testing.assert_array_equal(expected, [0, 0, 1])
    relu = portamlp.load(_rust_file(tmp_path, "ReLU"))
    assert relu.activation == "relu"


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.pop("weights"), "missing field 'weights'"),
    (lambda d: d.pop("format"), "missing field 'format'"),
    (lambda d: d.update(format="keras"), "'keras'"),
    (lambda d: d.update(version=99), "version 99"),
    (lambda d: d.update(layers="784,30"), "'layers'"),
    (lambda d: d.update(layers=[3, 10**9]), "'layers'"),
    (lambda d: d.update(activation="swish"), "'swish'"),
    (lambda d: d.update(cost="hinge"), "'hinge'"),
    (lambda d: d.update(dtype="int8"), "'int8'"),
    (lambda d: d["weights"].__setitem__(0, [[1.0]]), r"weights\[0\] must have shape \(2, 3\)"),
    (lambda d: d["biases"].__setitem__(0, [1.0]), r"biases\[0\] must have shape \(2,\)"),
    (lambda d: d["weights"][0][0].__setitem__(0, "x"), r"weights\[0\] must be a nested list"),
    (lambda d: d["weights"].pop(), "need 1 weight matrices"),
])
def test_malformed_files_raise_model_format_error(tmp_path, mutate, match):
    net = Network.initialize((3, 2), seed=0, backend="numpy")
    path = tmp_path / "n.json"
    net.save(path)
    doc = json.loads(path.read_text())
    mutate(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(ModelFormatError, match=match):
        portamlp.load(path)


def test_nan_truncated_and_hostile_files(tmp_path):
    net = Network.initialize((3, 2), seed=0, backend="numpy")
    path = tmp_path / "n.json"
    net.save(path)
    text = path.read_text()
    bad = tmp_path / "bad.json"
    doc = json.loads(text)
    doc["weights"][0][0][0] = float("nan")
    bad.write_text(json.dumps(doc))
    with pytest.raises(ModelFormatError, match="non-finite"):
        portamlp.load(bad)
    bad.write_text(text[: len(text) // 2])
    with pytest.raises(ModelFormatError, match="truncated"):
        portamlp.load(bad)
    bad.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ModelFormatError):
        portamlp.load(bad)
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ModelFormatError, match="UTF-8"):
        portamlp.load(bad)
    with pytest.raises(ModelFormatError, match="limit"):
        portamlp.load(path, max_bytes=10)
    with pytest.raises(FileNotFoundError, match="no such model file"):
        portamlp.load(tmp_path / "missing.json")


# ----------------------------------------------------------------------------- safetensors
def test_safetensors_round_trip_and_names(tmp_path, backend):
    from portamlp.files.safetensors_format import read_safetensors

    net = Network.initialize((784, 30, 20, 10), activation="relu", cost="cross_entropy",
                             seed=1, backend=backend)
    path = tmp_path / "net.safetensors"
    net.save(path)
    tensors, meta = read_safetensors(path)
    assert sorted(tensors) == ["0.bias", "0.weight", "2.bias", "2.weight", "4.bias", "4.weight"]
    assert meta == {"format": "portamlp-mlp", "version": "1", "layers": "[784, 30, 20, 10]",
                    "activation": "relu", "cost": "cross_entropy"}
    loaded = portamlp.load(path, backend=backend)
    assert (loaded.activation, loaded.cost, loaded.dtype) == ("relu", "cross_entropy", "float32")
    for a, b in zip(net.parameters(), loaded.parameters()):
        np.testing.assert_array_equal(to_numpy(b), to_numpy(a))


def test_pytorch_loads_a_saved_network_and_portamlp_loads_pytorch(tmp_path):
    torch = pytest.importorskip("torch")
    st = pytest.importorskip("safetensors.torch")
    x, _ = portamlp.datasets.load_mnist("test", length=200, backend="numpy")
    net = Network.initialize((784, 32, 10), activation="tanh", cost="cross_entropy", seed=2,
                             backend="numpy")
    net.save(tmp_path / "mine.safetensors")
    model = torch.nn.Sequential(torch.nn.Linear(784, 32), torch.nn.Tanh(),
                                torch.nn.Linear(32, 10), torch.nn.Softmax(dim=1))
    model.load_state_dict(st.load_file(tmp_path / "mine.safetensors"))
    with torch.no_grad():
        np.testing.assert_allclose(model(torch.from_numpy(x)).numpy(), net.predict_proba(x),
                                   rtol=1e-5, atol=1e-6)
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Linear(784, 20), torch.nn.ReLU(),
                                 torch.nn.Linear(20, 10))
    st.save_file(theirs.state_dict(), tmp_path / "theirs.safetensors")
    with pytest.raises(ModelFormatError, match="activation=..."):
        portamlp.load(tmp_path / "theirs.safetensors")
    mine = portamlp.load(tmp_path / "theirs.safetensors", activation="relu",
                         cost="cross_entropy", backend="numpy")
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).argmax(dim=1).numpy()
    np.testing.assert_array_equal(mine.predict(x), expected)


def _write_safetensors(path, header: dict, body: bytes, length=None):
    text = json.dumps(header).encode()
    n = len(text) if length is None else length
    path.write_bytes(n.to_bytes(8, "little") + text + body)


def _good_header():
    return {"__metadata__": {"activation": "sigmoid", "cost": "quadratic"},
            "0.weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
            "0.bias": {"dtype": "F32", "shape": [2], "data_offsets": [24, 32]}}


@pytest.mark.parametrize("change, match", [
    (lambda h, b: (h, b, 10**12), "header length"),
    (lambda h, b: (h, b[:-4], None), "not fully covered"),
    (lambda h, b: (h, b + b"xxxx", None), "not fully covered"),
    (lambda h, b: ({**h, "0.weight": {**h["0.weight"], "dtype": "Q9"}}, b, None), "Q9"),
    (lambda h, b: ({**h, "0.weight": {**h["0.weight"], "shape": [3, 3]}}, b, None),
     "invalid shape"),
    (lambda h, b: ({**h, "0.weight": {**h["0.weight"], "shape": [-2, 3]}}, b, None), "-2"),
    (lambda h, b: ({**h, "0.bias": {**h["0.bias"], "data_offsets": [16, 24]}}, b, None),
     "invalid offset"),
    (lambda h, b: ({**h, "0.weight": {**h["0.weight"], "shape": [2**32, 2**32]}}, b, None),
     "overflow"),
    (lambda h, b: ({**h, "0.weight": {**h["0.weight"], "shape": [2**64]}}, b, None),
     "expected usize"),
    (lambda h, b: ({**h, "0.weight": {**h["0.weight"], "dtype": "I64", "shape": [3]}}, b, None),
     "dtype I64"),
    (lambda h, b: ({k: v for k, v in h.items() if k != "0.bias"}, b[:24], None),
     "missing tensor '0.bias'"),
    (lambda h, b: ({**h, "__metadata__": {"cost": "quadratic", "activation": "swish"}}, b, None),
     "'swish'"),
    (lambda h, b: ({**h, "__metadata__": {**h["__metadata__"], "layers": "[3, 5]"}}, b, None),
     "does not match"),
    (lambda h, b: ({**h, "__metadata__": {**h["__metadata__"], "format": "other"}}, b, None),
     "'other'"),
    (lambda h, b: ({**h, "rogue": {"dtype": "F32", "shape": [0], "data_offsets": [32, 32]}},
                   b, None), "unexpected tensor 'rogue'"),
    (lambda h, b: (h, np.full(8, np.nan, "<f4").tobytes(), None), "non-finite"),
    (lambda h, b: ({**h, "__metadata__": {"activation": 3}}, b, None), "expected a string"),
])
def test_malformed_safetensors_raise_model_format_error(tmp_path, change, match):
    body = np.arange(8, dtype="<f4").tobytes()
    header, body, length = change(_good_header(), body)
    path = tmp_path / "bad.safetensors"
    _write_safetensors(path, header, body, length)
    with pytest.raises(ModelFormatError, match=match):
        portamlp.load(path)


def test_tiny_or_garbage_safetensors(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\x01\x02")
    with pytest.raises(ModelFormatError, match="truncated"):
        portamlp.load(path)
    path.write_bytes((5).to_bytes(8, "little") + b"{{{{{")
    with pytest.raises(ModelFormatError, match="invalid JSON"):
        portamlp.load(path)
    _write_safetensors(path, _good_header(), np.arange(8, dtype="<f4").tobytes())
    assert portamlp.load(path).layers == (3, 2)


@pytest.mark.parametrize("dtype, torch_dtype", [("F16", "float16"), ("BF16", "bfloat16")])
def test_half_precision_from_pytorch_loads_as_float32_or_is_refused(tmp_path, dtype,
                                                                      torch_dtype):
    torch = pytest.importorskip("torch")
    st = pytest.importorskip("safetensors.torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    model = model.to(getattr(torch, torch_dtype))
    path = tmp_path / "half.safetensors"
    st.save_file(model.state_dict(), path)
    if dtype == "BF16":
        with pytest.raises(ModelFormatError, match=r"dtype BF16.*model.float\(\)"):
            portamlp.load(path, activation="relu", cost="cross_entropy")
        return
    net = portamlp.load(path, activation="relu", cost="cross_entropy", backend="numpy")
    assert net.dtype == "float32"
    np.testing.assert_array_equal(net.weights[0], model[0].weight.detach().float().numpy())


def test_files_of_the_first_safetensors_writer_still_load(tmp_path):
    """portamlp 0.1 wrote safetensors itself: an 8-byte aligned header, F32 tensors."""
    weights = [np.arange(6, dtype="<f4").reshape(2, 3) / 7, np.ones((2, 2), "<f4")]
    biases = [np.zeros(2, "<f4"), np.full(2, 0.5, "<f4")]
    tensors = {"0.weight": weights[0], "0.bias": biases[0], "2.weight": weights[1],
               "2.bias": biases[1]}
    header, offset, chunks = {"__metadata__": {"format": "portamlp-mlp", "version": "1",
                                               "layers": "[3, 2, 2]", "activation": "sigmoid",
                                               "cost": "quadratic"}}, 0, []
    for name, a in tensors.items():
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        chunks.append(a.tobytes())
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path = tmp_path / "old.safetensors"
    path.write_bytes(len(text).to_bytes(8, "little") + text + b"".join(chunks))
    net = portamlp.load(path, backend="numpy")
    assert net.layers == (3, 2, 2) and net.preprocessing is None
    for got, want in zip(net.weights + net.biases, weights + biases):
        np.testing.assert_array_equal(got, want)


def test_saved_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    net = Network.initialize((4, 3), seed=0, backend="numpy")
    old = os.umask(0o022)
    try:
        net.save(tmp_path / "a.json")
        net.save(tmp_path / "a.safetensors")
    finally:
        os.umask(old)
    for name in ("a.json", "a.safetensors"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
    os.chmod(tmp_path / "a.json", 0o600)  # replacing a file keeps its permissions
    net.save(tmp_path / "a.json", overwrite=True)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o600


OLD = Path(__file__).resolve().parent / "data" / "portamlp-0.2.0"


def test_a_checkpoint_of_0_2_0_resumes_exactly_as_0_2_0_resumed_it(tmp_path):
    """Its position says loss_sum, its history train_loss, its configuration momentum and
    nesterov beside Adam's run: the run continues to the very weights 0.2.0 reached."""
    import shutil

    shutil.copytree(OLD / "checkpoint", tmp_path / "ck")
    with pytest.warns(portamlp.PortamlpWarning):  # dead classes, as 0.2.0 warned
        result = portamlp.train(resume=tmp_path / "ck", epochs=2, progress=False)
    expected = portamlp.load(OLD / "resumed.json")
    for p, q in zip(result.network.parameters(), expected.parameters()):
        # the same run; float32 products summed in another order by another BLAS thread count
        # (chosen from the idle cores) differ in the last bit, no more
        np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-6)
    assert result.config.optimizer == "adam" and result.config.beta1 == 0.9
    assert result.history[0].train_cost == pytest.approx(2.1581156158447268)


def test_a_run_record_of_0_2_0_is_plotted(tmp_path):
    pytest.importorskip("matplotlib")
    from portamlp.cli.main import main

    assert main(["plot", str(OLD / "net.run.json"), "-o", str(tmp_path / "c.png"), "-q"]) == 0
    assert (tmp_path / "c.png").stat().st_size > 1000
