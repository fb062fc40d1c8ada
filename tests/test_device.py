"""What a GPU run needs, proven on the CPU.

* No host synchronisation inside the mini-batch loop: training on array-api-strict arrays whose
  every device-to-host event is counted (``__bool__``, ``__float__``, ``__int__``, ``__index__``,
  ``__array__``, DLPack, a move to the CPU, boolean-mask indexing, data-dependent shapes).
* The current-device rule: CuPy creates arrays on the *current* device whatever ``device=``
  says to some array-api-compat wrappers. A namespace that behaves that way (around
  array-api-strict's devices) shows that ``device=<the second device>`` keeps training,
  prediction and optimizer state on that device, because every entry point runs inside
  ``Backend.activate()``.
* The other findings of the GPU audit: device names, the CuPy probe, ``take`` on PyTorch,
  out-of-memory phases, chunked inference on array-api-strict, data that trains where it lives.
"""

from __future__ import annotations

import contextlib
import sys
import types

import numpy as np
import pytest

array_api_strict = pytest.importorskip("array_api_strict")

import portamlp  # noqa: E402
from portamlp import Network  # noqa: E402
from portamlp.backends import Backend, parse_device, to_numpy  # noqa: E402
from portamlp.backends.array_api_strict import ArrayAPIStrict  # noqa: E402

STRICT_ARRAY = type(array_api_strict.asarray([0.0]))
CPU = array_api_strict.Device("CPU_DEVICE")
DEVICE1 = array_api_strict.Device("device1")
DEVICE2 = array_api_strict.Device("device2")


# ------------------------------------------------------------ counting host synchronisation
class HostEvents:
    """Counts every way an array-api-strict array can be read back to the host."""

    def __init__(self, monkeypatch):
        self.events: list[str] = []
        for name in ("__bool__", "__float__", "__int__", "__index__", "__complex__",
                     "__array__", "__dlpack__"):
            self._count_method(monkeypatch, name)
        original_to_device = STRICT_ARRAY.to_device
        original_getitem = STRICT_ARRAY.__getitem__

        def to_device(a, device, /, **kw):
            if device == CPU and a.device != CPU:
                self.events.append("to_device(CPU)")
            return original_to_device(a, device, **kw)

        def getitem(a, key):
            keys = key if isinstance(key, tuple) else (key,)
            if any(isinstance(k, STRICT_ARRAY) and k.dtype == array_api_strict.bool
                   for k in keys):
                self.events.append("boolean mask")
            return original_getitem(a, key)

        monkeypatch.setattr(STRICT_ARRAY, "to_device", to_device)
        monkeypatch.setattr(STRICT_ARRAY, "__getitem__", getitem)
        for name in ("nonzero", "unique_all", "unique_counts", "unique_inverse",
                     "unique_values", "repeat"):
            self._count_function(monkeypatch, name)

    def _count_method(self, monkeypatch, name):
        original = getattr(STRICT_ARRAY, name)

        def counted(a, *args, **kwargs):
            self.events.append(name)
            return original(a, *args, **kwargs)

        monkeypatch.setattr(STRICT_ARRAY, name, counted)

    def _count_function(self, monkeypatch, name):
        original = getattr(array_api_strict, name)

        def counted(*args, **kwargs):
            self.events.append(f"{name}() (data-dependent shape)")
            return original(*args, **kwargs)

        monkeypatch.setattr(array_api_strict, name, counted)


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + 2 * (x[:, 1] > 0)
    return x, y, x[:20], y[:20]


def _events_of_a_run(monkeypatch, tiny, batch_size, **options):
    x, y, xv, yv = tiny
    be = portamlp.get_backend("array_api_strict", "device1")
    X, Y = be.asarray(x), be.asarray(y)
    XV, YV = be.asarray(xv), be.asarray(yv)
    options = {"learning_rate": 0.05, **options}
    with monkeypatch.context() as m:
        counter = HostEvents(m)
        calls = []
        portamlp.train(x=X, y=Y, validation_data=(XV, YV), layers=(x.shape[1], 5, 4), epochs=3,
                       batch_size=batch_size, seed=1, shuffle=True,
                       callbacks=[lambda r, n: calls.append(r.epoch)], **options)
    assert calls == [1, 2, 3]
    return counter.events


