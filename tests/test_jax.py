"""JAX: the portable step on a library without in-place updates, and the compiled epoch.

The cross-backend tests (the ``backend`` fixture) run on JAX too; these check what is JAX's
own: its arrays in and out, the 64-bit mode, the compiled epoch against the portable step,
resuming and signals with the compiled epoch, and the estimator under array-api dispatch.
Tests run with JAX's 64-bit mode on (``conftest.py``); one switches it off.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import pytest

import portamlp
from portamlp.files.checkpoints import load_checkpoint

jax = pytest.importorskip("jax", reason='needs JAX: pip install "portamlp[jax]"')
jnp = jax.numpy


@pytest.fixture(scope="module")
def data():
    x, y = portamlp.datasets.load_mnist("train", backend="numpy", length=3005)
    xt, yt = portamlp.datasets.load_mnist("test", backend="numpy", length=1000)
    return x, y, xt, yt


def _on_jax(*arrays):
    return [jnp.asarray(a) for a in arrays]


def _largest_relative_difference(a: portamlp.Network, b: portamlp.Network) -> float:
    (wa, ba), (wb, bb) = a.host_parameters(), b.host_parameters()
    return max(float(np.max(np.abs(p - q)) / np.max(np.abs(p)))
               for p, q in zip(wa + ba, wb + bb))


def test_importing_portamlp_imports_no_jax():
    code = ("import sys, portamlp, numpy; portamlp.train(x=numpy.eye(4), y=numpy.arange(4) % 2,"
            " layers=[4, 2], epochs=1, progress=False); "
            "print('jax' in sys.modules, 'jaxlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["False", "False"]


def test_jax_arrays_train_in_jax_and_predictions_are_jax_arrays(data):
    x, y, xt, yt = data
    X, Y, XT, YT = _on_jax(x[:1000], y[:1000], xt, yt)
    result = portamlp.train(x=X, y=Y, test_data=(XT, YT), layers=[784, 30, 10], epochs=3,
                            seed=0)
    net = result.network
    assert net.backend.name == "jax" and result.fast_step
    assert all(isinstance(p, jax.Array) for p in net.parameters())
    assert result.test_accuracy > 0.75
    assert isinstance(net.predict(XT), jax.Array) and isinstance(net.predict_proba(XT), jax.Array)
    assert net.predict(XT).shape == (1000,)
    assert net.evaluate(XT, YT) == pytest.approx(result.test_accuracy)
    # NumPy inputs to a JAX network are moved to it; the result is a JAX array
    assert isinstance(net.predict(xt[:3]), jax.Array)


def test_the_jax_backend_trains_on_the_embedded_mnist():
    result = portamlp.train(backend="jax", device="cpu", epochs=1, train_length=2000,
                            validation_length=500, test_length=500, seed=0)
    assert result.network.backend.name == "jax" and result.test_accuracy > 0.8
    assert portamlp.get_backend("jax", "cpu:0").device == jax.devices("cpu")[0]
    with pytest.raises(ValueError, match="jax sees 1 cpu device"):
        portamlp.get_backend("jax", "cpu:5")
    if not jax.devices()[0].platform == "gpu":  # a CPU build: no CUDA device, said so
        with pytest.raises(ValueError, match="device='cuda' is not usable with jax"):
            portamlp.get_backend("jax", "cuda")
    # a JAX network's backend travels in pickles and model files as its device's name
    assert portamlp.get_backend("jax").library.device_spec(jax.devices("cpu")[0]) == "cpu:0"


def test_float64_without_the_64_bit_mode_is_refused_not_trained_in_float32(data):
    x, y, _, _ = data
    jax.config.update("jax_enable_x64", False)
    try:
        X, Y = _on_jax(x[:100], y[:100])
        with pytest.raises(ValueError, match=r"needs its 64-bit mode, which is off: call "
                                             r"jax.config.update\('jax_enable_x64', True\)"):
            portamlp.train(x=X, y=Y, layers=[784, 5, 10], epochs=1, dtype="float64")
        # float32 trains, with int32 class indices and no warning about int64
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = portamlp.train(x=X, y=Y, layers=[784, 5, 10], epochs=1, seed=0)
        assert result.network.dtype == "float32"
        assert result.network.predict(X).dtype == jnp.int32
    finally:
        jax.config.update("jax_enable_x64", True)


def test_numpy_and_jax_agree_after_300_portable_steps(data):
    x, y, _, _ = data
    options = dict(layers=[784, 30, 10], epochs=1, seed=1, dtype="float64", train_length=3000,
                   fast_path="off")  # 300 steps of 10
    on_numpy = portamlp.train(x=x, y=y, **options)
    on_jax = portamlp.train(x=jnp.asarray(x), y=jnp.asarray(y), **options)
    assert not on_jax.fast_step
    assert _largest_relative_difference(on_numpy.network, on_jax.network) < 1e-10


OPTIMIZERS = {
    "sgd": dict(),
    "momentum": dict(momentum=0.9, learning_rate=0.5),
    "nesterov": dict(momentum=0.9, nesterov=True, learning_rate=0.5),
    "adam": dict(optimizer="adam", learning_rate=0.01),
    "weight decay, cosine": dict(weight_decay=1e-3, learning_rate_schedule="cosine"),
    "relu, cross-entropy": dict(activation="relu", cost="cross_entropy", learning_rate=0.1),
}


@pytest.mark.parametrize("options", list(OPTIMIZERS))
def test_the_compiled_epoch_is_the_portable_step(data, options):
    """Same seed, float64: the compiled epoch and the portable step within 1e-10 after two
    epochs (with a short last mini-batch: 3,005 rows in batches of 10)."""
    x, y, _, _ = data
    X, Y = _on_jax(x, y)
    common = dict(layers=[784, 30, 10], epochs=2, seed=0, dtype="float64",
                  **OPTIMIZERS[options])
    portable = portamlp.train(x=X, y=Y, fast_path="off", **common)
    compiled = portamlp.train(x=X, y=Y, fast_path="on", **common)
    assert compiled.fast_step and not portable.fast_step
    assert compiled.compile_seconds > 0 and portable.compile_seconds == 0
    assert _largest_relative_difference(portable.network, compiled.network) < 1e-10
    assert [h.train_cost for h in compiled.history] == pytest.approx(
        [h.train_cost for h in portable.history], rel=1e-10)
    assert compiled.optimizer_state["scalars"] == portable.optimizer_state["scalars"]


def test_the_compiled_epoch_in_float32_reaches_the_same_accuracy(data):
    x, y, xt, yt = data
    X, Y, XT, YT = _on_jax(x, y, xt, yt)
    common = dict(layers=[784, 30, 10], epochs=2, seed=0, test_data=(XT, YT))
    portable = portamlp.train(x=X, y=Y, fast_path="off", **common)
    compiled = portamlp.train(x=X, y=Y, fast_path="on", **common)
    assert compiled.network.dtype == "float32"
    assert abs(compiled.test_accuracy - portable.test_accuracy) <= 0.01


def test_fast_path_governs_the_compiled_epoch(data):
    x, y, _, _ = data
    X, Y = _on_jax(x[:200], y[:200])
    with pytest.raises(ValueError, match="fast_path='on' cannot be honoured: dropout is not in "
                                         "the fast step"):
        portamlp.train(x=X, y=Y, layers=[784, 8, 10], epochs=1, dropout=0.5, fast_path="on")
    auto = portamlp.train(x=X, y=Y, layers=[784, 8, 10], epochs=1, dropout=0.5, seed=0)
    assert not auto.fast_step  # dropout: the portable step, on JAX
    # the compiled step runs any activation, cost and optimizer: it is the portable code
    assert portamlp.train(x=X, y=Y, layers=[784, 8, 10], epochs=1, activation="tanh",
                          fast_path="on").fast_step


def test_a_checkpointed_compiled_run_resumes_exactly(data, tmp_path):
    x, y, _, _ = data
    X, Y = _on_jax(x[:1005], y[:1005])
    common = dict(layers=[784, 16, 10], seed=2, dtype="float64", optimizer="adam",
                  learning_rate=0.01)
    whole = portamlp.train(x=X, y=Y, epochs=3, **common)
    portamlp.train(x=X, y=Y, epochs=1, checkpoint=tmp_path, **common)
    resumed = portamlp.train(x=X, y=Y, resume=tmp_path, epochs=3)
    assert resumed.fast_step
    for a, b in zip(whole.network.parameters(), resumed.network.parameters()):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_signal_stops_the_compiled_epoch_cleanly_and_resume_is_exact(data, tmp_path,
                                                                         monkeypatch):
    """A signal during an epoch's compiled program stops after it, before the short last
    mini-batch; the checkpoint resumes from there to the same weights as an uninterrupted
    run."""
    from portamlp.fast.xla import FastEpoch

    x, y, _, _ = data
    X, Y = _on_jax(x[:1005], y[:1005])
    common = dict(layers=[784, 16, 10], seed=4, dtype="float64", momentum=0.5,
                  learning_rate=0.5)
    whole = portamlp.train(x=X, y=Y, epochs=3, **common)
    keep, programs = FastEpoch._keep, []

    def keep_and_signal(self, *results):  # as if Ctrl-C came while epoch 2's program ran
        programs.append(1)
        if len(programs) == 3:  # epoch 1: the program and the last step; epoch 2: the program
            signal.raise_signal(signal.SIGINT)
        keep(self, *results)

    monkeypatch.setattr(FastEpoch, "_keep", keep_and_signal)
    with pytest.raises(portamlp.TrainingInterrupted) as info:
        portamlp.train(x=X, y=Y, epochs=3, checkpoint=tmp_path, **common)
    monkeypatch.undo()
    assert info.value.epochs_done == 1
    position = load_checkpoint(tmp_path).position
    assert (position.epoch, position.batch) == (2, 100)  # epoch 2's program ran, not its last
    resumed = portamlp.train(x=X, y=Y, resume=tmp_path, epochs=3)
    for a, b in zip(whole.network.parameters(), resumed.network.parameters()):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

