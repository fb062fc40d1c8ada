"""The network: initialisation, forward pass, backpropagation checked by central differences,
a 2-2-2 network worked by hand, and the validation of what users pass in."""

import numpy as np
import pytest

import portamlp
from portamlp import Network
from portamlp.backends import to_numpy
from portamlp.nn.activations import ACTIVATIONS
from portamlp.nn.costs import COSTS


def _numeric_gradients(net, x, y, eps=1e-6):
    """Central differences of the mean cost for every parameter (float64, NumPy network)."""
    grads = []
    for p in net.parameters():
        g = np.zeros_like(p)
        it = np.nditer(p, flags=["multi_index"])
        for _ in it:
            i = it.multi_index
            old = p[i]
            p[i] = old + eps
            up = net.mean_cost(x, y)
            p[i] = old - eps
            down = net.mean_cost(x, y)
            p[i] = old
            g[i] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("cost", sorted(COSTS))
def test_backprop_matches_central_differences(activation, cost, rng):
    net = Network.initialize((5, 4, 3, 3), activation=activation, cost=cost, init="scaled",
                             dtype="float64", seed=3, backend="numpy")
    x = rng.standard_normal((7, 5))
    values = rng.standard_normal((7, 3))
    if COSTS[cost].min_target is not None:  # counts and rates (Poisson): the cost's own range
        values = np.abs(values) + COSTS[cost].min_target
    y = {"classes": rng.integers(0, 3, size=7), "values": values,
         "labels": rng.integers(0, 2, size=(7, 3))}[net.targets]
    nabla_w, nabla_b = net.gradients(x, y)
    analytic = [g for pair in zip(nabla_w, nabla_b) for g in pair]
    numeric = _numeric_gradients(net, x, y)
    for a, n in zip(analytic, numeric):
        np.testing.assert_allclose(a, n, rtol=1e-5, atol=1e-8)


def test_gradients_agree_across_backends(backend, rng):
    ref = Network.initialize((6, 5, 4), activation="tanh", cost="cross_entropy",
                             dtype="float64", seed=11, backend="numpy")
    other = ref.to(backend)
    x = rng.standard_normal((9, 6))
    y = rng.integers(0, 4, size=9)
    flat = [sum(map(list, net.gradients(x, y)), []) for net in (ref, other)]
    for a, b in zip(*flat):
        np.testing.assert_allclose(to_numpy(b), a, rtol=1e-12, atol=1e-14)


# A 2-2-2 network, sigmoid, quadratic cost, one sample x = (1, 0.5) of class 1, η = 1.
# By hand:  z¹ = W¹x + b¹ = (0.1 - 0.1 + 0,  0.3 + 0.2 + 0.1) = (0, 0.6),  a¹ = (0.5, σ(0.6))
#           σ(0.6) = 1 / (1 + e^-0.6) = 0.6456563062257954
#           z² = W²a¹ + b² = (0.25 - 0.6·0.64566 + 0.1,  0.35 + 0.8·0.64566 - 0.1)
#              = (-0.0373937837, 0.7665250450),  a² = (0.4906526432, 0.6827687123)
#           δ² = (a² - y) ⊙ a²(1 - a²) = (0.1226202910, -0.0687109004)
#           δ¹ = (W²ᵀδ²) ⊙ a¹(1 - a¹)  = (0.0033031288, -0.0294081310)
#           W ← W - η δ aᵀ,  b ← b - η δ
HAND_W1 = [[0.09669687120078124, -0.2016515643996094], [0.3294081310119146, 0.41470406550595734]]
HAND_B1 = [-0.0033031287992187647, 0.1294081310119146]
HAND_W2 = [[0.4386898545112368, -0.6791705641408818], [0.7343554502084915, 0.8443636261606777]]
HAND_B2 = [-0.02262029097752634, -0.03128909958301698]


def test_one_sgd_step_on_a_2_2_2_network_by_hand(backend):
    net = Network.from_arrays(
        [np.array([[0.1, -0.2], [0.3, 0.4]]), np.array([[0.5, -0.6], [0.7, 0.8]])],
        [np.array([0.0, 0.1]), np.array([0.1, -0.1])],
        activation="sigmoid", cost="quadratic", backend=backend, dtype="float64")
    result = portamlp.train(x=np.array([[1.0, 0.5]]), y=np.array([1]), network=net, epochs=1,
                            batch_size=1, learning_rate=1.0, shuffle=False, seed=0)
    assert result.network is net
    w, b = net.host_parameters()
    np.testing.assert_allclose(w[0], HAND_W1, rtol=1e-12)
    np.testing.assert_allclose(b[0], HAND_B1, rtol=1e-12)
    np.testing.assert_allclose(w[1], HAND_W2, rtol=1e-12)
    np.testing.assert_allclose(b[1], HAND_B2, rtol=1e-12)


def test_same_seed_same_initial_network_everywhere(backend):
    ref = Network.initialize((784, 30, 10), seed=42, backend="numpy")
    net = Network.initialize((784, 30, 10), seed=42, backend=backend)
    for a, b in zip(ref.parameters(), net.parameters()):
        np.testing.assert_array_equal(to_numpy(b), a)
    other = Network.initialize((784, 30, 10), seed=43, backend="numpy")
    assert not np.array_equal(other.weights[0], ref.weights[0])


