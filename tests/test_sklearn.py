"""portamlp.sklearn.MLPClassifier: scikit-learn's own estimator checks, the mapping of its
parameters onto portamlp's training, its tools (pipelines, searches, cloning, pickling), model
files, array API dispatch and bad input."""

import os

# scikit-learn's array API dispatch (and its estimator checks of it) needs SciPy's array API
# support, switched on by this variable before SciPy is used.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import json  # noqa: E402
import pickle  # noqa: E402
import runpy  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("sklearn", reason="scikit-learn is not installed: pip install "
                                      "\"portamlp[sklearn]\" to test portamlp.sklearn")

import sklearn  # noqa: E402
from cli_helpers import run_bench  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits, make_classification  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import (  # noqa: E402
    GridSearchCV,
    cross_val_score,
    train_test_split,
)
from sklearn.neural_network import MLPClassifier as SklearnMLP  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import portamlp  # noqa: E402
import portamlp.sklearn  # noqa: E402
from portamlp.checks import InvalidParameterError  # noqa: E402
from portamlp.nn.activations import ACTIVATIONS, Activation  # noqa: E402
from portamlp.sklearn import MLPClassifier, MLPRegressor  # noqa: E402
from portamlp.training.optimizers import OPTIMIZERS, SGD  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
QUIET = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# ------------------------------------------------------------- scikit-learn's own checks
#: Checks that cannot apply, with the reason. Empty: every check scikit-learn yields for these
#: estimators passes, the sparse-input and multilabel/multi-output checks included (their tags
#: say they take sparse X, multilabel y and several outputs). The array API checks for devices
#: this machine lacks (CUDA, MPS, XPU, CuPy, dpnp) are skipped by scikit-learn with that reason.
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@QUIET
@parametrize_with_checks([MLPClassifier(max_iter=50, random_state=0),
                          MLPRegressor(max_iter=50, random_state=0),
                          MLPClassifier(solver="lbfgs", max_iter=50, random_state=0),
                          MLPRegressor(solver="lbfgs", max_iter=50, random_state=0)],
                         expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_tags_declare_what_the_estimators_take():
    tags = MLPClassifier().__sklearn_tags__()
    assert tags.input_tags.sparse is True and tags.input_tags.allow_nan is False
    assert tags.array_api_support is True
    assert tags.classifier_tags.multi_label is True
    assert MLPRegressor().__sklearn_tags__().target_tags.multi_output is True


# ------------------------------------------------------------------------------- data
@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float64)
    return x[:1200], y[:1200], x[1200:], y[1200:]


@pytest.fixture(scope="module")
def blobs():
    x, y = make_classification(n_samples=240, n_features=8, n_informative=5, n_classes=3,
                               random_state=0)
    return x, y


# ------------------------------------------------------------------ parameters and labels
@pytest.mark.parametrize("kind", ["MLPClassifier", "MLPRegressor"])
def test_defaults_are_scikit_learns(kind):
    import sklearn.neural_network

    ours = getattr(portamlp.sklearn, kind)().get_params()
    theirs = getattr(sklearn.neural_network, kind)().get_params()
    for name, value in theirs.items():
        assert name in ours, f"scikit-learn's parameter {name} is missing"
        assert ours[name] == value, name
    extras = set(ours) - set(theirs)
    assert extras == {"init", "dtype", "backend", "device", "dropout", "input_dropout",
                      "max_norm", "distortions"} | ({"cost"} if kind == "MLPClassifier" else set())


@QUIET
def test_any_labels_and_the_fitted_attributes(blobs):
    x, y = blobs
    names = np.array(["cat", "dog", "emu"])[y]
    est = MLPClassifier(hidden_layer_sizes=(16,), max_iter=30, learning_rate_init=0.03,
                        random_state=0).fit(x, names)
    assert list(est.classes_) == ["cat", "dog", "emu"]
    assert set(est.predict(x)) <= set(est.classes_)
    assert est.score(x, names) > 0.8
    proba = est.predict_proba(x)
    assert proba.shape == (240, 3) and np.allclose(proba.sum(axis=1), 1.0)
    assert np.array_equal(est.classes_[proba.argmax(axis=1)], est.predict(x))
    assert est.n_features_in_ == 8 and est.n_iter_ == 30 and len(est.loss_curve_) == 30
    assert est.validation_scores_ is None and est.best_validation_score_ is None
    assert est.best_loss_ == min(est.loss_curve_)
    assert [c.shape for c in est.coefs_] == [(8, 16), (16, 3)]
    assert [b.shape for b in est.intercepts_] == [(16,), (3,)]
    assert isinstance(est.network_, portamlp.Network) and est.network_.layers == (8, 16, 3)
    assert est.out_activation_ == "softmax" and est.n_layers_ == 3 and est.t_ == 30 * 240
    # coefs_ is scikit-learn's layout of the network's weights, and a copy
    assert np.allclose(est.coefs_[0], portamlp.backends.to_numpy(est.network_.weights[0]).T)
    est.coefs_[0][...] = 0
    assert np.abs(est.coefs_[0]).sum() > 0

    sparse_labels = np.array([-5, 7, 100])[y]
    est.fit(x, sparse_labels)
    assert list(est.classes_) == [-5, 7, 100] and est.predict(x).dtype == sparse_labels.dtype


