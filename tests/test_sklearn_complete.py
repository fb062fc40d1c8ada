"""What makes portamlp's estimators complete scikit-learn citizens: the regressor, L-BFGS (in
the estimators and in ``train``), multilabel ``y``, sparse ``X``, a one-class ``y`` and
scikit-learn's initial weights. scikit-learn's own tests of these run in
test_sklearn_suite.py; these check portamlp's side of them."""

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn is not installed: pip install "
                                      "\"portamlp[sklearn]\" to test portamlp.sklearn")

import scipy.sparse as sp  # noqa: E402
from sklearn.datasets import load_diabetes, load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkRegressor  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import portamlp  # noqa: E402
from portamlp.backends import to_numpy  # noqa: E402
from portamlp.nn.inputs import SparseRows  # noqa: E402
from portamlp.sklearn import MLPClassifier, MLPRegressor  # noqa: E402
from portamlp.training.lbfgs import flatten  # noqa: E402

QUIET = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return x / 16.0, y


@pytest.fixture(scope="module")
def diabetes():
    x, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(x), (y - y.mean()) / y.std()


# ---------------------------------------------------------------- scikit-learn's start
@QUIET
@pytest.mark.parametrize("activation", ["relu", "logistic"])
def test_glorot_draws_scikit_learns_initial_weights(digits, activation):
    """The same random_state gives scikit-learn's initial weights (a step of ~0 keeps them)."""
    x, y = digits
    params = dict(hidden_layer_sizes=(20, 7), activation=activation, solver="sgd",
                  learning_rate_init=1e-15, momentum=0.0, max_iter=1, random_state=5)
    ours, theirs = MLPClassifier(**params).fit(x, y), SkClassifier(**params).fit(x, y)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, atol=1e-12)


# ------------------------------------------------------------------------- L-BFGS
@QUIET
def test_lbfgs_follows_scipys_path_on_digits(digits):
    """From scikit-learn's initial weights, portamlp's L-BFGS reaches scikit-learn's (SciPy's)
    loss and accuracy in a similar number of iterations."""
    x, y = digits
    for seed in (0, 1):
        ours = MLPClassifier(solver="lbfgs", random_state=seed).fit(x[:1000], y[:1000])
        theirs = SkClassifier(solver="lbfgs", random_state=seed).fit(x[:1000], y[:1000])
        assert abs(ours.n_iter_ - theirs.n_iter_) <= 0.5 * theirs.n_iter_ + 5
        assert ours.loss_ < 2 * theirs.loss_ + 1e-3
        assert ours.score(x[1000:], y[1000:]) > theirs.score(x[1000:], y[1000:]) - 0.03
        assert not hasattr(ours, "loss_curve_") and not hasattr(ours, "partial_fit")


def test_lbfgs_loss_and_stop_reasons(digits):
    x, y = digits
    with pytest.warns(ConvergenceWarning, match=r"lbfgs failed to converge after 5 iteration"):
        est = MLPClassifier(solver="lbfgs", max_iter=5, random_state=0).fit(x, y)
    assert est.n_iter_ == 5
    # loss_ is the objective: the mean log-loss plus scikit-learn's ½·alpha·‖W‖²/n
    proba = est.predict_proba(x)
    data = -np.mean(np.log(proba[np.arange(len(y)), y]))
    l2 = 0.5 * est.alpha * sum((w ** 2).sum() for w in est.coefs_) / len(y)
    assert est.loss_ == pytest.approx(data + l2, rel=1e-6)
    with pytest.warns(ConvergenceWarning, match=r"EVALUATIONS EXCEEDS LIMIT.*max_fun \(now 7\)"):
        est = MLPClassifier(solver="lbfgs", max_fun=7, random_state=0).fit(x, y)
    assert est.n_iter_ <= 7
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # converged: no warning
        MLPClassifier(solver="lbfgs", tol=1e-1, random_state=0).fit(x[:300], y[:300])


