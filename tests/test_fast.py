"""The fast CuPy training step (portamlp.fast): its host-side logic everywhere, and on a GPU the
same weights, costs and accuracy as the portable step it stands in for."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest

import portamlp
from portamlp import fast
from portamlp.fast import source
from portamlp.nn.activations import ACTIVATIONS
from portamlp.nn.costs import COSTS
from portamlp.training.distortions import DistortionSpec
from portamlp.training.optimizers import make_optimizer

KERNELS = resources.files("portamlp.fast").joinpath("kernels.cu").read_text()


# -- host-side logic (no GPU needed)
def test_kernel_mathematics_comes_from_the_registries():
    codes = source.activation_codes()
    assert set(codes) == {n for n, a in ACTIVATIONS.items() if a.has_kernel} | {"identity"}
    assert sorted(codes.values()) == list(range(len(codes)))
    assert set(source.cost_codes()) == {n for n, c in COSTS.items() if c.kernel_row}
    for rule in _rules().values():
        text = source.kernel_source("float32", rule)
        assert "#define real float" in text and rule.code in text
        for name, entry in ACTIVATIONS.items():
            if name == source.IDENTITY:  # the kernels' default case: z, and 1
                assert (entry.kernel_f, entry.kernel_f_prime) == ("z", "(real)1")
                continue
            assert f"case {codes[name]}: return {entry.kernel_f};" in text
            assert f"case {codes[name]}: return {entry.kernel_f_prime};" in text
        for cost in COSTS.values():
            if cost.kernel_row is not None:  # the others take the portable step
                assert cost.kernel_row in text
    # the kernels themselves name no activation, cost or optimizer
    for name in [*ACTIVATIONS, *COSTS, "OPT_", "ACT_", "adam", "nesterov"]:
        assert name.upper() not in KERNELS and f" {name} " not in KERNELS.lower(), name


class _Net:
    def __init__(self, backend="cupy", activation="sigmoid", cost="quadratic"):
        self.backend = type("B", (), {"name": backend})()
        self.activation, self.cost = activation, cost


class _Config:
    dropout = input_dropout = 0.0
    max_norm = None
    distortions = DistortionSpec()


def _optimizer(name="sgd", **hyper):
    from portamlp.training.optimizers import make_optimizer

    params = [np.zeros((3, 2)), np.zeros(3)]
    return make_optimizer(name, params, portamlp.get_backend("numpy"), learning_rate=0.1,
                          **hyper)


def test_blockers_name_each_reason():
    ok = dict(sample_weight=False, processes=1)
    cfg = _Config()
    assert fast.blockers(_Net(), _optimizer(), cfg, **ok) == []
    assert fast.blockers(_Net(activation="relu", cost="cross_entropy"), _optimizer("adam"), cfg,
                         **ok) == []
    reasons = fast.blockers(_Net("numpy"), _optimizer(), cfg, **ok)
    assert "CuPy or JAX backend (this run uses numpy)" in reasons[0]
    for option, value, reason in [("dropout", 0.5, "dropout"), ("input_dropout", 0.2, "dropout"),
                                  ("max_norm", 3.0, "max_norm")]:
        changed = _Config()
        setattr(changed, option, value)
        assert reason in fast.blockers(_Net(), _optimizer(), changed, **ok)[0]
    changed = _Config()
    changed.distortions = DistortionSpec(rotation=5.0)
    assert "distortions" in fast.blockers(_Net(), _optimizer(), changed, **ok)[0]
    assert "sample_weight" in fast.blockers(_Net(), _optimizer(), cfg, sample_weight=True)[0]
    assert "distributed" in fast.blockers(_Net(), _optimizer(), cfg, processes=2)[0]


def test_an_entry_without_kernel_code_takes_the_portable_step():
    from portamlp.nn.activations import Activation

    softplus = Activation("softplus", lambda xp, z: xp.log(1.0 + xp.exp(z)),
                          lambda xp, z, a: 1.0 - xp.exp(-a))
    with ACTIVATIONS.added(softplus):
        reasons = fast.blockers(_Net(activation="softplus"), _optimizer(), _Config())
        assert reasons == ["activation 'softplus' has no kernel code (Activation.kernel_f)"]
        assert "softplus" not in source.activation_codes()
        with pytest.raises(ValueError, match="fast_path='on' cannot be honoured: activation "
                                             "'softplus' has no kernel code"):
            fast.wanted("on", reasons)
        assert fast.wanted("auto", reasons) is False


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
    with pytest.raises(ValueError, match="needs the CuPy or JAX backend"):
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
    sgd = _optimizer("sgd", momentum=0.9, nesterov=True, weight_decay=1e-4)
    assert fast.hyper_parameters(sgd) == [0.1, 1e-4, 0.0, 0.9]
    assert sgd.kernel_rule().name == "nesterov" and sgd.kernel_rule().states == 1
    adam = _optimizer("adam", beta2=0.99)
    adam.t = 40
    # the kernels add the step within the epoch to step0
    assert fast.hyper_parameters(adam, first_batch=15) == [0.1, 0.0, 25.0, 0.9, 0.99, 1e-8]
    assert adam.kernel_rule().states == 2
    assert _optimizer("sgd").kernel_rule().name == "sgd"


def _rules():
    return {"sgd": _optimizer("sgd").kernel_rule(),
            "momentum": _optimizer("sgd", momentum=0.9).kernel_rule(),
            "nesterov": _optimizer("sgd", momentum=0.9, nesterov=True).kernel_rule(),
            "adam": _optimizer("adam", beta1=0.8, beta2=0.99, epsilon=1e-6).kernel_rule()}


HARNESS = """
#include <cmath>
using std::tanh; using std::exp; using std::log; using std::sqrt; using std::pow;
#define __device__
#define __forceinline__ inline
{prelude}
extern "C" {{
double act_f(double z, int act) {{ return activate(z, act); }}
double act_d(double a, int act) {{ return derivative(a, act); }}
double cost_row(int cost, const double* out, double* delta, int y, int n_out, int act,
                double tiny) {{ return row_cost(cost, out, delta, y, n_out, act, tiny); }}
void update_one(double* p, double* s1, double* s2, double g, double inv_rows,
                const double* hp, long long t, int decay) {{
    update(p, s1, s2, g, inv_rows, hp, t, decay); }}
}}
"""


def _host_kernels(rule, tmp_path):
    """The kernels' mathematics for ``rule``, compiled for the host (real = double)."""
    import ctypes
    import shutil
    import subprocess

    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no C++ compiler to build the kernels' mathematics on the host")
    cpp, lib = tmp_path / f"{rule.name}.cpp", tmp_path / f"{rule.name}.so"
    cpp.write_text(HARNESS.format(prelude=source.prelude("double", rule)))
    subprocess.run([compiler, "-shared", "-fPIC", "-O1", "-o", str(lib), str(cpp)], check=True)
    so = ctypes.CDLL(str(lib))
    d, i, p, ll = ctypes.c_double, ctypes.c_int, ctypes.POINTER(ctypes.c_double), ctypes.c_longlong
    so.act_f.restype = so.act_d.restype = so.cost_row.restype = d
    so.act_f.argtypes = so.act_d.argtypes = [d, i]
    so.cost_row.argtypes = [i, p, p, i, i, i, d]
    so.update_one.restype = None
    so.update_one.argtypes = [p, p, p, d, d, p, ll, i]
    return so