@QUIET
def test_dataframes_keep_feature_names(blobs):
    pd = pytest.importorskip("pandas")
    x, y = blobs
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(8)])
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(frame, y)
    assert list(est.feature_names_in_) == list(frame.columns)
    with pytest.warns(UserWarning, match="feature names"):
        est.predict(x)


@QUIET
def test_activation_and_solver_mapping_and_refusals(blobs):
    x, y = blobs
    for ours, theirs in (("logistic", "sigmoid"), ("tanh", "tanh"), ("relu", "relu")):
        est = MLPClassifier(hidden_layer_sizes=(4,), activation=ours, max_iter=1).fit(x, y)
        assert est.network_.activation == theirs
    linear = MLPClassifier(activation="identity", max_iter=5, random_state=0).fit(x, y)
    assert linear.network_.activation == "identity"
    # np.inf turns the no-improvement stop off, as in scikit-learn: every epoch runs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        endless = MLPClassifier(n_iter_no_change=np.inf, tol=1e9, max_iter=4,
                                random_state=0).fit(x, y)
    assert endless.n_iter_ == 4
    with pytest.raises(ValueError, match=r"beta_1=1.0 must be >= 0.0 and < 1.0"):
        MLPClassifier(beta_1=1.0).fit(x, y)
    with pytest.raises(ValueError, match=r"alpha=-1.0 must be >= 0.0"):
        MLPClassifier(alpha=-1).fit(x, y)
    with pytest.raises(ValueError, match="batch_size must be 'auto' or an int"):
        MLPClassifier(batch_size="big").fit(x, y)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(x, y, classes=[0, 1, 2])


#: An invalid value of each kind, and what the message says: the parameter, the value given
#: and what would be valid (portamlp.checks' wording).
INVALID_PARAMETERS = [
    ("solver", "newton", r"unknown solver 'newton'; choose one of \['sgd', 'adam'"),
    ("activation", "sigmoid", r"unknown activation 'sigmoid' \(portamlp's name.*'logistic'\)"),
    ("activation", "softmax", r"unknown activation 'softmax'; choose one of \['logistic'"),
    ("learning_rate", "optimal", r"unknown learning_rate 'optimal'.*'invscaling'"),
    ("cost", "hinge", r"unknown cost 'hinge'; choose one of \['quadratic', 'cross_entropy'\]"),
    ("init", "xavier", r"unknown init 'xavier'.*'glorot'"),
    ("dtype", "float16", r"unknown dtype 'float16'.*\['float32', 'float64'\]"),
    ("hidden_layer_sizes", (10, 0), r"hidden_layer_sizes must hold positive ints, got \(10, 0\)"),
    ("hidden_layer_sizes", 2.5, r"hidden_layer_sizes must be an int or a sequence of ints"),
    ("alpha", "big", r"alpha must be a number, got 'big'"),
    ("learning_rate_init", 0, r"learning_rate_init=0.0 must be > 0.0"),
    ("power_t", -1, r"power_t=-1.0 must be >= 0.0"),
    ("max_iter", 0, r"max_iter=0 must be >= 1"),
    ("max_iter", 2.0, r"max_iter must be an integer, got 2.0 \(write 2\)"),
    ("n_iter_no_change", 1.5, r"n_iter_no_change must be an integer, got 1.5"),
    ("max_fun", 0, r"max_fun=0 must be >= 1"),
    ("tol", float("inf"), r"tol=inf must be a finite number"),
    ("momentum", 1.0, r"momentum=1.0 must be >= 0.0 and < 1.0"),
    ("validation_fraction", 1.0, r"validation_fraction=1.0 must be > 0.0 and < 1.0"),
    ("validation_fraction", 0.0, r"validation_fraction=0.0 must be > 0.0 and < 1.0"),
    ("batch_size", 0, r"batch_size=0 must be >= 1"),
    ("batch_size", 1.5, r"batch_size must be 'auto' or an int >= 1, got 1.5"),
    ("shuffle", "yes", r"shuffle must be True or False, got 'yes'"),
    ("early_stopping", 1, r"early_stopping must be True or False, got 1"),
    ("beta_2", -0.1, r"beta_2=-0.1 must be >= 0.0 and < 1.0"),
    ("epsilon", 0.0, r"epsilon=0.0 must be > 0.0"),
    ("dropout", 1.0, r"dropout=1.0 must be >= 0.0 and < 1.0"),
    ("input_dropout", "x", r"input_dropout must be a number, got 'x'"),
    ("max_norm", 0, r"max_norm=0.0 must be > 0.0"),
    ("random_state", "x", r"random_state must be None, an int or a numpy.random.RandomState"),
]


