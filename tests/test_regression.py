"""Costs whose targets are not classes: regression (``squared_error``, an identity output) and
several labels per sample (``binary_cross_entropy``, a logistic output per label), through
``train``, ``Network`` and the model files, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import portamlp
from portamlp import Network
from portamlp.backends import to_numpy


@pytest.fixture(scope="module")
def linear():
    """Two real targets, a linear function of five inputs plus a little noise."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((600, 5))
    w = np.array([[1.0, -2.0], [0.5, 0.3], [0.0, 1.0], [-1.0, 0.0], [0.2, 0.2]])
    return x, x @ w + 0.05 * rng.standard_normal((600, 2))


@pytest.fixture(scope="module")
def multilabel():
    """Three labels per sample, each a sign of a linear function of the inputs."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((800, 6))
    return x, (x[:, :3] + 0.5 * x[:, 3:] > 0).astype(np.int64)


def test_a_regression_network_fits_values_on_every_backend(backend, linear):
    x, y = linear
    be = backend
    result = portamlp.train(x=be.asarray(x[:500], "float64"), y=be.asarray(y[:500], "float64"),
                            validation_data=(x[500:], y[500:]), cost="squared_error",
                            activation="tanh", learning_rate=0.05, epochs=20, seed=0,
                            dtype="float64", backend=be)
    net = result.network
    assert net.layers == (5, 30, 2) and net.targets == "values"  # outputs from y's columns
    predicted = net.predict(x[500:])
    assert predicted.shape == (100, 2)
    host = to_numpy(predicted)
    residual = ((host - y[500:]) ** 2).sum(axis=0)
    r2 = 1 - residual / ((y[500:] - y[500:].mean(axis=0)) ** 2).sum(axis=0)
    assert (r2 > 0.95).all(), r2
    # evaluate: the mean squared error over rows and outputs; the validation cost is ½ of it
    mse = float(np.mean((host - y[500:]) ** 2))
    assert net.evaluate(x[500:], y[500:]) == pytest.approx(mse, rel=1e-9)
    last = result.history[-1]
    assert last.validation_accuracy is None and last.predicted_counts == []
    assert last.validation_cost == pytest.approx(mse, rel=1e-6)  # ½ Σ over 2 outputs / rows
    with pytest.raises(TypeError, match="predict_proba is for classifiers"):
        net.predict_proba(x[:2])


def test_one_value_per_sample_is_one_output(linear):
    x, y = linear
    result = portamlp.train(x=x, y=y[:, 0], cost="squared_error", activation="tanh",
                            learning_rate=0.05, epochs=3, seed=0)
    assert result.network.layers == (5, 30, 1)
    assert result.network.predict(x[:4]).shape == (4, 1)
    Network.initialize((5, 1), cost="squared_error")  # one output fits one value
    with pytest.raises(ValueError, match="the output layer needs at least 2 classes"):
        Network.initialize((5, 1), cost="cross_entropy")
    with pytest.raises(ValueError, match="the output layer needs at least 2 classes"):
        portamlp.train(x=x, y=np.arange(600) % 2, layers=(5, 1), epochs=1)


def test_several_labels_per_sample(multilabel):
    x, y = multilabel
    result = portamlp.train(x=x[:600], y=y[:600], validation_data=(x[600:], y[600:]),
                            cost="binary_cross_entropy", activation="relu", learning_rate=0.1,
                            epochs=15, seed=0)
    net = result.network
    assert net.layers == (6, 30, 3) and net.targets == "labels"
    predicted = to_numpy(net.predict(x[600:]))
    proba = to_numpy(net.predict_proba(x[600:]))
    assert predicted.dtype == np.int64 and set(np.unique(predicted)) <= {0, 1}
    np.testing.assert_array_equal(predicted, (proba > 0.5).astype(np.int64))
    assert not np.allclose(proba.sum(axis=1), 1.0)  # one probability per label, not a softmax
    subset = float(np.mean((predicted == y[600:]).all(axis=1)))
    assert subset > 0.8
    assert net.evaluate(x[600:], y[600:]) == pytest.approx(subset)
    assert result.history[-1].validation_accuracy == pytest.approx(subset)
    with pytest.raises(ValueError, match="must hold 0 and 1 only"):
        portamlp.train(x=x, y=2 * y, cost="binary_cross_entropy", epochs=1)


@pytest.mark.parametrize("cost", ["squared_error", "binary_cross_entropy"])
@pytest.mark.parametrize("ext", ["json", "safetensors"])
def test_such_networks_are_saved_and_loaded_like_any_other(tmp_path, linear, cost, ext):
    x, y = linear
    targets = y if cost == "squared_error" else (y > 0).astype(np.int64)
    net = portamlp.train(x=x, y=targets, cost=cost, epochs=1, seed=0,
                         learning_rate=0.1).network
    path = tmp_path / f"net.{ext}"
    net.save(path)
    again = portamlp.load(path)
    assert again.cost == cost and again.layers == net.layers
    np.testing.assert_array_equal(to_numpy(again.predict(x)), to_numpy(net.predict(x)))


def test_what_does_not_fit_values_is_said(linear):
    x, y = linear
    with pytest.raises(ValueError, match="cost='squared_error' fits values, but 'mnist' holds "
                                         "classes"):
        portamlp.train(cost="squared_error", epochs=1, train_length=100)
    with pytest.raises(ValueError, match="has no accuracy: use monitor='validation_cost'"):
        portamlp.train(x=x, y=y, cost="squared_error", early_stopping=True,
                       validation_split=0.2, epochs=2)
    stopped = portamlp.train(x=x, y=y, cost="squared_error", early_stopping=True,
                             monitor="validation_cost", validation_split=0.2, epochs=3,
                             learning_rate=0.05, activation="tanh", seed=0)
    assert stopped.best_epoch is not None


def test_jax_compiles_a_regression_epoch(linear):
    jax = pytest.importorskip("jax")
    x, y = linear
    X, Y = jax.numpy.asarray(x), jax.numpy.asarray(y)
    common = dict(cost="squared_error", activation="tanh", learning_rate=0.05, epochs=2,
                  seed=0, dtype="float64", batch_size=16)
    portable = portamlp.train(x=X, y=Y, fast_path="off", **common)
    compiled = portamlp.train(x=X, y=Y, fast_path="on", **common)
    assert compiled.fast_step
    for a, b in zip(portable.network.parameters(), compiled.network.parameters()):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-10, atol=1e-12)