@pytest.mark.parametrize("init, activation, w_std, zero_bias", [
    ("normal", "sigmoid", 1.0, False),
    ("auto", "sigmoid", 1 / np.sqrt(400), False),  # the sigmoid's own: scaled
    ("scaled", "sigmoid", 1 / np.sqrt(400), False),
    ("he", "relu", np.sqrt(2 / 400), True),
    ("auto", "relu", np.sqrt(2 / 400), True),
    ("glorot", "tanh", np.sqrt(2 / 600), True),
    ("auto", "tanh", np.sqrt(2 / 600), True),
])
def test_initialisations_have_the_documented_scale(init, activation, w_std, zero_bias):
    net = Network.initialize((400, 200), init=init, activation=activation, seed=0,
                             dtype="float64", backend="numpy")
    assert np.std(net.weights[0]) == pytest.approx(w_std, rel=0.02)
    assert abs(np.mean(net.weights[0])) < 0.02 * w_std
    assert (not np.any(net.biases[0])) == zero_bias


def test_dtype_and_attributes(backend):
    net = Network.initialize((4, 3, 2), dtype="float64", seed=0, backend=backend)
    assert net.layers == (4, 3, 2) and net.dtype == "float64"
    assert net.activation == "sigmoid" and net.cost == "quadratic"
    assert [tuple(w.shape) for w in net.weights] == [(3, 4), (2, 3)]
    assert [tuple(b.shape) for b in net.biases] == [(3,), (2,)]
    assert net.weights[0].dtype == backend.xp.float64
    assert Network.initialize((4, 2), seed=0, backend=backend).dtype == "float32"