def test_train_with_lbfgs_on_every_backend(backend, diabetes):
    """train(optimizer="lbfgs"): one epoch per iteration over the whole training set, the
    same result whatever batch_size (it only bounds the rows computed at once)."""
    x, y = diabetes
    runs = [portamlp.train(x=backend.asarray(x, "float64"), y=backend.asarray(y, "float64"),
                           cost="squared_error", activation="tanh", layers=(10, 8, 1),
                           optimizer="lbfgs", epochs=40, batch_size=batch, seed=3,
                           dtype="float64", backend=backend) for batch in (442, 50)]
    first, second = runs
    assert first.history[-1].train_cost < 0.5 * first.history[0].train_cost
    costs = [r.train_cost for r in first.history]
    assert all(b <= a + 1e-12 for a, b in zip(costs, costs[1:]))  # a descent method
    np.testing.assert_allclose(costs, [r.train_cost for r in second.history], rtol=1e-8)
    scalars = first.optimizer_state["scalars"]
    assert scalars["t"] == len(first.history) and scalars["evaluations"] >= scalars["t"]
    assert first.network.parameters()[0].dtype == backend.xp.float64


def test_train_lbfgs_stops_when_converged_and_refuses_noise(diabetes):
    x, y = diabetes
    result = portamlp.train(x=x, y=y, cost="squared_error", activation="identity",
                            layers=(10, 1), optimizer="lbfgs", epochs=500, gtol=1e-6, seed=0,
                            dtype="float64")
    assert result.stopped_early and len(result.history) < 50
    assert result.optimizer_state["scalars"]["reason"] in ("gradient", "ftol")
    w, b = result.network.host_parameters()
    ls = np.linalg.lstsq(np.c_[x, np.ones(len(x))], y, rcond=None)[0]  # least squares
    np.testing.assert_allclose(np.r_[w[0].ravel(), b[0]], ls, atol=1e-4)
    for noisy in (dict(dropout=0.2), dict(input_dropout=0.1), dict(max_norm=3.0)):
        with pytest.raises(ValueError, match="minimises one fixed cost.*optimizer='sgd'"):
            portamlp.train(x=x, y=y, cost="squared_error", optimizer="lbfgs", epochs=1,
                           **noisy)
        with pytest.raises(ValueError, match="minimises one fixed cost"):  # not ignored
            MLPRegressor(solver="lbfgs", **noisy).fit(x, y)
    with pytest.warns(portamlp.PortamlpWarning, match="learning_rate, shuffle have no effect "
                                                      "with optimizer='lbfgs'"):
        portamlp.train(x=x, y=y, cost="squared_error", optimizer="lbfgs", epochs=1,
                       learning_rate=0.1, shuffle=False)


def test_flattened_gradient_of_the_lbfgs_objective_is_right(diabetes):
    """The objective L-BFGS sees (mean cost + ½·λ·ΣW²) and its gradient agree, by finite
    differences."""
    x, y = diabetes
    net = portamlp.Network.initialize((10, 4, 1), activation="tanh", cost="squared_error",
                                      dtype="float64", seed=0)
    opt = portamlp.training.optimizers.make_optimizer(
        "lbfgs", net.parameters(), net.backend, learning_rate=1.0, weight_decay=0.3)
    xs, ts = net.backend.asarray(x), net.backend.asarray(y.reshape(-1, 1))
    seen = []

    def evaluate():
        cost, grads = net.backprop(xs, ts)
        seen.append(float(cost) * net.cost_scale / len(x) + 0.15 * sum(
            float((p ** 2).sum()) for p in net.parameters()[0::2]))
        return cost * net.cost_scale, grads

    opt.iterate(evaluate, 1.0 / len(x))
    assert opt.minimizer.f == pytest.approx(min(seen))
    assert opt.scalars()["evaluations"] == len(seen)
    assert flatten(net.xp, net.parameters()).shape == (10 * 4 + 4 + 4 + 1,)


# ------------------------------------------------------------------------ regression
@QUIET
def test_regressor_matches_scikit_learn(diabetes):
    x, y = diabetes
    for solver in ("adam", "lbfgs"):
        params = dict(hidden_layer_sizes=(30,), solver=solver, max_iter=300, random_state=0,
                      learning_rate_init=0.01)
        ours, theirs = MLPRegressor(**params).fit(x, y), SkRegressor(**params).fit(x, y)
        assert ours.score(x, y) > theirs.score(x, y) - 0.05
        assert ours.out_activation_ == theirs.out_activation_ == "identity"
        assert ours.predict(x).shape == (len(y),)
        assert ours.n_outputs_ == theirs.n_outputs_ == 1