@pytest.mark.parametrize(("name", "value", "message"), INVALID_PARAMETERS,
                         ids=[f"{n}={v!r}" for n, v, _ in INVALID_PARAMETERS])
def test_invalid_parameters_raise_one_error_that_is_both_value_and_type_error(
        blobs, name, value, message):
    """As scikit-learn's InvalidParameterError: a wrong type is a ValueError too, a wrong value
    a TypeError too; nothing is checked before fit."""
    x, y = blobs
    est = MLPClassifier(**{"max_iter": 1, name: value})
    with pytest.raises(InvalidParameterError, match=message) as info:
        est.fit(x, y)
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)


@QUIET
def test_adam_constants_reach_the_optimizer(blobs, monkeypatch):
    from portamlp.sklearn import _base

    seen = []
    real = _base.train
    monkeypatch.setattr(_base, "train", lambda **kw: seen.append(kw) or real(**kw))
    x, y = blobs
    MLPClassifier(hidden_layer_sizes=(4,), beta_1=0.5, beta_2=0.9, epsilon=1e-6,
                  max_iter=1).fit(x, y)
    MLPClassifier(hidden_layer_sizes=(4,), solver="sgd", momentum=0.5, max_iter=1).fit(x, y)
    assert (seen[0]["beta1"], seen[0]["beta2"], seen[0]["epsilon"]) == (0.5, 0.9, 1e-6)
    assert "momentum" not in seen[0] and "beta1" not in seen[1]
    assert (seen[1]["momentum"], seen[1]["nesterov"]) == (0.5, True)
    # different constants train differently: the values are used, not only passed
    a = MLPClassifier(hidden_layer_sizes=(4,), beta_1=0.5, max_iter=3, random_state=0).fit(x, y)
    b = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(x, y)
    assert not np.allclose(a.coefs_[0], b.coefs_[0])


@QUIET
def test_linear_model_with_no_hidden_layer(blobs):
    x, y = blobs
    est = MLPClassifier(hidden_layer_sizes=(), max_iter=20, learning_rate_init=0.03,
                        random_state=0).fit(x, y)
    assert est.network_.layers == (8, 3) and est.score(x, y) > 0.6


# ------------------------------------------------------- names from portamlp's registries
def _softplus() -> Activation:
    return Activation("softplus", lambda xp, z: xp.log(1.0 + xp.exp(z)),
                      lambda xp, z, a: 1.0 - xp.exp(-a))


class _PlainSGD(SGD):
    """Test-only: SGD without momentum, declaring no hyper-parameters."""

    name = "plain_sgd_test"
    help = "plain SGD (a test-only entry)"
    hyper_parameters = ()
    momentum = 0.0
    nesterov = False

    @classmethod
    def check(cls, values):
        pass

    def update(self, grads, scale):
        lr, wd = self.learning_rate, self.weight_decay
        for i, g in enumerate(grads):
            p = self.params[i]
            delta = (lr * scale) * g
            if wd and p.ndim == 2:
                delta = delta + (lr * wd) * p
            self.params[i] = self.write.subtract(p, delta)


def _same_estimator(back, est, x):
    assert back.get_params() == est.get_params()
    assert back.out_activation_ == est.out_activation_
    assert back.network_.activation == est.network_.activation
    np.testing.assert_allclose(back.predict_proba(x), est.predict_proba(x), rtol=1e-6)


@QUIET
def test_a_registered_activation_works_in_the_estimator(blobs, tmp_path):
    x, y = blobs
    with ACTIVATIONS.added(_softplus()):
        with pytest.raises(ValueError, match=r"unknown activation 'softply'.*'softplus'"):
            MLPClassifier(activation="softply").fit(x, y)
        for cost, reported in (("cross_entropy", "softmax"), ("quadratic", "softplus")):
            est = MLPClassifier(hidden_layer_sizes=(8,), activation="softplus", cost=cost,
                                max_iter=20, learning_rate_init=0.03, random_state=0).fit(x, y)
            assert est.network_.activation == "softplus" and est.out_activation_ == reported
            assert est.get_params()["activation"] == "softplus"
            assert est.score(x, y) > 0.6
            est.save(tmp_path / f"{cost}.safetensors")
            _same_estimator(MLPClassifier.load(tmp_path / f"{cost}.safetensors"), est, x)
            back = pickle.loads(pickle.dumps(est))
            _same_estimator(back, est, x)
            back.partial_fit(x, y)
    # out of the registry again: refused, with the names there are
    with pytest.raises(ValueError, match=r"unknown activation 'softplus'; choose one of "
                                         r"\['logistic', 'relu', 'leaky_relu', 'tanh', "
                                         r"'identity'\]"):
        MLPClassifier(activation="softplus").fit(x, y)