OPTIMIZERS = {
    "momentum": dict(momentum=0.9),
    "nesterov": dict(momentum=0.9, nesterov=True),
    "adam": dict(optimizer="adam", learning_rate=0.01),
    "weight decay": dict(momentum=0.5, weight_decay=1e-3),
    "dropout, max-norm, early stopping, plateau": dict(
        momentum=0.9, dropout=0.5, input_dropout=0.2, max_norm=2.0, early_stopping=True,
        monitor="validation_loss", learning_rate_schedule="plateau", plateau_patience=1),
}


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("cost", ["quadratic", "cross_entropy"])
@pytest.mark.parametrize("activation", ["sigmoid", "relu", "leaky_relu", "tanh"])
def test_no_host_synchronisation_inside_the_mini_batch_loop(monkeypatch, tiny, activation,
                                                            cost, optimizer):
    """Three epochs of 15 and of 4 mini-batches read the same things back: nothing per batch.
    With the progress bar and a callback on."""
    options = dict(OPTIMIZERS[optimizer], activation=activation, cost=cost, progress=True)
    many = _events_of_a_run(monkeypatch, tiny, 4, **options)
    few = _events_of_a_run(monkeypatch, tiny, 15, **options)
    assert many == few
    assert "boolean mask" not in many and not [e for e in many if "data-dependent" in e]


def test_no_host_synchronisation_with_distortions(monkeypatch):
    """Every distortion on 4×4 images: 15 and 4 mini-batches per epoch read the same things
    back (the background value once, before the first epoch)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, (60, 16)).astype(np.float32)
    y = (x[:, 5] > 0.5).astype(np.int64) + 2 * (x[:, 10] > 0.5)
    images = (x, y, x[:20], y[:20])
    options = dict(shift=1.0, rotation=10.0, zoom=0.1, shear=5.0, elastic_alpha=2.0,
                   elastic_sigma=1.0, flip=True, momentum=0.9, dropout=0.2)
    many = _events_of_a_run(monkeypatch, images, 4, **options)
    few = _events_of_a_run(monkeypatch, images, 15, **options)
    assert many == few
    assert "boolean mask" not in many and not [e for e in many if "data-dependent" in e]


def test_the_documented_per_epoch_events(monkeypatch, tiny):
    """Staging checks read a few values once; each epoch then reads one vector (the batch
    costs, a finiteness flag per parameter and the validation values together)."""
    three = _events_of_a_run(monkeypatch, tiny, 10)
    x, y, xv, yv = tiny
    be = portamlp.get_backend("array_api_strict", "device1")
    with monkeypatch.context() as m:
        counter = HostEvents(m)
        portamlp.train(x=be.asarray(x), y=be.asarray(y), validation_data=(be.asarray(xv),
                       be.asarray(yv)), layers=(6, 5, 4), epochs=4, batch_size=10, seed=1,
                       learning_rate=0.05)
    four = counter.events
    per_epoch = four[len(three):]
    assert four[:len(three)] == three
    # one transfer per epoch, that is all (NumPy then reads the host copy through __array__
    # or, in newer versions, without calling it)
    assert per_epoch in (["to_device(CPU)", "__array__"], ["to_device(CPU)"])
    # before the first epoch: the largest magnitude (finiteness and scale) and the label
    # range, for x and for xv
    staging = three[:len(three) - 3 * len(per_epoch)]
    assert staging == ["__float__", "__int__", "__int__"] * 2


# ------------------------------------------------------------------ the current-device rule
class CurrentDeviceNamespace(types.ModuleType):
    """array-api-strict behaving like CuPy: arrays are created on the *current* device (set by
    :meth:`use`), ``device=`` is ignored, and every function refuses arrays that live elsewhere
    (CuPy: "Peer access is unavailable")."""

    CREATORS = ("asarray", "arange", "empty", "empty_like", "eye", "full", "full_like",
                "linspace", "ones", "ones_like", "zeros", "zeros_like")

    def __init__(self):
        super().__init__("current_device_namespace")
        self.current = CPU
        for name in dir(array_api_strict):
            if name.startswith("__") and name not in ("__array_api_version__",
                                                      "__array_namespace_info__"):
                continue
            value = getattr(array_api_strict, name)
            if callable(value) and not isinstance(value, type) and name not in (
                    "isdtype", "finfo", "iinfo", "__array_namespace_info__", "result_type",
                    "can_cast"):
                value = self._wrap(name, value)
            setattr(self, name, value)

    def _wrap(self, name, fn):
        def call(*args, **kwargs):
            if name in self.CREATORS:
                kwargs["device"] = self.current
            for a in list(args) + list(kwargs.values()):
                for item in (a if isinstance(a, (list, tuple)) else [a]):
                    if isinstance(item, STRICT_ARRAY) and item.device != self.current:
                        raise ValueError(f"{name}: an array on {item.device} while the current "
                                         f"device is {self.current} (peer access unavailable)")
            return fn(*args, **kwargs)
        return call

    @contextlib.contextmanager
    def use(self, device):
        previous, self.current = self.current, device
        try:
            yield
        finally:
            self.current = previous


class CurrentDeviceLibrary(ArrayAPIStrict):
    """A test-only backend entry: array-api-strict arrays through :class:`CurrentDeviceNamespace`,
    with (or, for the control, without) the device context CuPy's entry has."""

    def __init__(self, ns: CurrentDeviceNamespace, with_context: bool):
        self.ns, self.with_context = ns, with_context

    def namespace(self):
        return self.ns

    def device_context(self, device):
        return self.ns.use(device) if self.with_context else None