@QUIET
def test_regressor_several_outputs_and_its_loss(diabetes):
    x, y = diabetes
    targets = np.c_[y, -2 * y + 1]
    est = MLPRegressor(hidden_layer_sizes=(20,), max_iter=40, learning_rate_init=0.01,
                       alpha=0.0, random_state=0).fit(x, targets)
    predicted = est.predict(x)
    assert predicted.shape == (len(y), 2) and est.n_outputs_ == 2
    # scikit-learn's loss: the squared error averaged over samples and outputs, halved
    mse = np.mean((predicted - targets) ** 2)
    assert est.loss_curve_[-1] == pytest.approx(mse / 2, rel=0.1)
    with pytest.raises(ValueError, match=r"n_outputs >= 1, got \(442, 0\)"):
        MLPRegressor().fit(x, targets[:, :0])
    with pytest.raises(ValueError, match="y has 1 outputs, but the fitted regressor has 2"):
        est.set_params(warm_start=True).fit(x, y)


@QUIET
def test_regressor_early_stopping_watches_r2(diabetes):
    x, y = diabetes
    est = MLPRegressor(hidden_layer_sizes=(20,), early_stopping=True, max_iter=60,
                       learning_rate_init=0.01, random_state=0).fit(x, y)
    assert est.best_validation_score_ == max(est.validation_scores_)
    assert -1.0 < est.best_validation_score_ <= 1.0
    assert est.best_loss_ is None


@QUIET
def test_poisson_loss_fits_counts():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (400, 2))
    y = rng.poisson(np.exp(1 + x[:, 0] - x[:, 1]))
    est = MLPRegressor(loss="poisson", hidden_layer_sizes=(8,), solver="lbfgs",
                       random_state=0).fit(x, y)
    assert est.out_activation_ == "exp" and (est.predict(x) > 0).all()
    assert np.corrcoef(est.predict(x), np.exp(1 + x[:, 0] - x[:, 1]))[0, 1] > 0.95
    with pytest.raises(ValueError, match="poisson.*y >= 0"):
        MLPRegressor(loss="poisson").fit(x, y - 5)
    with pytest.raises(ValueError, match=r"y holds -5, but cost='poisson' needs targets >= 0"):
        portamlp.train(x=x, y=y - 5, cost="poisson", epochs=1)
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        MLPRegressor(loss="hinge").fit(x, y)


@QUIET
@pytest.mark.parametrize("suffix", [".safetensors", ".json"])
def test_regressor_saves_and_loads(diabetes, tmp_path, suffix):
    x, y = diabetes
    est = MLPRegressor(hidden_layer_sizes=(6,), max_iter=5, random_state=0).fit(x, y)
    path = tmp_path / f"reg{suffix}"
    est.save(path)
    back = MLPRegressor.load(path)
    np.testing.assert_allclose(back.predict(x), est.predict(x), rtol=1e-12)
    assert portamlp.load(path).targets == "values"
    with pytest.raises(portamlp.ModelFormatError, match="a saved MLPRegressor.*MLPRegressor.load"):
        MLPClassifier.load(path)


def test_diverging_weights_are_scikit_learns_value_error():
    x = np.finfo(np.float64).max * np.random.default_rng(0).uniform(size=(10, 2))
    with warnings.catch_warnings(), pytest.raises(ValueError, match="non-finite parameter"):
        warnings.simplefilter("ignore")
        MLPRegressor().fit(x, np.arange(10.0))


# ------------------------------------------------------------------------ multilabel
@QUIET
def test_multilabel_classifier(digits):
    x, y = digits
    labels = np.c_[y % 2, y > 4, y == 3].astype(int)
    est = MLPClassifier(hidden_layer_sizes=(40,), max_iter=60, random_state=0).fit(x, labels)
    assert list(est.classes_) == [0, 1, 2] and est.out_activation_ == "logistic"
    proba = est.predict_proba(x)
    assert proba.shape == (len(y), 3) and not np.allclose(proba.sum(axis=1), 1)
    predicted = est.predict(x)
    np.testing.assert_array_equal(predicted, (proba > 0.5).astype(int))
    theirs = SkClassifier(hidden_layer_sizes=(40,), max_iter=60, random_state=0)
    assert est.score(x, labels) > theirs.fit(x, labels).score(x, labels) - 0.03  # subset acc.
    assert est.network_.cost == "binary_cross_entropy"
    with pytest.raises(ValueError, match="y is multiclass, but the classifier was fitted on "
                                         "multilabel-indicator y"):
        est.set_params(warm_start=True).fit(x, labels)  # same columns: fine
        est.fit(x, y % 3)