@QUIET
def test_a_registered_optimizer_works_as_a_solver(blobs, tmp_path, monkeypatch):
    from portamlp.sklearn import _base

    seen = []
    real = _base.train
    monkeypatch.setattr(_base, "train", lambda **kw: seen.append(kw) or real(**kw))
    x, y = blobs
    params = dict(hidden_layer_sizes=(8,), max_iter=5, learning_rate_init=0.1,
                    random_state=0)
    with OPTIMIZERS.added(_PlainSGD):
        est = MLPClassifier(solver="plain_sgd_test", **params).fit(x, y)
        # scikit-learn's momentum, nesterovs_momentum, beta_1, ... are not passed to it
        assert seen[-1]["optimizer"] == "plain_sgd_test"
        assert not {"momentum", "nesterov", "beta1", "beta2", "epsilon"} & set(seen[-1])
        assert est._optimizer_state["optimizer"] == "plain_sgd_test"
        # plain SGD is portamlp's "sgd" without momentum: the same run
        sgd = MLPClassifier(solver="sgd", momentum=0.0, **params).fit(x, y)
        np.testing.assert_allclose(est.coefs_[0], sgd.coefs_[0], rtol=1e-12)
        assert est.loss_curve_ == pytest.approx(sgd.loss_curve_, rel=1e-12)
        est.save(tmp_path / "model.json")
        back = MLPClassifier.load(tmp_path / "model.json")
        _same_estimator(back, est, x)
        back.partial_fit(x, y)
        back = pickle.loads(pickle.dumps(est))
        _same_estimator(back, est, x)
        back.partial_fit(x, y)  # continues the pickled optimizer state
        assert back._optimizer_state["scalars"]["t"] == est._optimizer_state["scalars"]["t"] + 2
    with pytest.raises(ValueError, match=r"unknown solver 'plain_sgd_test'"):
        MLPClassifier(solver="plain_sgd_test").fit(x, y)


@QUIET
def test_pickles_from_before_the_split_still_load(blobs):
    """The per-epoch schedule moved from _classifier to _epochs; a pickle naming the old place
    still loads."""
    x, y = blobs
    est = MLPClassifier(hidden_layer_sizes=(4,), solver="sgd", learning_rate="invscaling",
                        max_iter=3, random_state=0).fit(x, y)
    data = pickle.dumps(est, protocol=0)
    new, old = b"portamlp.sklearn._epochs\nSchedule\n", b"portamlp.sklearn._classifier\n_Schedule\n"
    assert new in data
    back = pickle.loads(data.replace(new, old))
    assert back._schedule.learning_rate == est._schedule.learning_rate
    np.testing.assert_array_equal(back.predict_proba(x), est.predict_proba(x))
    back.partial_fit(x, y)


# ---------------------------------------------------------- the mapping onto portamlp
def _one_step(est, x, y, w0, b0, sample_weight=None):
    """Set both estimators' weights to (w0, b0) (scikit-learn's layout), take one full-batch
    step, return the new weights."""
    for i, (w, b) in enumerate(zip(w0, b0)):
        if isinstance(est, SklearnMLP):
            est.coefs_[i][...] = w
            est.intercepts_[i][...] = b
        else:
            est.network_.weights[i][...] = w.T
            est.network_.biases[i][...] = b
    est.partial_fit(x, y, sample_weight=sample_weight)
    return est.coefs_, est.intercepts_


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
def test_alpha_and_sample_weight_step_matches_scikit_learn(blobs, weighted):
    """One SGD step from the same weights equals scikit-learn's: alpha becomes
    weight_decay = alpha / (batch * mean(sample_weight)), and weights weigh each loss."""
    x, y = blobs
    sw = np.random.default_rng(0).uniform(0.2, 3.0, size=len(y)) if weighted else None
    params = dict(hidden_layer_sizes=(6,), solver="sgd", momentum=0.0, alpha=2.5,
                    learning_rate_init=0.05, batch_size=len(y), shuffle=False, random_state=0)
    theirs = SklearnMLP(**params)
    ours = MLPClassifier(dtype="float64", **params)
    for est in (theirs, ours):
        est.partial_fit(x, y, sample_weight=sw, classes=[0, 1, 2])
    rng = np.random.default_rng(1)
    w0 = [rng.normal(size=(8, 6)), rng.normal(size=(6, 3))]
    b0 = [rng.normal(size=6), rng.normal(size=3)]
    w_theirs, b_theirs = _one_step(theirs, x, y, w0, b0, sw)
    w_ours, b_ours = _one_step(ours, x, y, w0, b0, sw)
    for a, b in zip(w_theirs + b_theirs, w_ours + b_ours):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)
    # the loss with scikit-learn's L2 term (ours takes it with the epoch's final weights,
    # scikit-learn with each batch's weights before its step)
    assert ours.loss_curve_[-1] == pytest.approx(theirs.loss_curve_[-1], rel=1e-2)