def _pointer(a):
    import ctypes

    return a.ctypes.data_as(ctypes.POINTER(ctypes.c_double))


def test_each_entrys_kernel_code_computes_what_its_array_api_code_does(tmp_path, rng):
    """Every activation's, cost's and optimizer rule's kernel code, compiled for the host,
    against the entry's own Array-API functions on NumPy (float64)."""
    rules = _rules()
    so = _host_kernels(rules["sgd"], tmp_path)
    codes, xp = source.activation_codes(), portamlp.get_backend("numpy").xp
    z = rng.uniform(-4, 4, 200)
    for name, entry in ACTIVATIONS.items():
        a = entry.f(xp, z)
        got = np.array([so.act_f(v, codes[name]) for v in z])
        np.testing.assert_allclose(got, a, rtol=1e-12, atol=1e-15, err_msg=name)
        got = np.array([so.act_d(v, codes[name]) for v in a])
        np.testing.assert_allclose(got, entry.f_prime(xp, z, a), rtol=1e-12, err_msg=name)
    rows, k = 6, 4
    zs = rng.uniform(-3, 3, (rows, k))
    labels = rng.integers(0, k, rows)
    targets = np.eye(k)[labels]
    tiny = float(np.finfo(np.float64).smallest_normal)
    for name, cost in COSTS.items():
        if cost.kernel_row is None:  # no kernel code: such runs take the portable step
            continue
        for act_name, act in ACTIVATIONS.items():
            a = cost.output(xp, zs, act)
            raw, delta = cost.value_and_delta(xp, zs, a, targets, act, True)
            out = a if cost.kernel_output == "hidden" else zs
            got_delta, total = np.zeros((rows, k)), 0.0
            for r in range(rows):
                row = np.ascontiguousarray(out[r])
                d = np.zeros(k)
                total += so.cost_row(source.cost_codes()[name], _pointer(row), _pointer(d),
                                     int(labels[r]), k, codes[act_name], tiny)
                got_delta[r] = d
            np.testing.assert_allclose(total, raw, rtol=1e-12, err_msg=f"{name}/{act_name}")
            np.testing.assert_allclose(got_delta, delta, rtol=1e-12, atol=1e-15,
                                       err_msg=f"{name}/{act_name}")
    for name, hyper in [("sgd", {}), ("momentum", dict(momentum=0.9)),
                        ("nesterov", dict(momentum=0.9, nesterov=True)),
                        ("adam", dict(beta1=0.8, beta2=0.99, epsilon=1e-6))]:
        lib = so if name == "sgd" else _host_kernels(rules[name], tmp_path)
        optimizer = "adam" if name == "adam" else "sgd"
        be = portamlp.get_backend("numpy")
        params = [rng.standard_normal((3, 2)), rng.standard_normal(3)]
        start = [p.copy() for p in params]
        opt = make_optimizer(optimizer, params, be, learning_rate=0.1, weight_decay=0.05,
                             **hyper)
        rule = opt.kernel_rule()
        assert rule.name == name
        kernel = [p.copy() for p in start]
        states = [[np.zeros(p.size) for _ in range(2)] for p in kernel]
        hp = np.array(fast.hyper_parameters(opt))
        inv_rows = 1.0 / 8
        for step in range(1, 4):
            grads = [rng.standard_normal(p.shape) for p in params]
            opt.step(grads, inv_rows)
            for index, (p, g) in enumerate(zip(kernel, grads)):
                flat, gflat = p.reshape(-1), g.reshape(-1)
                s1, s2 = states[index]
                for e in range(flat.size):
                    cell = np.array([flat[e]])
                    a1, a2 = np.array([s1[e]]), np.array([s2[e]])
                    lib.update_one(_pointer(cell), _pointer(a1), _pointer(a2), gflat[e],
                                   inv_rows, _pointer(hp), step, int(p.ndim == 2))
                    flat[e], s1[e], s2[e] = cell[0], a1[0], a2[0]
        for mine, theirs in zip(kernel, params):
            np.testing.assert_allclose(mine, theirs, rtol=1e-12, err_msg=name)


def test_the_kernel_source_compiles_for_cuda(tmp_path):
    """With NVIDIA's compiler here (no GPU needed), every variant of the source compiles."""
    import shutil
    import subprocess

    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    for dtype in ("float32", "float64"):
        for name, rule in _rules().items():
            path = tmp_path / f"{name}-{dtype}.cu"
            path.write_text(source.kernel_source(dtype, rule))
            out = subprocess.run([nvcc, "--std=c++14", "-arch=sm_80", "-ptx", "-o",
                                  str(path.with_suffix(".ptx")), str(path)],
                                 capture_output=True, text=True)
            assert out.returncode == 0, out.stderr


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
    assert a.history[0].train_cost == pytest.approx(b.history[0].train_cost, rel=1e-4)


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
    assert a.history[0].train_cost == pytest.approx(b.history[0].train_cost, rel=1e-4)


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
        assert ra.train_cost == pytest.approx(rb.train_cost, rel=1e-4)


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