# ------------------------------------------------------------------------ sparse X
@QUIET
def test_sparse_x_trains_like_dense_a_batch_at_a_time(digits, monkeypatch):
    x, y = digits
    dense_rows = []
    real = SparseRows._dense

    def counted(self, block):
        dense_rows.append(block.shape[0])
        return real(self, block)

    monkeypatch.setattr(SparseRows, "_dense", counted)
    params = dict(hidden_layer_sizes=(16,), max_iter=3, random_state=0, batch_size=64)
    for container in (sp.csr_matrix, sp.csc_matrix, sp.csr_array):
        dense_rows.clear()
        ours = MLPClassifier(**params).fit(container(x), y)
        assert max(dense_rows) == 64  # never the whole matrix
        reference = MLPClassifier(**params).fit(x, y)
        np.testing.assert_allclose(ours.predict_proba(container(x)),
                                   reference.predict_proba(x), rtol=1e-9)
    reg = MLPRegressor(solver="lbfgs", max_iter=5, random_state=0).fit(sp.csr_matrix(x),
                                                                       y.astype(float))
    assert reg.predict(sp.csr_matrix(x[:3])).shape == (3,)


def test_sparse_rows_on_another_backend_and_checks(backend):
    matrix = sp.random(50, 6, density=0.3, format="csr", random_state=0)
    rows = portamlp.nn.inputs.as_features(matrix, backend, "float32", 6)
    assert isinstance(rows, SparseRows) and rows.shape == (50, 6)
    block = rows[10:20]
    assert backend.same_device(block) and block.dtype == backend.xp.float32
    np.testing.assert_allclose(to_numpy(block), matrix[10:20].toarray(), rtol=1e-6)
    bad = matrix.copy()
    bad.data[bad.indptr[23] + 1] = np.nan  # in row 23
    with pytest.raises(ValueError, match=r"NaN or infinite values in 1 of its 50 rows \(the "
                                         r"first is row 23\)"):
        portamlp.nn.inputs.as_features(bad, backend, "float32", 6)
        portamlp.nn.inputs.as_features(bad.tocsc(), backend, "float32", 6)
    with pytest.raises(ValueError, match=r"must have shape \(n_samples, 7\)"):
        portamlp.nn.inputs.as_features(matrix, backend, "float32", 7)


# ------------------------------------------------------------------------ one class
def test_one_class_is_a_constant_model(digits):
    x, _ = digits
    y = np.array(["seven"] * 40)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning about the one class (as scikit-learn)
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = MLPClassifier(max_iter=3, solver="lbfgs").fit(x[:40], y)
    assert list(est.predict(x[:5])) == ["seven"] * 5
    np.testing.assert_array_equal(est.predict_proba(x[:5]), np.ones((5, 1)))
    assert est.score(x[:40], y) == 1.0


def test_lbfgs_runs_get_advice_without_a_learning_rate():
    """L-BFGS has no learning rate to change: advice asks for more iterations; the default
    batch_size is a large chunk (it only bounds the rows computed at once)."""
    from portamlp.training.advice import collapse_advice, dead_class_options
    from portamlp.training.config import TrainConfig

    cfg = TrainConfig(optimizer="lbfgs", cost="cross_entropy", epochs=3, init="scaled")
    text, options = collapse_advice(cfg, (784, 30, 10), [2.0, 1.9])
    assert options == {"epochs": 12} and "full-batch" in text
    assert dead_class_options(cfg, (784, 30, 10)) == {"epochs": 12}
    assert "learning_rate" in dead_class_options(TrainConfig(cost="cross_entropy",
                                                             init="scaled"), (784, 30, 10))
    x = np.random.default_rng(0).standard_normal((30, 3))
    result = portamlp.train(x=x, y=x[:, :1], cost="squared_error", optimizer="lbfgs",
                            epochs=2, seed=0)
    assert result.config.batch_size == portamlp.training.resolve.FULL_BATCH_CHUNK


def test_the_command_says_why_lbfgs_stopped(tmp_path):
    import subprocess
    import sys

    run = [sys.executable, "-m", "portamlp", "train", "--optimizer", "lbfgs", "--epochs", "2",
           "--train-length", "1000", "--validation-length", "200", "--test-length", "200",
           "--layers", "784,10", "--cost", "cross_entropy", "--save", "net.json"]
    done = subprocess.run(run, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "lbfgs: stopped: --epochs iterations ran out before it converged" in done.stdout
    plain = subprocess.run(run[:5] + ["sgd"] + run[6:] + ["--force"], capture_output=True,
                           text=True, cwd=tmp_path)
    assert plain.returncode == 0 and "stopped:" not in plain.stdout