def _fit_both(x, y, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return (SklearnMLP(**params).fit(x, y), MLPClassifier(**params).fit(x, y))


def test_stopping_on_the_training_loss_follows_scikit_learn(blobs):
    """tol so large that no epoch improves: both stop after n_iter_no_change + 2 epochs."""
    x, y = blobs
    theirs, ours = _fit_both(x, y, hidden_layer_sizes=(4,), tol=1e9, n_iter_no_change=3,
                             max_iter=50, random_state=0)
    assert ours.n_iter_ == theirs.n_iter_ == 5
    assert ours.best_loss_ == min(ours.loss_curve_)


def test_adaptive_rate_divides_by_5_then_stops_like_scikit_learn(blobs):
    x, y = blobs
    theirs, ours = _fit_both(x, y, hidden_layer_sizes=(4,), solver="sgd",
                             learning_rate="adaptive", tol=1e9, n_iter_no_change=1,
                             max_iter=100, random_state=0)
    assert ours.n_iter_ == theirs.n_iter_ < 100
    assert ours._schedule.learning_rate == pytest.approx(theirs._optimizer.learning_rate)


def test_invscaling_rate_follows_the_samples_seen(blobs):
    x, y = blobs
    theirs, ours = _fit_both(x, y, hidden_layer_sizes=(4,), solver="sgd",
                             learning_rate="invscaling", learning_rate_init=0.5, power_t=0.5,
                             max_iter=4, random_state=0)
    assert ours.t_ == theirs.t_ == 4 * 240
    assert ours._schedule.learning_rate == pytest.approx(theirs._optimizer.learning_rate)
    assert ours._schedule.learning_rate == pytest.approx(0.5 / (4 * 240 + 1) ** 0.5)


def test_early_stopping_keeps_the_best_epoch(digits):
    x, y, xt, yt = digits
    est = MLPClassifier(hidden_layer_sizes=(32,), early_stopping=True, n_iter_no_change=3,
                        tol=0.05, max_iter=100, random_state=0).fit(x, y)
    assert est.n_iter_ < 100 and est.best_loss_ is None
    assert len(est.validation_scores_) == est.n_iter_ == len(est.loss_curve_)
    assert est.best_validation_score_ == max(est.validation_scores_)
    # the held-out tenth (stratified, as scikit-learn draws it from random_state after the
    # initial weights, drawn as scikit-learn draws them, and the training seed) scores the
    # restored best network as recorded
    rs = np.random.RandomState(0)
    for fan_in, fan_out in ((64, 32), (32, 10)):
        rs.uniform(size=(fan_in, fan_out)), rs.uniform(size=fan_out)
    rs.randint(np.iinfo(np.int32).max)
    _, val_rows = train_test_split(np.arange(len(y)), random_state=rs, test_size=0.1,
                                   stratify=y)
    assert len(val_rows) == 120
    assert est.score(x[val_rows], y[val_rows]) == est.best_validation_score_
    with pytest.raises(ValueError, match="test_size"):  # scikit-learn's split refuses it
        MLPClassifier(early_stopping=True, validation_fraction=0.01).fit(x[:30], y[:30] % 2)


@QUIET
def test_epochs_match_scikit_learn_when_no_stopping_can_trigger(blobs):
    """The benchmark's setting: n_iter_no_change = max_iter makes both run every epoch."""
    x, y = blobs
    theirs, ours = _fit_both(x, y, hidden_layer_sizes=(4,), max_iter=12, n_iter_no_change=12,
                             tol=0.0, random_state=0)
    assert ours.n_iter_ == theirs.n_iter_ == 12


def test_convergence_warning_as_scikit_learn(blobs):
    x, y = blobs
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(2\) reached"):
        MLPClassifier(hidden_layer_sizes=(4,), max_iter=2).fit(x, y)


def test_verbose_prints_like_scikit_learn(blobs, capsys):
    x, y = blobs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, verbose=True).fit(x, y)
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out and "Iteration 2, loss = " in out


