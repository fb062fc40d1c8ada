"""Hostile model files: every invalid one is a ModelFormatError, said quickly, in bounded memory.

A reliability review loaded files built to break the readers: weights given as strings or
booleans, numbers beyond float64, safetensors headers that lie, names in other scripts'
digits, nesting 100,000 deep, a run record nested as deep beside a model, pickles and
PyTorch files, and files of hundreds of MB whose first bytes or header already say they are no
model. Each case here is one of those findings; the big files are measured in a subprocess
(peak resident memory and time) against the size of the file.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run

import portamlp
from portamlp import ModelFormatError, Network
from portamlp.files.checkpoints import load_checkpoint
from portamlp.files.fields import shorten
from portamlp.files.run_records import read_run_record
from portamlp.files.safetensors_format import read_safetensors

MB = 1 << 20


# ------------------------------------------------------------------------------------ helpers
@pytest.fixture
def model_json(tmp_path):
    """A saved (3, 2) network's JSON text, and a path to write variants of it to."""
    path = tmp_path / "net.json"
    Network.initialize((3, 2), seed=0, backend="numpy").save(path)
    return path.read_text(), tmp_path / "bad.json"


def _refused(path, match=None, **kwargs) -> str:
    """Loading ``path`` raises exactly a ModelFormatError (matching ``match``); its message."""
    with pytest.raises(ModelFormatError, match=match) as info:
        portamlp.load(path, **kwargs)
    assert type(info.value) is ModelFormatError
    return str(info.value)


def _safetensors(path, header, body=b"", length=None, size=None):
    """Write a safetensors file by hand; ``size`` makes it that long, sparsely."""
    text = json.dumps(header).encode() if isinstance(header, (dict, list)) else header
    with open(path, "wb") as f:
        f.write((len(text) if length is None else length).to_bytes(8, "little") + text + body)
        if size is not None:
            f.truncate(size)
    return path


def _header(**changes):
    """A valid header of a (3, 2) network, 32 bytes of F32 data, with ``changes``."""
    return {"__metadata__": {"activation": "sigmoid", "cost": "quadratic"},
            "0.weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
            "0.bias": {"dtype": "F32", "shape": [2], "data_offsets": [24, 32]}, **changes}


BODY = np.arange(8, dtype="<f4").tobytes()


