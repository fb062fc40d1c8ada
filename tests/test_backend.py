"""The backend selector: names, environment variable, errors, host <-> device moves."""

import subprocess
import sys

import numpy as np
import pytest

import portamlp
from portamlp.backends import BACKEND_NAMES, LIBRARIES, to_numpy


def test_available_backends_reports_every_backend():
    avail = portamlp.available_backends()
    assert set(avail) == set(BACKEND_NAMES)
    assert avail["numpy"].usable and avail["array_api_strict"].usable
    assert avail["numpy"] and avail["numpy"].reason == "usable"
    for status in avail.values():
        assert isinstance(status.usable, bool) and isinstance(status.reason, str) and status.reason
        assert bool(status) is status.usable


def test_numpy_backend_attributes():
    be = portamlp.get_backend("numpy")
    assert be.name == "numpy" and be.device == "cpu"
    a = be.asarray(np.arange(3), dtype="float64")
    assert isinstance(a, np.ndarray) and a.dtype == np.float64


@pytest.mark.parametrize("cupy_works", [True, False])
def test_auto_picks_cupy_only_when_it_works(monkeypatch, cupy_works):
    probes = []
    for name, entry in LIBRARIES.items():
        def probe(name=name):
            probes.append(name)
            return "no CUDA device found" if name == "cupy" and not cupy_works else None

        monkeypatch.setattr(entry, "probe", probe)
        monkeypatch.setattr(entry, "namespace", lambda name=name: f"namespace of {name}")
        monkeypatch.setattr(entry, "resolve_device",
                            lambda xp, device, name=name: f"device of {name}")
    chosen = portamlp.get_backend("auto")
    assert chosen.name == ("cupy" if cupy_works else "numpy")
    assert chosen.xp == f"namespace of {chosen.name}" and probes[0] == "cupy"


def test_environment_variable_chooses_the_default(monkeypatch):
    monkeypatch.setenv("PORTAMLP_BACKEND", "array_api_strict")
    assert portamlp.get_backend().name == "array_api_strict"
    monkeypatch.setenv("PORTAMLP_BACKEND", "nonsense")
    with pytest.raises(ValueError, match="nonsense"):
        portamlp.get_backend()
    monkeypatch.delenv("PORTAMLP_BACKEND")
    assert portamlp.get_backend().name in ("numpy", "cupy")


def test_unknown_backend_names_it_and_lists_usable_ones():
    with pytest.raises(ValueError) as info:
        portamlp.get_backend("tensorflow")
    msg = str(info.value)
    assert "'tensorflow'" in msg and "numpy" in msg and "usable here" in msg


def test_unusable_backend_says_how_to_install(monkeypatch):
    monkeypatch.setattr(LIBRARIES["cupy"], "probe", lambda: "CuPy is not installed")
    with pytest.raises(ValueError) as info:
        portamlp.get_backend("cupy")
    msg = str(info.value)
    assert "'cupy'" in msg and 'pip install "portamlp[cuda12]"' in msg and "numpy" in msg


def test_bad_device_is_rejected():
    with pytest.raises(ValueError, match="cuda:0"):
        portamlp.get_backend("numpy", "cuda:0")
    with pytest.raises(ValueError, match="device9"):
        portamlp.get_backend("array_api_strict", "device9")


def test_round_trip_host_device_host(backend):
    host = np.arange(12, dtype=np.float64).reshape(3, 4) / 7
    dev = backend.asarray(host, dtype="float64")
    assert backend.same_device(dev)
    back = backend.to_numpy(dev)
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, host)
    assert to_numpy(backend.asarray(host, dtype="float32")).dtype == np.float32


def test_import_is_light():
    code = ("import sys, portamlp; portamlp.Network; "
            "print(sorted(m for m in ('cupy', 'torch', 'array_api_strict', 'matplotlib') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_numpy_namespace_fast_paths_match_the_standard():
    import array_api_compat.numpy as compat

    xp = portamlp.get_backend("numpy").xp
    rng = np.random.default_rng(0)
    for a in (rng.standard_normal((4, 5)).astype(np.float32), rng.integers(0, 9, (4, 5)),
              rng.integers(0, 9, (4, 5)).astype(np.int8)):
        for axis in (None, 0, 1, (0, 1)):
            for keepdims in (False, True):
                got = xp.sum(a, axis=axis, keepdims=keepdims)
                want = compat.sum(a, axis=axis, keepdims=keepdims)
                assert got.dtype == want.dtype and np.shape(got) == np.shape(want)
                np.testing.assert_allclose(got, want, rtol=1e-6)
        idx = np.array([3, 0, 3])
        np.testing.assert_array_equal(xp.take(a, idx, axis=0), compat.take(a, idx, axis=0))
        np.testing.assert_array_equal(xp.take(a, idx, axis=1), compat.take(a, idx, axis=1))
    assert xp.sum(np.ones(3, dtype=np.float32), dtype=xp.float64).dtype == np.float64


def test_unusable_torch_device_is_a_value_error():
    if not portamlp.available_backends()["torch"]:
        pytest.skip("torch is not installed")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='cuda' is not usable with torch"):
            portamlp.get_backend("torch", "cuda")
    with pytest.raises(ValueError, match="'tpu9'"):
        portamlp.get_backend("torch", "tpu9")


def test_native_library_is_the_library_itself_and_names_a_near_miss():
    from portamlp.backends import native_library

    assert native_library("numpy") is np
    with pytest.raises(ValueError, match="unknown backend 'cupyy'.*did you mean 'cupy'"):
        native_library("cupyy")


def test_a_missing_helper_library_gets_its_own_install_hint(monkeypatch):
    """NumPy's namespace comes through array-api-compat: when that is missing, the message
    names it and its install, not NumPy's."""
    from portamlp.backends import numpy as numpy_entry

    numpy_entry._namespace.cache_clear()
    monkeypatch.setitem(sys.modules, "array_api_compat.numpy", None)
    try:
        assert "array_api_compat is not installed" in portamlp.available_backends()[
            "numpy"].reason
        with pytest.raises(ValueError, match="backend 'numpy' is not usable here: "
                                             "array_api_compat is not installed.*To install it: "
                                             "pip install array-api-compat"):
            portamlp.get_backend("numpy")
    finally:
        numpy_entry._namespace.cache_clear()