# --------------------------------------------------------------- partial_fit, warm start
def test_partial_fit_continues_network_and_optimizer(blobs):
    x, y = blobs
    est = MLPClassifier(hidden_layer_sizes=(8,), random_state=0, shuffle=False)
    est.partial_fit(x[:120], y[:120], classes=[0, 1, 2])
    network = est.network_
    state = est._optimizer_state
    assert state["optimizer"] == "adam" and state["scalars"]["t"] == 1
    est.partial_fit(x[120:], y[120:])
    assert est.network_ is network and est._optimizer_state["scalars"]["t"] == 2
    assert est.t_ == 240 and len(est.loss_curve_) == 2 and est.n_iter_ == 1
    with pytest.raises(ValueError, match=r"labels \[7\] that are not in classes_"):
        est.partial_fit(x[:3], [0, 1, 7])
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        MLPClassifier().partial_fit(x, y)
    with pytest.raises(ValueError, match="X has 7 features, but MLPClassifier is expecting 8"):
        est.partial_fit(x[:, :7], y)


@QUIET
def test_warm_start_continues_the_weights_with_a_fresh_optimizer(blobs):
    x, y = blobs
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, warm_start=True, random_state=0)
    est.fit(x, y)
    network = est.network_
    est.fit(x, y)
    assert est.network_ is network and len(est.loss_curve_) == 6 and est.n_iter_ == 3
    assert est._optimizer_state["scalars"]["t"] == 3 * 2  # 2 batches an epoch, fresh Adam
    with pytest.raises(ValueError, match="same classes as in the previous call"):
        est.fit(x, y % 2)
    est.set_params(hidden_layer_sizes=(9,))
    with pytest.raises(ValueError, match="warm_start and partial_fit continue the same network"):
        est.fit(x, y)
    est.set_params(warm_start=False)
    assert est.fit(x, y).network_.layers == (8, 9, 3)


# ------------------------------------------------------------------- bad input
@QUIET
def test_bad_input_gets_scikit_learns_errors(blobs):
    x, y = blobs
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        MLPClassifier().fit(bad, y)
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        MLPClassifier().fit(x[:, 0], y)
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier().fit(x, np.linspace(0, 1, len(y)))
    with pytest.raises(ValueError, match="multiclass-multioutput.*MultiOutputClassifier"):
        MLPClassifier().fit(x, np.c_[y, y[::-1]])
    with pytest.raises(NotFittedError):
        MLPClassifier().predict(x)
    est = MLPClassifier(hidden_layer_sizes=(4,), max_iter=1).fit(x, y)
    with pytest.raises(ValueError, match="X has 7 features, but MLPClassifier is expecting 8"):
        est.predict(x[:, :7])
    with pytest.raises(ValueError, match="Reshape your data"):
        est.predict(x[0])



def test_sample_weight_checks(blobs):
    x, y = blobs
    with pytest.raises(ValueError, match="at least one non-zero"):
        MLPClassifier().fit(x, y, sample_weight=np.zeros(len(y)))
    with pytest.raises(ValueError, match="negative"):
        MLPClassifier().fit(x, y, sample_weight=-np.ones(len(y)))
    with pytest.raises(ValueError, match=r"sample_weight.shape == \(3,\), expected \(240,\)"):
        MLPClassifier().fit(x, y, sample_weight=np.ones(3))


# ------------------------------------------------------------------- tools
@pytest.mark.slow
def test_pipeline_grid_search_with_two_jobs_and_cross_validation(digits):
    x, y, xt, yt = digits
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=20, learning_rate_init=0.01,
                                                         random_state=0))
    search = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(16,), (48,)],
                                 "mlpclassifier__alpha": [1e-4, 1e-2]}, cv=2, n_jobs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(x, y)
        scores = cross_val_score(clone(pipe), x, y, cv=3)
    assert search.best_score_ > 0.85 and search.score(xt, yt) > 0.85
    assert len(scores) == 3 and scores.min() > 0.85


@QUIET
def test_clone_and_pickle(blobs, tmp_path):
    joblib = pytest.importorskip("joblib")
    x, y = blobs
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(x, y)
    copy = clone(est)
    assert not hasattr(copy, "network_") and copy.get_params() == est.get_params()
    joblib.dump(est, tmp_path / "est.joblib")
    back = joblib.load(tmp_path / "est.joblib")
    np.testing.assert_array_equal(back.predict_proba(x), est.predict_proba(x))
    back.partial_fit(x, y)  # the optimizer state came along
    assert back._optimizer_state["scalars"]["t"] == est._optimizer_state["scalars"]["t"] + 2