def test_predict_proba_predict_and_evaluate(backend, rng):
    net = Network.initialize((6, 8, 4), activation="relu", cost="cross_entropy", seed=1,
                             backend=backend)
    x = rng.standard_normal((20, 6)).astype(np.float32)
    proba = to_numpy(net.predict_proba(x))
    assert proba.shape == (20, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    labels = to_numpy(net.predict(x))
    np.testing.assert_array_equal(labels, proba.argmax(axis=1))
    assert net.evaluate(x, labels) == 1.0
    wrong = (labels + 1) % 4
    assert net.evaluate(x, wrong) == 0.0
    # device input is accepted as is
    assert net.evaluate(backend.asarray(x), backend.asarray(labels)) == 1.0


def test_predict_on_more_rows_than_one_chunk():
    from portamlp.nn import network as nmod

    net = Network.initialize((3, 2), seed=0, backend="numpy")
    x = np.random.default_rng(0).standard_normal((nmod.CHUNK_ROWS + 5, 3))
    whole = net.predict(x)
    assert whole.shape == (x.shape[0],)
    np.testing.assert_array_equal(whole[-5:], net.predict(x[-5:]))


def test_softmax_is_stable_for_huge_logits():
    net = Network.from_arrays([np.array([[1000.0], [-1000.0], [999.0]])], [np.zeros(3)],
                              cost="cross_entropy", backend="numpy", dtype="float32")
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        p = net.predict_proba(np.array([[1.0]]))
        loss = net.mean_cost(np.array([[1.0]]), np.array([1]))
    assert np.all(np.isfinite(p)) and np.isfinite(loss)
    assert p[0, 0] == pytest.approx(1 / (1 + np.exp(-1.0)), rel=1e-5)


def test_sigmoid_does_not_overflow():
    net = Network.from_arrays([np.array([[1.0], [-1.0]])], [np.zeros(2)], backend="numpy")
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        p = net.predict_proba(np.array([[1e4], [-1e4]], dtype=np.float32))
    np.testing.assert_array_equal(p, [[1.0, 0.0], [0.0, 1.0]])


@pytest.mark.parametrize("layers, match", [
    ((784,), "at least 2"),
    ((), "at least 2"),
    ((784, 0, 10), "positive"),
    ((784, 30, 1), "at least 2 classes"),
])
def test_bad_layers_name_the_value(layers, match):
    with pytest.raises(ValueError, match=match):
        Network.initialize(layers)


def test_bad_names_and_shapes_are_explained():
    with pytest.raises(ValueError, match="'softsign'"):
        Network.initialize((2, 2), activation="softsign")
    with pytest.raises(ValueError, match="'hinge'"):
        Network.initialize((2, 2), cost="hinge")
    with pytest.raises(ValueError, match="'xavier'"):
        Network.initialize((2, 2), init="xavier")
    with pytest.raises(TypeError, match="'30'"):
        Network.initialize((784, "30", 10))
    net = Network.initialize((4, 3), seed=0, backend="numpy")
    with pytest.raises(ValueError, match=r"shape \(n_samples, 4\).*\(2, 5\)"):
        net.predict(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        net.evaluate(np.zeros((2, 4)), np.array([0, 3]))
    with pytest.raises(ValueError, match="2 samples but 3 labels"):
        net.evaluate(np.zeros((2, 4)), np.array([0, 1, 2]))
    # whole-number float labels count as the class indices they name
    x = np.random.default_rng(0).standard_normal((40, 4))
    labels = net.predict(x)
    assert net.evaluate(x, labels.astype(np.float64)) == 1.0
    assert net.evaluate(x, ((labels + 1) % 3).astype(np.float32)) == 0.0
    with pytest.raises(ValueError, match="class indices 0, 1, 2, ...; found 0.5"):
        net.evaluate(np.zeros((2, 4)), np.array([0.5, 1.0]))


def test_from_arrays_checks_shapes():
    w = [np.zeros((3, 4)), np.zeros((2, 3))]
    b = [np.zeros(3), np.zeros(2)]
    assert Network.from_arrays(w, b, backend="numpy").layers == (4, 3, 2)
    with pytest.raises(ValueError, match=r"biases\[1\]"):
        Network.from_arrays(w, [np.zeros(3), np.zeros(3)], backend="numpy")
    with pytest.raises(ValueError, match=r"weights\[1\] has 5 inputs"):
        Network.from_arrays([np.zeros((3, 4)), np.zeros((2, 5))], b, backend="numpy")
    with pytest.raises(ValueError, match="one bias vector per weight"):
        Network.from_arrays(w, b[:1], backend="numpy")


def test_to_and_copy_are_independent(backend):
    net = Network.initialize((3, 2), seed=0, backend="numpy")
    moved = net.to(backend)
    assert moved.backend.name == backend.name
    copy = net.copy()
    copy.weights[0][0, 0] = 99.0
    assert net.weights[0][0, 0] != 99.0


# ---------------------------------------------------------- defects found in review (issue 10)
def test_dtype_objects_give_the_same_weights_as_names(backend):
    by_name = Network.initialize((20, 7, 3), seed=3, dtype="float64", backend=backend)
    by_object = Network.initialize((20, 7, 3), seed=3, dtype=np.float64, backend=backend)
    by_native = Network.initialize((20, 7, 3), seed=3, dtype=backend.xp.float64, backend=backend)
    for a, b, c in zip(by_name.parameters(), by_object.parameters(), by_native.parameters()):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
        np.testing.assert_array_equal(to_numpy(a), to_numpy(c))
    assert by_object.dtype == "float64"
    # float32 is the float64 draw rounded, not a different draw
    f32 = Network.initialize((20, 7, 3), seed=3, dtype=np.float32, backend="numpy")
    np.testing.assert_array_equal(f32.weights[0], to_numpy(by_name.weights[0]).astype(np.float32))


def test_host_parameters_replaces_get_params():
    net = Network.initialize((4, 3), seed=0, backend="numpy")
    w, b = net.host_parameters()
    np.testing.assert_array_equal(w[0], net.weights[0])
    with pytest.warns(DeprecationWarning, match="host_parameters"):
        w2, _ = net.get_params()
    np.testing.assert_array_equal(w2[0], w[0])


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
def test_predict_proba_rows_sum_to_one_under_the_quadratic_cost(activation, rng, dtype):
    net = Network.initialize((6, 5, 4), activation=activation, cost="quadratic", seed=2,
                             backend="numpy", dtype=dtype)
    x = rng.standard_normal((30, 6))
    proba = to_numpy(net.predict_proba(x))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert (proba >= 0).all()
    np.testing.assert_array_equal(proba.argmax(axis=1), to_numpy(net.predict(x)))


def test_input_helpers_are_private():
    assert not any(hasattr(Network, name) for name in ("as_input", "as_labels", "one_hot"))


def test_to_keeps_the_values(backend, dtype):
    net = Network.initialize((5, 4, 3), seed=9, dtype=dtype, backend="numpy",
                             activation="tanh", cost="cross_entropy")
    moved = net.to(backend)
    assert (moved.activation, moved.cost, moved.dtype) == ("tanh", "cross_entropy", dtype)
    for a, b in zip(net.parameters(), moved.parameters()):
        assert backend.same_device(b)
        np.testing.assert_array_equal(to_numpy(b), a)
    back = moved.to("numpy")
    for a, b in zip(net.parameters(), back.parameters()):
        np.testing.assert_array_equal(b, a)


def test_earlier_names_are_aliases():
    """Before portamlp said "cost" everywhere: ``loss``, ``loss_scale`` and the records'
    ``train_loss``/``validation_loss`` still read the same values."""
    net = Network.initialize((4, 3), seed=0, cost="cross_entropy")
    x, y = np.eye(4, dtype=np.float32)[:3], np.array([0, 1, 2])
    assert net.loss(x, y) == net.mean_cost(x, y) and net.loss_scale == net.cost_scale == -1.0
    from portamlp import EpochRecord

    old = EpochRecord.from_dict({"epoch": 1, "seconds": 0.5, "train_loss": 0.25,
                                 "validation_loss": 0.5})
    assert (old.train_cost, old.validation_cost, old.train_loss) == (0.25, 0.5, 0.25)
    with pytest.raises(TypeError, match="bogus"):
        EpochRecord.from_dict({"epoch": 1, "seconds": 0.5, "train_cost": 0.1, "bogus": 1})