def _peak_load(path) -> dict:
    """Load ``path`` in a fresh interpreter: the outcome, the seconds it took and how much the
    peak resident memory grew (bytes) beyond what importing portamlp took."""
    code = (
        "import json, resource, sys, time\n"
        "import portamlp\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "t = time.perf_counter()\n"
        "try:\n"
        "    portamlp.load(sys.argv[1]); error = None\n"
        "except BaseException as exc:\n"
        "    error = type(exc).__name__ + ': ' + str(exc)\n"
        "seconds = time.perf_counter() - t\n"
        "grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024\n"
        "print(json.dumps({'error': error, 'seconds': seconds, 'grew': grew}))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def _assert_refused_cheaply(path, match: str, seconds: float = 5.0) -> dict:
    """``path`` is refused with a ModelFormatError matching ``match``, within ``seconds``, its
    peak memory growing by less than half the file's size."""
    outcome = _peak_load(path)
    size = path.stat().st_size
    assert outcome["error"] is not None and outcome["error"].startswith("ModelFormatError"), \
        outcome
    assert match in outcome["error"], outcome
    assert outcome["grew"] < 0.5 * min(size, 200 * MB), (outcome, size)
    assert outcome["seconds"] < seconds, outcome
    assert len(outcome["error"]) < 600, outcome  # the message quotes no file content whole
    return outcome


# --------------------------------------------------------------------- JSON: numbers only
@pytest.mark.parametrize("weights", [
    [[["1", "2", "3"], ["4", "5", "6"]]],
    [[[True, False, True], [False, True, False]]],
    [[[1.0, 2.0, 3.0], [4.0, None, 6.0]]],
    [[[1.0, 2.0, 3.0], [4.0, {"x": 1}, 6.0]]],
])
def test_json_weights_that_are_not_numbers_are_refused(model_json, weights):
    """Weights given as strings or booleans loaded as a network (review finding 1)."""
    text, bad = model_json
    doc = json.loads(text)
    doc["weights"] = weights
    bad.write_text(json.dumps(doc))
    _refused(bad, r"weights\[0\] must be a nested list of numbers")


def test_json_biases_that_are_booleans_are_refused(model_json):
    text, bad = model_json
    doc = json.loads(text)
    doc["biases"] = [[True, False]]
    bad.write_text(json.dumps(doc))
    _refused(bad, r"biases\[0\] must be a nested list of numbers; found 'true'")


@pytest.mark.parametrize("number, match", [
    (str(10 ** 400), "an integer of 401 digits"),          # was OverflowError
    ("1" * 4301, "an integer of 4,301 digits"),            # was Python's bare ValueError
    ("1e400", r"weights\[0\] holds non-finite"),              # a float beyond float64
    ("-1e400", r"weights\[0\] holds non-finite"),
    ("NaN", "NaN, a non-finite value"),
    ("-Infinity", "Infinity, a non-finite value"),
])
def test_json_numbers_beyond_float64_are_refused(model_json, number, match):
    """Finding 2: huge integers and non-finite values in the weights are a ModelFormatError."""
    text, bad = model_json
    first = repr(json.loads(text)["weights"][0][0][0])
    bad.write_text(text.replace(first, number, 1))
    assert "non-finite" in _refused(bad, match)


@pytest.mark.parametrize("mean", [str(10 ** 400), "1e400", "1" * 4301])
def test_json_preprocessing_beyond_float64_is_refused(model_json, mean):
    """A preprocessing mean of 10**400 escaped as TypeError (finding 2)."""
    text, bad = model_json
    bad.write_text(text[:-1] + ',"preprocessing":{"scale":255,"mean":' + mean + '}}')
    _refused(bad, "field 'preprocessing' holds .*non-finite")


def test_json_weight_beyond_float32_in_a_float32_file_is_refused(model_json):
    """1e300 is a float64, but the file's dtype is float32: it would load as infinity."""
    text, bad = model_json
    first = repr(json.loads(text)["weights"][0][0][0])
    bad.write_text(text.replace(first, "1e300", 1))
    _refused(bad, "beyond the range of float32")


@pytest.mark.parametrize("text, match", [
    ('{"format": "portamlp-mlp", "format": "portamlp-mlp"}', "field 'format' appears twice"),
    ('{"format": "portamlp-mlp", "x": {"a": 1, "a": 2}}', "the key 'a' twice"),
    ('{"format": "portamlp-mlp"} trailing', "unexpected data after the JSON object"),
    ('{"format": "portamlp-mlp",}', "expected a field name"),
    ('{"weights": [[[[[1]]]]]}', "nested more than 3 deep"),
    ('{"extra": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    ('{"weights": [[[1, 2], [3', "the file ends inside field 'weights'; it is truncated"),
    ("", "the file is empty"),
    ("[1, 2]", "a JSON array"),
    ("hello", "it starts with 'hello'"),
])
def test_malformed_json_structure_is_refused(tmp_path, text, match):
    path = tmp_path / "bad.json"
    path.write_text(text)
    _refused(path, match)


def test_pretty_printed_and_large_json_files_still_load_exactly(tmp_path):
    """The field-by-field reader takes any JSON layout, and a file above the size where the
    weights are counted before they are decoded (784-300-10: about 5 MB)."""
    net = Network.initialize((784, 300, 10), seed=3, backend="numpy", dtype="float64")
    net.save(tmp_path / "net.json")
    assert (tmp_path / "net.json").stat().st_size > 4 * MB
    doc = json.loads((tmp_path / "net.json").read_text())
    (tmp_path / "pretty.json").write_text(json.dumps(doc, indent=4))
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(doc).encode())
    for name in ("net.json", "pretty.json", "bom.json"):
        loaded = portamlp.load(tmp_path / name, backend="numpy")
        for a, b in zip(loaded.parameters(), net.parameters()):
            np.testing.assert_array_equal(a, b)
    doc["weights"][1] = doc["weights"][1][:-1]  # a row short, in a file of 5 MB
    (tmp_path / "short.json").write_text(json.dumps(doc))
    _refused(tmp_path / "short.json", "field 'weights' holds 237,900 numbers .* need 238,200")


# -------------------------------------------------------------- safetensors: a hostile corpus
DEEP = "[" * 100_000 + "]" * 100_000
HOSTILE_SAFETENSORS = {
    "header length beyond the file": (_header(), BODY, 10 ** 6, "header length"),
    "header not JSON": (b"{not json", b"", None, "invalid JSON"),
    "header not UTF-8": (b'{"\xff": 1}', b"", None, "not UTF-8"),
    "header not an object": ([1, 2], b"", None, "must be a JSON object"),
    "header nested deeply": (DEEP.encode(), b"", None, "nested too deeply"),
    "header holds NaN": (b'{"__metadata__": {}, "x": NaN}', b"", None, "NaN"),
    "a tensor named twice": (
        b'{"0.weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, '
        b'"0.weight": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}',
        BODY[:16], None, "twice"),
    "offsets beyond the data": (_header(**{"0.bias": {"dtype": "F32", "shape": [2],
                                                      "data_offsets": [24, 10 ** 9]}}),
                                BODY, None, "invalid shape"),
    "offsets overlapping": (_header(**{"0.bias": {"dtype": "F32", "shape": [2],
                                                  "data_offsets": [16, 24]}}),
                            BODY, None, "invalid offsets"),
    "offsets not [begin, end]": (_header(**{"0.bias": {"dtype": "F32", "shape": [2],
                                                       "data_offsets": [32, 24]}}),
                                 BODY, None, r"expected \[begin, end\]"),
    "offsets not matching dtype and shape": (_header(**{"0.bias": {"dtype": "F64", "shape": [2],
                                                                   "data_offsets": [24, 32]}}),
                                             BODY, None, "invalid shape"),
    "data longer than the tensors": (_header(), BODY + b"\0" * 8, None, "not fully covered"),
    "unknown dtype": (_header(**{"0.bias": {"dtype": "Q9", "shape": [2],
                                            "data_offsets": [24, 32]}}), BODY, None, "Q9"),
    "dtype not a string": (_header(**{"0.bias": {"dtype": [4], "shape": [2],
                                                 "data_offsets": [24, 32]}}), BODY, None,
                           r"dtype \[4\]"),
    "negative shape": (_header(**{"0.weight": {"dtype": "F32", "shape": [-2, 3],
                                               "data_offsets": [0, 24]}}), BODY, None, "-2"),
    "shape not integers": (_header(**{"0.weight": {"dtype": "F32", "shape": [2.0, "3"],
                                                   "data_offsets": [0, 24]}}), BODY, None,
                           "expected a list of sizes"),
    "shape beyond 64 bits": (_header(**{"0.weight": {"dtype": "F32", "shape": [2 ** 40, 2 ** 40],
                                                     "data_offsets": [0, 24]}}), BODY, None,
                             "overflows 64 bits"),
    "entry with an unknown field": (_header(**{"0.bias": {"dtype": "F32", "shape": [2],
                                                          "data_offsets": [24, 32], "x": 1}}),
                                    BODY, None, "unexpected"),
    "entry not an object": (_header(**{"0.bias": [24, 32]}), BODY[:24], None,
                            "must be an object"),
    "0-d weight": ({"__metadata__": {"activation": "sigmoid", "cost": "quadratic"},
                    "0.weight": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]},
                    "0.bias": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}},
                   BODY[:8], None, "a weight is a 2-D"),
    "3-D weight": ({"__metadata__": {"activation": "sigmoid", "cost": "quadratic"},
                    "0.weight": {"dtype": "F32", "shape": [1, 2, 3], "data_offsets": [0, 24]},
                    "0.bias": {"dtype": "F32", "shape": [2], "data_offsets": [24, 32]}},
                   BODY, None, "a weight is a 2-D"),
    "2-D bias": ({"__metadata__": {"activation": "sigmoid", "cost": "quadratic"},
                  "0.weight": {"dtype": "F32", "shape": [1, 3], "data_offsets": [0, 12]},
                  "0.bias": {"dtype": "F32", "shape": [1, 1], "data_offsets": [12, 16]}},
                 BODY[:16], None, "a bias is a 1-D"),
    "bias of the wrong length": (_header(**{"0.bias": {"dtype": "F32", "shape": [1],
                                                       "data_offsets": [24, 28]}}),
                                 BODY[:28], None, r"biases\[0\]"),
    "Arabic-Indic digit in a name": (
        {"__metadata__": {"activation": "sigmoid", "cost": "quadratic"},
         "\u0660.weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
         "\u0660.bias": {"dtype": "F32", "shape": [2], "data_offsets": [24, 32]}},
        BODY, None, "unexpected tensor"),
    "leading zeros in a name": (_header(**{"00.weight": {"dtype": "F32", "shape": [0],
                                                         "data_offsets": [32, 32]}}),
                                BODY, None, "unexpected tensor '00.weight'"),
    "a name of 5,000 digits": (_header(**{"9" * 5000 + ".weight": {
        "dtype": "F32", "shape": [0], "data_offsets": [32, 32]}}), BODY, None,
        "unexpected tensor"),
    "missing bias": ({"__metadata__": {"activation": "sigmoid", "cost": "quadratic"},
                      "0.weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}},
                     BODY[:24], None, "missing tensor '0.bias'"),
    "no tensors": ({"__metadata__": {"activation": "sigmoid", "cost": "quadratic"}}, b"", None,
                   "holds no tensors"),
    "an extra tensor with a junk name": (_header(**{"junk!": {"dtype": "F32", "shape": [0],
                                                              "data_offsets": [32, 32]}}),
                                         BODY, None, "unexpected tensor 'junk!'"),
    "metadata not strings": (_header(__metadata__={"activation": ["sigmoid"]}), BODY, None,
                             "expected a string"),
    "metadata not an object": (_header(__metadata__=["sigmoid"]), BODY, None,
                               "__metadata__ must be an object"),
    "metadata layers nested deeply": (_header(__metadata__={"activation": "sigmoid",
                                                            "cost": "quadratic",
                                                            "layers": DEEP}),
                                      BODY, None, "metadata 'layers' is nested too deeply"),
    "metadata layers not layers": (_header(__metadata__={"activation": "sigmoid",
                                                         "cost": "quadratic",
                                                         "layers": '"3, 2"'}),
                                   BODY, None, "metadata 'layers' must be a list"),
    "metadata preprocessing beyond float64": (
        _header(__metadata__={"activation": "sigmoid", "cost": "quadratic",
                              "preprocessing": '{"scale": 255, "mean": 1e400}'}),
        BODY, None, "non-finite"),
    "metadata preprocessing not an object": (
        _header(__metadata__={"activation": "sigmoid", "cost": "quadratic",
                              "preprocessing": "[1]"}),
        BODY, None, "must be an object"),
}


@pytest.mark.parametrize("case", list(HOSTILE_SAFETENSORS))
def test_every_hostile_safetensors_file_is_a_model_format_error(tmp_path, case):
    """Finding 3: a 0-d weight escaped as IndexError, a name in Arabic-Indic digits as
    KeyError, nesting in the metadata as RecursionError; none of these escapes now."""
    header, body, length, match = HOSTILE_SAFETENSORS[case]
    path = _safetensors(tmp_path / "bad.safetensors", header, body, length)
    message = _refused(path, match)
    assert len(message) < 600


def test_hostile_safetensors_corpus_is_big_enough():
    assert len(HOSTILE_SAFETENSORS) >= 8


def test_safetensors_header_is_checked_before_any_tensor_data(tmp_path):
    """``read_safetensors(check_header=)`` sees every name, dtype and shape and the metadata
    before a byte of tensor data is read: what it raises stops the read, and a hook that cuts
    the data off the file makes the read that follows find the file cut."""
    path = _safetensors(tmp_path / "n.safetensors", _header(), BODY)
    seen = []

    class Refused(Exception):
        pass

    def check(entries, metadata):
        seen.append((entries, metadata))
        raise Refused

    with pytest.raises(Refused):
        read_safetensors(path, check_header=check)
    assert seen == [({"0.weight": ("F32", (2, 3)), "0.bias": ("F32", (2,))},
                     {"activation": "sigmoid", "cost": "quadratic"})]

    big = tmp_path / "big.safetensors"  # 256 KiB of data: more than a read's buffer
    Network.initialize((32768, 2), seed=0, backend="numpy").save(big)
    header_size = 8 + int.from_bytes(big.read_bytes()[:8], "little")

    def cut_the_data(entries, metadata):
        with open(big, "r+b") as f:
            f.truncate(header_size)

    with pytest.raises(ModelFormatError, match="ended while its tensors were read"):
        read_safetensors(big, check_header=cut_the_data)
    tensors, metadata = read_safetensors(path, check_header=lambda e, m: None)
    np.testing.assert_array_equal(tensors["0.weight"], np.arange(6, dtype="f4").reshape(2, 3))
    assert portamlp.load(path).layers == (3, 2)


def _checkpoint_file(tmp_path, tensors: dict, layers=(3, 2)):
    """A hand-made checkpoint file: the given (name: (dtype, shape)) tensors of zeros, and a
    run state whose network is ``layers``."""
    header, offset, body = {}, 0, b""
    for name, shape in tensors.items():
        n = 4 * int(np.prod(shape))
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset,
                                                                               offset + n]}
        offset, body = offset + n, body + b"\0" * n
    state = {"kind": "portamlp-checkpoint", "version": 1, "config": {}, "position": {},
             "own_data": False, "extra": {}, "optimizer_scalars": {},
             "network": {"layers": list(layers), "activation": "sigmoid", "cost": "quadratic",
                         "dtype": "float32", "preprocessing": None}}
    header["__metadata__"] = {"portamlp.checkpoint": json.dumps(state)}
    directory = tmp_path / "ck"
    directory.mkdir()
    return _safetensors(directory / "checkpoint.safetensors", header, body)


@pytest.mark.parametrize("tensors, layers, match", [
    ({"network.0.weight": (2, 3), "network.0.bias": (2,), "junk": (4,)}, (3, 2),
     r"unexpected tensors \['junk'\]"),
    ({"network.0.weight": (2, 3), "network.0.bias": (2,)}, (3, 5), "does not match"),
    ({"network.0.weight": (2, 3, 1), "network.0.bias": (2,)}, (3, 2), "a weight is a 2-D"),
])
def test_checkpoint_header_is_checked_before_its_data(tmp_path, tensors, layers, match):
    path = _checkpoint_file(tmp_path, tensors, layers)
    with pytest.raises(ModelFormatError, match=match):
        load_checkpoint(path.parent)
    with pytest.raises(ModelFormatError, match=match):
        portamlp.load(path.parent)


# --------------------------------------------------------------------------------- run records
def _model_with_record(tmp_path, record_text: str) -> Path:
    model = tmp_path / "net.json"
    net = Network.initialize((784, 8, 10), seed=0, backend="numpy")
    net.preprocessing = portamlp.datasets.Preprocessing.from_scale(255)
    net.save(model)
    (tmp_path / "net.run.json").write_text(record_text)
    return model


@pytest.mark.parametrize("record, match", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("{" * 10, "not valid JSON"),
    ('{"options": [1, 2]}', "'options' are not an object"),
    ("[1]", "not an object"),
    ('{"x": ' + "1" * 5000 + "}", "not valid JSON"),
])
def test_an_unusable_run_record_is_ignored_with_a_warning(tmp_path, record, match):
    """Finding 4: a run record nested 100,000 deep stopped serve and evaluate with
    RecursionError; an unusable record is now ignored, with a warning naming it."""
    model = _model_with_record(tmp_path, record)
    with pytest.warns(portamlp.PortamlpWarning, match=f"net.run.json: ignoring this run "
                                                      f"record: .*{match}"):
        assert read_run_record(model) == {}


