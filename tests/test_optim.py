"""Optimizers: the update rules against hand-written NumPy, in place, on every backend."""

import numpy as np
import pytest
from conftest import read_only_backend

from portamlp.backends import get_backend, to_numpy
from portamlp.training.optimizers import SGD, Adam, make_optimizer


def _setup(backend, rng):
    w = rng.standard_normal((3, 4))
    b = rng.standard_normal(3)
    grads = [[rng.standard_normal((3, 4)), rng.standard_normal(3)] for _ in range(3)]
    params = [backend.asarray(w.copy(), "float64"), backend.asarray(b.copy(), "float64")]
    return w, b, grads, params


def _run(opt, backend, grads):
    for g in grads:
        opt.step([backend.asarray(g[0], "float64"), backend.asarray(g[1], "float64")])


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_matches_the_update_rule(backend, rng, momentum, nesterov):
    w, b, grads, params = _setup(backend, rng)
    ids = [id(p) for p in params]
    opt = SGD(params, backend, learning_rate=0.1, momentum=momentum, nesterov=nesterov,
              weight_decay=0.01)
    _run(opt, backend, grads)
    vw, vb = np.zeros_like(w), np.zeros_like(b)
    for gw, gb in grads:
        gw = gw + 0.01 * w  # weight decay on weights only
        vw = momentum * vw - 0.1 * gw
        vb = momentum * vb - 0.1 * gb
        if nesterov:
            w = w + momentum * vw - 0.1 * gw
            b = b + momentum * vb - 0.1 * gb
        else:
            w, b = w + vw, b + vb
    np.testing.assert_allclose(to_numpy(params[0]), w, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(params[1]), b, rtol=1e-12)
    # in place where the library allows it (buffers keep their identity); new arrays on JAX
    assert ([id(p) for p in params] == ids) == backend.in_place


def test_adam_matches_the_update_rule(backend, rng):
    w, b, grads, params = _setup(backend, rng)
    opt = Adam(params, backend, learning_rate=0.01)
    _run(opt, backend, grads)
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, (gw, _) in enumerate(grads, start=1):
        m = 0.9 * m + 0.1 * gw
        v = 0.999 * v + 0.001 * gw * gw
        w = w - 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    np.testing.assert_allclose(to_numpy(params[0]), w, rtol=1e-10)


def test_updates_keep_the_buffers_in_place():
    be = get_backend("numpy")
    params = [np.ones((2, 2)), np.ones(2)]
    pointers = [p.__array_interface__["data"][0] for p in params]
    for opt in (SGD(params, be, learning_rate=0.1, momentum=0.5),
                Adam(params, be, learning_rate=1e-3)):
        opt.step([np.ones((2, 2)), np.ones(2)])
    assert [p.__array_interface__["data"][0] for p in params] == pointers
    assert params[0][0, 0] != 1.0


@pytest.mark.parametrize("name, hyper", [("sgd", dict(momentum=0.9, nesterov=True)),
                                         ("adam", dict(beta1=0.8, beta2=0.99, epsilon=1e-6))])
def test_without_in_place_updates_the_list_gets_new_arrays(rng, name, hyper):
    """A library without in-place updates: every update is a new array put into the network's
    parameter list (the old ones unchanged), with the same numbers as in place."""
    results = {}
    for in_place in (True, False):
        be = get_backend("numpy") if in_place else read_only_backend()
        params = [be.asarray(rng.standard_normal((3, 4)) * 0 + 1, "float64"),
                  be.asarray(np.ones(3), "float64")]
        before = list(params)
        opt = make_optimizer(name, params, be, learning_rate=0.1, weight_decay=0.01, **hyper)
        for g in ([np.full((3, 4), 0.5), np.full(3, -0.5)], [np.ones((3, 4)), np.ones(3)]):
            opt.step([be.asarray(g[0], "float64"), be.asarray(g[1], "float64")])
        assert all((p is q) == in_place for p, q in zip(params, before))
        if not in_place:
            assert all(np.all(q == 1.0) for q in before)  # the old arrays are untouched
        results[in_place] = [np.array(p) for p in params]
    for a, b in zip(results[True], results[False]):
        np.testing.assert_allclose(a, b, rtol=1e-15)


def test_make_optimizer_rejects_unknown_and_bad_combinations():
    be = get_backend("numpy")
    with pytest.raises(ValueError, match="'rmsprop'"):
        make_optimizer("rmsprop", [], be, learning_rate=0.1)
    with pytest.raises(ValueError, match="momentum=0.9 applies to optimizer='sgd'"):
        make_optimizer("adam", [], be, learning_rate=0.1, momentum=0.9)
    with pytest.raises(TypeError, match="no hyper-parameter 'beta_1'.*did you mean 'beta1'"):
        make_optimizer("adam", [], be, learning_rate=0.1, beta_1=0.9)