# ----------------------------------------------------------------- model files
@QUIET
@pytest.mark.parametrize("suffix", [".safetensors", ".json"])
def test_save_and_load_keep_classes_and_parameters(blobs, tmp_path, suffix):
    x, y = blobs
    labels = np.array(["a", "b", "c"])[y]
    est = MLPClassifier(hidden_layer_sizes=(8, 5), activation="tanh", alpha=0.01,
                        max_iter=4, random_state=3).fit(x, labels)
    path = tmp_path / f"model{suffix}"
    est.save(path)
    with pytest.raises(FileExistsError):
        est.save(path)
    back = MLPClassifier.load(path)
    assert back.get_params() == est.get_params()
    assert list(back.classes_) == ["a", "b", "c"] and back.n_features_in_ == 8
    assert back.loss_curve_ == pytest.approx(est.loss_curve_) and back.n_iter_ == 4
    np.testing.assert_allclose(back.predict_proba(x), est.predict_proba(x), rtol=1e-6)
    assert (back.predict(x) == est.predict(x)).all()
    # the file is also an ordinary portamlp model file
    assert portamlp.load(path).layers == (8, 8, 5, 3)
    # no pickle inside: a JSON model holds the estimator as plain data
    if suffix == ".json":
        doc = json.loads(path.read_text())
        assert doc["sklearn"]["classes"]["values"] == ["a", "b", "c"]
    back.partial_fit(x[:10], labels[:10])  # continues (with fresh optimizer moments)


def test_load_refuses_a_plain_network_file(blobs, tmp_path):
    x, y = blobs
    net = portamlp.train(x=x, y=y, epochs=1, progress=False).network
    net.save(tmp_path / "net.safetensors")
    with pytest.raises(portamlp.ModelFormatError, match="not a saved MLPClassifier"):
        MLPClassifier.load(tmp_path / "net.safetensors")


# ------------------------------------------------------------- array API dispatch
def test_messages_name_the_callers_labels():
    """Errors speak of the caller's labels, as plain values (not portamlp's class indices, not
    NumPy reprs such as np.int64(1))."""
    x = np.arange(12, dtype=float).reshape(6, 2)
    y = np.array(["cat", "cat", "cat", "cat", "cat", "dog"])
    with pytest.raises(ValueError, match=r"too few members are: \['dog'\]"):
        MLPClassifier(early_stopping=True).fit(x, y)
    with pytest.raises(ValueError, match=r"Previously got \['cat' 'dog'\], `y` has \['cat'\]"):
        MLPClassifier(warm_start=True, max_iter=1).fit(x, y).fit(x, y[:5].repeat(2)[:6])


def test_array_api_dispatch_follows_jax_arrays(blobs):
    jax = pytest.importorskip("jax", reason='needs JAX: pip install "portamlp[jax]"')
    x, y = blobs
    X, Y = jax.numpy.asarray(x), jax.numpy.asarray(y)
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, learning_rate_init=0.03,
                        random_state=0)
    with warnings.catch_warnings(), sklearn.config_context(array_api_dispatch=True):
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, Y)
        assert est.network_.backend.name == "jax"
        predicted, proba = est.predict(X), est.predict_proba(X)
        assert isinstance(predicted, jax.Array) and isinstance(proba, jax.Array)
        assert est.score(X, Y) > 0.7


def test_array_api_dispatch_trains_where_the_data_lives(blobs):
    xp = pytest.importorskip("array_api_strict")
    x, y = blobs
    device = xp.Device("device1")
    X = xp.asarray(x, device=device)
    Y = xp.asarray(y, device=device)
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, learning_rate_init=0.03,
                        random_state=0)
    with warnings.catch_warnings(), sklearn.config_context(array_api_dispatch=True):
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, Y)
        assert est.network_.backend.name == "array_api_strict"
        assert est.network_.backend.device == device
        predicted = est.predict(X)
        proba = est.predict_proba(X)
        assert isinstance(predicted, type(X)) and predicted.device == device
        assert isinstance(proba, type(X)) and proba.device == device
        assert est.score(X, Y) > 0.7
        with pytest.raises(ValueError, match=r"MLPClassifier.predict\(\) must use the same "
                                             "namespace"):
            est.predict(x)
    # without dispatch: NumPy in, NumPy out, as scikit-learn does
    assert isinstance(est.predict(x), np.ndarray)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain = clone(est).fit(x, y)
    assert plain.network_.backend.name == "numpy"
    # the same run on either library (one seed, one initialisation, one order)
    np.testing.assert_allclose(plain.coefs_[0], est.coefs_[0], rtol=1e-12)


