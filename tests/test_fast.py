"""The fast CuPy training step (portamlp.fast): its host-side logic everywhere, and on a GPU the
same weights, losses and accuracy as the portable step it stands in for."""

from __future__ import annotations

import re
from importlib import resources

import numpy as np
import pytest

import portamlp
from portamlp import fast
from portamlp.training.optimizers import SGD, Adam

KERNELS = resources.files("portamlp.fast").joinpath("kernels.cu").read_text()


def _defines(prefix: str) -> dict[str, int]:
    return {m[1].lower(): int(m[2]) for m in re.finditer(rf"#define {prefix}_(\w+) (\d+)", KERNELS)}


# -- host-side logic (no GPU needed)
def test_codes_match_the_kernels_defines():
    assert _defines("ACT") == fast.ACTIVATION_CODES
    assert _defines("OPT") == fast.OPTIMIZER_CODES
    slots = _defines("HP")
    assert [name for name, _ in sorted(slots.items(), key=lambda kv: kv[1])] == \
        list(fast.HYPER_PARAMETERS)
    assert set(portamlp.nn.activations.ACTIVATIONS) < set(fast.ACTIVATION_CODES)


def test_blockers_name_each_reason():
    ok = dict(backend="cupy", layers=(784, 30, 10), batch_size=10)
    assert fast.blockers(**ok) == []
    assert fast.blockers(**dict(ok, layers=(784, 256, 128, 10), batch_size=128)) == []
    assert "CuPy backend (this run uses numpy)" in fast.blockers(**dict(ok, backend="numpy"))[0]
    assert "dropout" in fast.blockers(**ok, dropout=0.5)[0]
    assert "dropout" in fast.blockers(**ok, input_dropout=0.2)[0]
    assert "max_norm" in fast.blockers(**ok, max_norm=3.0)[0]
    assert "sample_weight" in fast.blockers(**ok, sample_weight=True)[0]
    assert "distributed" in fast.blockers(**ok, processes=2)[0]
    assert fast.blockers(**dict(ok, layers=(784, 4096, 4096, 10), batch_size=1024)) == []


def test_large_steps_use_cublas_products_instead_of_graphs():
    assert fast.uses_graphs((784, 30, 10), 10)
    assert fast.uses_graphs((784, 256, 128, 10), 128)
    assert not fast.uses_graphs((784, 4096, 4096, 10), 1024)
    assert not fast.uses_graphs((784, 2048, 2048, 10), 256)


def test_step_flops_counts_forward_and_both_gradients():
    # 784-30-10 at batch 10: forward and weight gradients of both layers, the input gradient
    # of the second only; 2 FLOP per multiply-add.
    assert fast.step_flops((784, 30, 10), 10) == 2 * 10 * (2 * (784 * 30 + 30 * 10) + 30 * 10)


def test_wanted_follows_the_mode():
    assert fast.wanted("auto", []) is True
    assert fast.wanted("auto", ["no GPU"]) is False
    assert fast.wanted("off", []) is False
    assert fast.wanted("on", []) is True
    with pytest.raises(ValueError, match=r"fast_path='on' cannot be honoured: no GPU; x\. "
                                         r"Use fast_path='auto'"):
        fast.wanted("on", ["no GPU", "x"])


def test_numpy_runs_record_the_portable_step(tmp_path):
    result = portamlp.train(backend="numpy", epochs=1, train_length=100, validation_length=0,
                            test_length=0, progress=False)
    assert result.fast_step is False


def test_train_on_numpy_with_the_fast_path_required_says_why_it_cannot():
    with pytest.raises(ValueError, match="needs the CuPy backend"):
        portamlp.train(backend="numpy", fast_path="on", epochs=1, train_length=100,
                       validation_length=0, test_length=10, progress=False)
    with pytest.raises(ValueError, match="did you mean 'off'"):
        portamlp.train(backend="numpy", fast_path="of", epochs=1)