def test_serve_and_evaluate_go_on_beside_a_hostile_run_record(tmp_path):
    from portamlp.cli.serve import DigitApp

    model = _model_with_record(tmp_path, "[" * 100_000 + "]" * 100_000)
    with pytest.warns(portamlp.PortamlpWarning, match="ignoring this run record"):
        app = DigitApp.from_model(model, seed=0)
    assert app.model_info()["test_accuracy"] is None
    proc = run("evaluate", "net.json", "--length", "100", cwd=tmp_path)
    assert "ignoring this run record: its JSON is nested too deeply" in proc.stderr


def test_a_good_run_record_is_read_without_a_warning(tmp_path):
    model = _model_with_record(tmp_path, json.dumps({"options": {"dataset": "mnist"},
                                                     "test_accuracy": 0.5}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_run_record(model)["test_accuracy"] == 0.5


# ------------------------------------------------------------ messages: short, and helpful
def test_messages_quote_bad_values_cut_to_a_readable_length(model_json, tmp_path):
    """Finding 6: a message echoed a 150 MB string whole."""
    text, bad = model_json
    doc = json.loads(text)
    for key in ("format", "activation", "cost", "dtype"):
        bad.write_text(json.dumps({**doc, key: "x" * 5 * MB}))
        message = _refused(bad, "5,242,880 characters")
        assert len(message) < 400, key
    path = _safetensors(tmp_path / "n.safetensors",
                        _header(**{"x" * MB: {"dtype": "F32", "shape": [0],
                                              "data_offsets": [32, 32]}}), BODY)
    assert len(_refused(path, "unexpected tensor")) < 400
    path = _safetensors(tmp_path / "n.safetensors",
                        _header(__metadata__={"format": "y" * MB}), BODY)
    assert len(_refused(path, "metadata 'format'")) < 400


def test_shorten_never_builds_a_huge_string():
    assert len(shorten("x" * 10 ** 7)) < 120
    assert "digits" in shorten(10 ** 5000)
    assert len(shorten([[[[list(range(10 ** 5))]]]] * 1000)) < 120
    assert shorten("sigmoid") == "'sigmoid'"


def _torch_file(path):
    torch = pytest.importorskip("torch")
    torch.save(torch.nn.Linear(3, 2).state_dict(), path)


@pytest.mark.parametrize("name, make, match", [
    ("net.pt", _torch_file, r"zip archive \(a PyTorch .*safetensors.torch.save_file"),
    ("net.zip", lambda p: zipfile.ZipFile(p, "w").writestr("a", "b"), "zip archive"),
    ("net.joblib", lambda p: p.write_bytes(pickle.dumps({"weights": [1.0]}, protocol=4)),
     "a pickle .*never unpickles"),
    ("net.pkl", lambda p: p.write_bytes(pickle.dumps([1], protocol=2)), "a pickle"),
    ("net.h5", lambda p: p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100), "HDF5 .*Keras"),
    ("net.bin", lambda p: p.write_bytes(b"\0" * 100), "binary data"),
    ("net.json", lambda p: p.write_bytes("{}".encode("utf-16")), "UTF-16"),
    ("net.npy", lambda p: np.save(p, np.zeros(3)), "NumPy"),
])
def test_files_of_other_programs_are_named_for_what_they_look_like(tmp_path, name, make, match):
    """Finding 8: .pt, joblib and .h5 files were "not a UTF-8 JSON file"."""
    path = tmp_path / name
    make(path)
    message = _refused(path, match)
    assert "portamlp reads its own model files, JSON and safetensors" in message


def test_a_safetensors_file_read_as_json_is_named(tmp_path):
    Network.initialize((3, 2), seed=0, backend="numpy").save(tmp_path / "n.safetensors")
    (tmp_path / "n.model").write_bytes((tmp_path / "n.safetensors").read_bytes())
    _refused(tmp_path / "n.model", r"looks like a safetensors file\..*name it \*.safetensors")


def test_a_folder_is_not_a_model_file(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder, not a model file: it holds no "
                                                 "model file"):
        portamlp.load(tmp_path)
    Network.initialize((3, 2), seed=0, backend="numpy").save(tmp_path / "a.json")
    (tmp_path / "a.run.json").write_text("{}")
    with pytest.raises(IsADirectoryError, match=r"pass one of the model files in it \(a.json\)"
                                                r", or a checkpoint folder"):
        portamlp.load(tmp_path)


# ------------------------------------------------------ memory and time before the refusal
def _json_of_the_wrong_shape(path, megabytes: int, weights_first: bool) -> Path:
    """A JSON model declaring layers 784-30-10 whose weights take ``megabytes`` MB."""
    head = json.dumps({"format": "portamlp-mlp", "version": 1, "layers": [784, 30, 10],
                       "activation": "sigmoid", "cost": "quadratic", "dtype": "float32"})
    row = "[" + ",".join(["0.12345678901234567"] * 784) + "]"
    block = ",".join([row] * 64).encode()
    with open(path, "wb") as f:
        f.write(b'{"weights":[[' if weights_first else head[:-1].encode() + b',"weights":[[')
        f.write(block)
        for _ in range(megabytes * MB // len(block)):
            f.write(b"," + block)
        f.write(b'],[[0.5]]],"biases":[[0.0],[0.0]]')
        f.write(b"," + head[1:].encode() if weights_first else b"}")
    return path


@pytest.mark.parametrize("weights_first", [False, True])
def test_a_big_json_file_of_the_wrong_shape_is_refused_in_bounded_memory(tmp_path,
                                                                        weights_first):
    """Finding 5: a 150 MB JSON model of the wrong shape peaked at 1.25 GB and took 9.9 s
    before it was refused. With its layers first it is refused after a few MB; with its
    weights first, after one scan in pieces of 1 MB."""
    path = _json_of_the_wrong_shape(tmp_path / "big.json", 150, weights_first)
    outcome = _assert_refused_cheaply(path, "more than layers [784, 30, 10] allow")
    if not weights_first:
        assert outcome["seconds"] < 1.0


def test_a_big_file_of_nul_bytes_is_refused_at_once(tmp_path):
    """Finding 5: a 1.9 GB file of NUL bytes peaked at 3.8 GB."""
    path = tmp_path / "zeros.json"
    with open(path, "wb") as f:
        f.truncate(1900 * MB)  # sparse: no disk used
    _assert_refused_cheaply(path, "binary data (it holds NUL bytes)", seconds=1.0)


def test_a_safetensors_file_with_a_huge_junk_tensor_is_refused_before_its_data(tmp_path):
    """Finding 5: a 1 GB tensor under a junk name peaked at 2.1 GB."""
    n = 1 << 28  # 1 GiB of F32
    header = _header(**{"junk!": {"dtype": "F32", "shape": [n], "data_offsets": [32, 32 + 4 * n]}})
    text = json.dumps(header).encode()
    path = _safetensors(tmp_path / "junk.safetensors", header, BODY,
                        size=8 + len(text) + 32 + 4 * n)
    _assert_refused_cheaply(path, "unexpected tensor 'junk!'", seconds=1.0)


def test_a_big_half_precision_file_with_wrong_metadata_is_refused_before_its_data(tmp_path):
    """Finding 5: a 1 GB F16 tensor with wrong metadata peaked at 4.1 GB."""
    rows, cols = 1 << 15, 1 << 14
    w = 2 * rows * cols
    header = {"__metadata__": {"format": "portamlp-mlp", "version": "1", "layers": "[3, 5]",
                               "activation": "sigmoid", "cost": "quadratic"},
              "0.weight": {"dtype": "F16", "shape": [rows, cols], "data_offsets": [0, w]},
              "0.bias": {"dtype": "F16", "shape": [rows], "data_offsets": [w, w + 2 * rows]}}
    text = json.dumps(header).encode()
    path = _safetensors(tmp_path / "half.safetensors", header, size=8 + len(text) + w + 2 * rows)
    _assert_refused_cheaply(path, "metadata 'layers' [3, 5] does not match", seconds=1.0)


def test_plot_refuses_a_hostile_run_record_by_name(tmp_path, capsys):
    """``portamlp plot`` reads run records as evaluate and serve do: a record nested 100,000
    deep, or one without a history, is a usage error naming the file, not a RecursionError."""
    from portamlp.cli.main import main

    deep = tmp_path / "deep.run.json"
    deep.write_text('{"history": ' + "[" * 100_000 + "]" * 100_000 + "}")
    flat = tmp_path / "flat.run.json"
    flat.write_text('{"history": [1, 2]}')
    for path, why in ((deep, "nested too deeply"), (flat, "no 'history' list of epochs")):
        assert main(["plot", str(path), "-o", str(tmp_path / "out.png")]) == 2
        err = capsys.readouterr().err
        assert str(path) in err and why in err
    assert main(["plot", str(tmp_path / "missing.run.json")]) == 2
    assert "no such run record" in capsys.readouterr().err