@QUIET
def test_pickle_keeps_the_backend(blobs):
    pytest.importorskip("array_api_strict")
    x, y = blobs
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, backend="array_api_strict",
                        device="device1", random_state=0).fit(x, y)
    back = pickle.loads(pickle.dumps(est))
    assert back.network_.backend.name == "array_api_strict"
    assert back.network_.backend.device == est.network_.backend.device
    np.testing.assert_allclose(back.predict_proba(x), est.predict_proba(x))


@QUIET
def test_unpickling_where_the_backend_is_missing_falls_back_to_numpy(blobs):
    x, y = blobs
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(x, y)
    state = est.__getstate__()
    state["network_"] = dict(state["network_"], backend="array_api_strict", device="device9")
    back = MLPClassifier.__new__(MLPClassifier)
    with pytest.warns(portamlp.PortamlpWarning, match="device9.*not usable here.*on NumPy"):
        back.__setstate__(state)
    assert back.network_.backend.name == "numpy"
    np.testing.assert_array_equal(back.predict(x), est.predict(x))


# -------------------------------------------------------------- proofs
def test_importing_portamlp_imports_no_scikit_learn():
    code = "import sys, portamlp; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_example_pipeline_grid_searches_digits(capsys):
    main = runpy.run_path(str(ROOT / "examples" / "sklearn_pipeline.py"))["main"]
    search, accuracy = main(max_iter=10, n_jobs=1,
                            grid={"mlpclassifier__hidden_layer_sizes": [(16,), (32,)]})
    out = capsys.readouterr().out
    assert "best parameters" in out and "test accuracy" in out
    assert accuracy > 0.85 and len(search.cv_results_["params"]) == 2


@pytest.mark.slow
def test_benchmark_quick_mode_reports_both_estimators(tmp_path):
    out_file = tmp_path / "sklearn_compare.json"
    stdout = run_bench("sklearn_compare.py", "--quick", "--output", out_file)
    assert "| data set |" in stdout and "portamlp" in stdout
    assert "| digits-lbfgs |" in stdout and "| regression-adam |" in stdout
    report = json.loads(out_file.read_text())
    assert report["quick"] is True and report["machine"]
    rows = {r["row"]: r for r in report["rows"]}
    assert list(rows) == ["mnist", "digits", "digits-lbfgs", "regression-adam",
                          "regression-lbfgs"]
    assert [rows[n]["dataset"] for n in ("mnist", "digits", "digits-lbfgs")] == \
        ["mnist", "digits", "digits"]
    assert rows["regression-adam"]["dataset"] == rows["regression-lbfgs"]["dataset"] in \
        {"diabetes", "california_housing"}
    for row in report["rows"]:
        lbfgs, classify = row["solver"] == "lbfgs", row["task"] == "classification"
        max_iter = row["settings"]["max_iter"]
        assert row["fixed_epochs"] is not lbfgs
        assert row["dtype"] == ("float64" if lbfgs else "float32")
        # Adam runs exactly max_iter epochs on both sides; L-BFGS stops by itself
        assert ("n_iter_no_change" not in row["settings"]) is lbfgs
        for name in ("portamlp", "scikit-learn", "scikit-learn, portamlp's BLAS threads"):
            result = row[name]
            assert len(result["runs"]) == len(report["seeds"])
            assert result["fit_seconds"] > 0 and result["seconds_per_iteration"] > 0
            for run in result["runs"]:
                assert 1 <= run["n_iter"] <= max_iter and np.isfinite(run["final_loss"])
                assert lbfgs or run["n_iter"] == max_iter
                if classify:
                    assert 0.0 <= run["test_accuracy"] <= 1.0
                else:
                    assert np.isfinite(run["test_r2"]) and run["test_r2"] <= 1.0
            if lbfgs:  # 5 iterations (--quick) are too few to converge: each says so
                assert [r["converged"] for r in result["runs"]] == [False] * len(
                    result["runs"]) and result["converged_runs"] == 0
                assert all(r["n_iter"] == max_iter for r in result["runs"])
            else:
                assert "converged_runs" not in result
        assert row["speedup"] > 0 and row["speedup_same_threads"] > 0
        assert ("accuracy_points" in row) is classify and ("r2_difference" in row) is not classify
        assert len(row["load_average_before"]) == 3
    assert "| regression-lbfgs |" in report["solver_table"] and "lbfgs" not in report["table"]
    # --only measures just the rows asked for (a --quick run keeps no earlier rows)
    only_file = tmp_path / "only.json"
    run_bench("sklearn_compare.py", "--quick", "--only", "lbfgs", "--output", only_file)
    only = json.loads(only_file.read_text())
    assert [r["row"] for r in only["rows"]] == ["digits-lbfgs", "regression-lbfgs"]
    assert "target" not in only and "kept_rows" not in only