def _current_device_backend(with_context=True) -> Backend:
    ns = CurrentDeviceNamespace()
    return Backend(library=CurrentDeviceLibrary(ns, with_context), xp=ns, device=DEVICE1)


def test_second_device_keeps_training_prediction_and_optimizer_state_there(tiny):
    x, y, xv, yv = tiny
    be = _current_device_backend()
    result = portamlp.train(x=x, y=y, validation_data=(xv, yv), test_data=(xv, yv),
                            layers=(6, 5, 4), epochs=2, batch_size=10, seed=0, momentum=0.9,
                            learning_rate=0.05, backend=be)
    net = result.network
    assert all(p.device == DEVICE1 for p in net.parameters())
    assert be.xp.current == CPU  # the context is left as it was found
    assert net.predict(x).device == DEVICE1 and net.predict_proba(x).device == DEVICE1
    assert 0.0 <= net.evaluate(x, y) <= 1.0 and np.isfinite(net.mean_cost(x, y))
    gw, gb = net.gradients(x, y)
    assert all(g.device == DEVICE1 for g in gw + gb)
    fresh = Network.initialize((6, 5, 4), seed=0, backend=be)
    assert all(p.device == DEVICE1 for p in fresh.parameters())
    data = portamlp.datasets.DeviceDataset(be.asarray(x), be.asarray(y), 4, be)
    assert data.targets.device == DEVICE1
    assert all(b.device == DEVICE1 for b in next(data.batches(10, np.random.default_rng(0)))[:2])


def test_optimizer_state_lives_on_the_second_device(tiny, tmp_path):
    x, y, _, _ = tiny
    be = _current_device_backend()
    portamlp.train(x=x, y=y, layers=(6, 5, 4), epochs=1, batch_size=10, seed=0, momentum=0.9,
                   learning_rate=0.05, backend=be, checkpoint=tmp_path)
    from portamlp.training.optimizers import make_optimizer

    net = Network.initialize((6, 5, 4), seed=0, backend=be)
    with be.activate():
        opt = make_optimizer("adam", net.parameters(), be, learning_rate=0.01)
    assert all(a.device == DEVICE1 for a in opt.state_arrays().values())
    resumed = portamlp.train(x=x, y=y, resume=tmp_path, epochs=2, backend=be)
    assert all(p.device == DEVICE1 for p in resumed.network.parameters())