@pytest.mark.parametrize("rows, batch, first, graph, expected", [
    (50_000, 10, 0, 100, (100, 50, 0, 0)),
    (50_000, 128, 0, 100, (100, 3, 90, 80)),
    (1000, 128, 0, 100, (7, 1, 0, 104)),
    (50_000, 10, 250, 100, (100, 47, 50, 0)),
    (105, 10, 10, 100, (1, 0, 0, 5)),
    (5, 10, 0, 100, (1, 0, 0, 5)),
])
def test_epoch_plan(rows, batch, first, graph, expected):
    plan = fast.plan_epoch(rows, batch, first, graph)
    assert (plan.graph_steps, plan.replays, plan.eager_steps, plan.last_rows) == expected
    assert plan.steps == -(-rows // batch) - first


def test_hyper_parameters_follow_the_optimizer():
    params = [np.zeros((3, 2)), np.zeros(3)]
    sgd = SGD(params, np, learning_rate=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    values = dict(zip(fast.HYPER_PARAMETERS, fast.hyper_parameters(sgd)))
    assert values["lr"] == 0.1 and values["momentum"] == 0.9 and values["weight_decay"] == 1e-4
    assert fast.optimizer_code(sgd) == fast.OPTIMIZER_CODES["nesterov"]
    adam = Adam(params, np, learning_rate=1e-3)
    adam.t = 40
    values = dict(zip(fast.HYPER_PARAMETERS, fast.hyper_parameters(adam, first_batch=15)))
    assert values["adam_t0"] == 25.0  # the kernels add the step within the epoch
    assert (values["beta1"], values["beta2"], values["eps"]) == (0.9, 0.999, 1e-8)
    assert fast.optimizer_code(adam) == fast.OPTIMIZER_CODES["adam"]
    assert fast.optimizer_code(SGD(params, np, learning_rate=1.0)) == fast.OPTIMIZER_CODES["sgd"]


# -- on a GPU: the fast step against the portable one
cupy_status = portamlp.available_backends()["cupy"]
needs_gpu = pytest.mark.skipif(not cupy_status, reason=f"cupy: {cupy_status.reason}")


def _data(n):
    x, y = portamlp.datasets.load_mnist("train", length=n, backend="numpy")
    return np.asarray(x), np.asarray(y)


def _run(mode, x, y, **options):
    settings = dict(layers=(784, 30, 10), batch_size=10, epochs=1, seed=3, backend="cupy",
                    progress=False, learning_rate=3.0)
    settings.update(options)
    return portamlp.train(x=x, y=y, fast_path=mode, **settings)


def _assert_same_parameters(a, b, rtol):
    for p, q in zip(sum(a.network.host_parameters(), []), sum(b.network.host_parameters(), [])):
        np.testing.assert_allclose(p, q, rtol=rtol, atol=rtol * float(np.max(np.abs(q))))


STEPS = [
    dict(),
    dict(layers=(784, 100, 50, 10)),
    dict(activation="relu", cost="cross_entropy", learning_rate=0.05, momentum=0.9),
    dict(activation="tanh", cost="cross_entropy", learning_rate=0.05, momentum=0.9,
         nesterov=True, weight_decay=1e-3),
    dict(activation="leaky_relu", cost="quadratic", learning_rate=0.5, weight_decay=1e-3),
    dict(activation="relu", cost="cross_entropy", optimizer="adam", learning_rate=1e-3,
         weight_decay=1e-4),
]


@needs_gpu
@pytest.mark.parametrize("options", STEPS, ids=lambda o: ",".join(f"{k}={v}" for k, v in
                                                                   o.items()) or "nielsen")
def test_fast_step_gives_the_portable_weights_after_ten_steps(options):
    x, y = _data(100)
    a, b = _run("on", x, y, **options), _run("off", x, y, **options)
    _assert_same_parameters(a, b, rtol=1e-4)
    assert a.history[0].train_loss == pytest.approx(b.history[0].train_loss, rel=1e-4)


@needs_gpu
@pytest.mark.parametrize("options", [
    dict(activation="relu", cost="cross_entropy", learning_rate=0.05, momentum=0.9),
    dict(activation="sigmoid", cost="quadratic", learning_rate=1.0, weight_decay=1e-3),
    dict(activation="relu", cost="cross_entropy", optimizer="adam", learning_rate=1e-3),
], ids=["momentum", "sgd-decay", "adam"])
def test_cublas_variant_gives_the_portable_weights(options):
    # 10 steps of 256 rows and a last one of 100 through 784-2048-2048-10: a large step
    x, y = _data(2660)
    options = dict(options, layers=(784, 2048, 2048, 10), batch_size=256)
    assert not fast.uses_graphs(options["layers"], 256)
    a, b = _run("on", x, y, **options), _run("off", x, y, **options)
    _assert_same_parameters(a, b, rtol=1e-4)
    assert a.history[0].train_loss == pytest.approx(b.history[0].train_loss, rel=1e-4)


@needs_gpu
def test_fast_step_in_float64_matches_closely():
    x, y = _data(100)
    a = _run("on", x, y, dtype="float64", epochs=2)
    b = _run("off", x, y, dtype="float64", epochs=2)
    _assert_same_parameters(a, b, rtol=1e-10)


@needs_gpu
def test_replays_eager_steps_and_a_last_partial_batch_all_match(monkeypatch):
    # 205 rows at batch 10: with 8-step graphs, 2 replays, 4 eager steps and one of 5 rows,
    # over 2 epochs (the graph is captured once and replayed with the new permutation)
    monkeypatch.setattr(fast, "GRAPH_STEPS", 8)
    x, y = _data(205)
    options = dict(activation="relu", cost="cross_entropy", learning_rate=0.05, momentum=0.9,
                   epochs=2)
    a, b = _run("on", x, y, **options), _run("off", x, y, **options)
    _assert_same_parameters(a, b, rtol=1e-4)
    for ra, rb in zip(a.history, b.history):
        assert ra.train_loss == pytest.approx(rb.train_loss, rel=1e-4)


@needs_gpu
def test_adam_step_count_continues_across_epochs():
    x, y = _data(200)
    options = dict(optimizer="adam", learning_rate=1e-3, cost="cross_entropy", epochs=3)
    a, b = _run("on", x, y, **options), _run("off", x, y, **options)
    assert a.optimizer_state["scalars"]["t"] == b.optimizer_state["scalars"]["t"] == 60
    _assert_same_parameters(a, b, rtol=1e-4)


@needs_gpu
def test_auto_uses_the_fast_step_where_it_applies(monkeypatch):
    from portamlp.fast import cuda

    runs = []
    original = cuda.FastEpoch.run

    def counting(self, *args, **kwargs):
        runs.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cuda.FastEpoch, "run", counting)
    x, y = _data(100)
    assert _run("auto", x, y).fast_step is True
    assert len(runs) == 1
    # dropout is not in the fast step: the portable one runs
    assert _run("auto", x, y, dropout=0.2).fast_step is False
    assert _run("off", x, y).fast_step is False
    assert len(runs) == 1


@needs_gpu
def test_fast_step_reaches_the_portable_accuracy():
    # median test accuracy of 3 seeds within 0.5 points (Nielsen's network, 3 epochs)
    x, y = _data(20_000)
    xt, yt = portamlp.datasets.load_mnist("test", backend="numpy")
    accuracy = {}
    for mode in ("on", "off"):
        accuracy[mode] = float(np.median([
            _run(mode, x, y, epochs=3, seed=seed, test_data=(xt, yt)).test_accuracy
            for seed in (0, 1, 2)]))
    assert abs(accuracy["on"] - accuracy["off"]) <= 0.005, accuracy
    assert accuracy["on"] > 0.9