def test_without_the_device_context_the_emulation_fails(tiny):
    """The control: the same run with no device context breaks as CuPy would."""
    x, y, _, _ = tiny
    with pytest.raises(ValueError, match="current device|different devices|device"):
        portamlp.train(x=x, y=y, layers=(6, 5, 4), epochs=1, batch_size=10, seed=0,
                       backend=_current_device_backend(with_context=False))


# ----------------------------------------------------------------------- the other findings
def test_device_names_are_strict_and_consistent():
    assert parse_device("cpu") == ("cpu", None)
    assert parse_device("cuda") == ("cuda", None) and parse_device("CUDA:1") == ("cuda", 1)
    assert parse_device(1) == ("cuda", 1) and parse_device(np.int64(2)) == ("cuda", 2)
    for bad in (1.5, True, "gpu", "cuda:x", "cpu:0:1", -1, "cuda:-1"):
        with pytest.raises(ValueError, match="device="):
            parse_device(bad)
    with pytest.raises(ValueError, match="numpy backend, which runs on the CPU"):
        portamlp.get_backend("numpy", "cuda:0")
    with pytest.raises(ValueError, match="numpy backend"):
        portamlp.get_backend("numpy", 0)
    assert portamlp.get_backend("numpy", "cpu").device == "cpu"
    with pytest.raises(ValueError, match="did you mean 'device1'"):
        portamlp.get_backend("array_api_strict", "Device1")


def test_torch_devices_follow_the_same_rule():
    torch = pytest.importorskip("torch")
    assert portamlp.get_backend("torch", "cpu").device == torch.device("cpu")
    with pytest.raises(ValueError, match="not a device"):
        portamlp.get_backend("torch", "tpu9")
    with pytest.raises(ValueError, match="not a device"):
        portamlp.get_backend("torch", 1.5)


class _FakeCupy(types.ModuleType):
    """A CuPy that finds a device but has no CUDA libraries (cupy-cuda12x without [ctk])."""

    def __init__(self, fails: bool):
        super().__init__("cupy")
        self.fails = fails
        runtime = types.SimpleNamespace(getDeviceCount=lambda: 1)
        self.cuda = types.SimpleNamespace(runtime=runtime)
        self.float32 = np.float32

    def ones(self, shape, dtype=None):
        a = np.ones(shape, dtype)
        if self.fails:
            class NoCublas(np.ndarray):
                def __matmul__(self, other):
                    raise ImportError("libcublas.so.12: cannot open shared object file")
            return a.view(NoCublas)
        return a

    def tanh(self, a):
        return np.tanh(a)


@pytest.mark.parametrize("fails", [True, False])
def test_cupy_probe_runs_a_product_and_a_kernel(monkeypatch, fails):
    from portamlp.backends import cupy as cupy_entry

    monkeypatch.setitem(sys.modules, "cupy", _FakeCupy(fails))
    cupy_entry._probe.cache_clear()
    try:
        status = portamlp.available_backends()["cupy"]
        if fails:
            assert not status and "cannot compute" in status.reason
            assert 'pip install "cupy-cuda12x[ctk]"' in status.reason
            assert portamlp.get_backend("auto").name == "numpy"
        else:
            assert status.usable
    finally:
        cupy_entry._probe.cache_clear()


def test_torch_take_is_one_index_select(monkeypatch):
    torch = pytest.importorskip("torch")
    be = portamlp.get_backend("torch")
    x = torch.arange(12.0).reshape(4, 3)
    idx = torch.tensor([3, 0, 2])
    where_calls = []
    original = torch.where
    monkeypatch.setattr(torch, "where", lambda *a, **k: where_calls.append(1) or original(*a,
                                                                                           **k))
    np.testing.assert_array_equal(be.xp.take(x, idx, axis=0).numpy(), x.numpy()[[3, 0, 2]])
    assert where_calls == []


def test_cross_entropy_loss_uses_no_clip(monkeypatch, tiny):
    """array-api-compat's generic clip indexes with a boolean mask (a host read on CuPy)."""
    x, y, _, _ = tiny
    be = portamlp.get_backend("array_api_strict", "device1")
    with monkeypatch.context() as m:
        clips = []
        original = array_api_strict.clip
        m.setattr(array_api_strict, "clip", lambda *a, **k: clips.append(1) or original(*a, **k))
        portamlp.train(x=be.asarray(x), y=be.asarray(y), layers=(6, 4), cost="cross_entropy",
                       epochs=1, batch_size=10, seed=0, learning_rate=0.1)
    assert clips == []


@pytest.mark.parametrize("module, target, match", [
    ("portamlp.training.optimizers", "SGD.__init__", "during allocating the optimizer state"),
    ("portamlp.training.loop", "Trainer._validation_vector", "during validation"),
    ("portamlp.training.loop", "Trainer.evaluate", "during the final test"),
    ("portamlp.training.data", "stage_named", "during staging the data"),
    ("portamlp.nn.network", "Network.backprop", "during a training step"),
])
def test_out_of_memory_names_its_phase(monkeypatch, module, target, match):
    def exhausted(*args, **kwargs):
        raise MemoryError("cudaErrorMemoryAllocation: out of memory")

    owner = sys.modules[module]
    *path, name = target.split(".")
    for part in path:
        owner = getattr(owner, part)
    monkeypatch.setattr(owner, name, exhausted)
    with pytest.raises(portamlp.DeviceMemoryError, match=match) as info:
        portamlp.train(epochs=1, train_length=100, validation_length=20, test_length=20,
                       momentum=0.5, backend="numpy", seed=0)
    assert match.endswith(info.value.phase)


def test_chunked_inference_on_array_api_strict_stays_in_bounds(monkeypatch):
    from portamlp.nn import network as nmod

    monkeypatch.setattr(nmod, "CHUNK_ROWS", 64)
    result = portamlp.train(backend="array_api_strict", layers=(784, 8, 10), epochs=1,
                            train_length=200, validation_length=150, test_length=130, seed=0,
                            batch_size=50, learning_rate=0.5)
    assert result.history[0].validation_accuracy is not None
    net = result.network
    x, y = portamlp.datasets.load_mnist("test", length=130, backend=net.backend)
    assert tuple(net.predict(x).shape) == (130,) and 0 <= net.evaluate(x, y) <= 1


def test_data_trains_where_it_lives(tiny):
    x, y, _, _ = tiny
    strict = portamlp.get_backend("array_api_strict", "device2")
    result = portamlp.train(x=strict.asarray(x), y=strict.asarray(y), layers=(6, 4), epochs=1,
                            batch_size=10, seed=0)
    assert result.network.backend.name == "array_api_strict"
    assert result.network.backend.device == DEVICE2
    explicit = portamlp.train(x=strict.asarray(x), y=strict.asarray(y), layers=(6, 4),
                              epochs=1, batch_size=10, seed=0, backend="numpy")
    assert explicit.network.backend.name == "numpy"
    # nested lists have no library: the default backend
    listed = portamlp.train(x=x.tolist(), y=y.tolist(), layers=(6, 4), epochs=1, batch_size=10,
                            seed=0)
    assert listed.network.backend.name == portamlp.get_backend(None).name


def test_torch_data_trains_on_torch():
    torch = pytest.importorskip("torch")
    x = torch.randn(40, 5, dtype=torch.float64)
    y = (x[:, 0] > 0).long()
    result = portamlp.train(x=x, y=y, layers=(5, 2), epochs=1, batch_size=10, seed=0)
    net = result.network
    assert net.backend.name == "torch" and net.dtype == "float32"
    assert isinstance(net.predict(x), torch.Tensor)
    # inputs from another library are copied to the network's backend; the answer lives there
    assert isinstance(net.predict(to_numpy(x)), torch.Tensor)
