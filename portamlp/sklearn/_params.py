"""The estimator's parameters: their valid values, their checks, and what they become in
:func:`portamlp.train`.

Names come from portamlp's registries, not from lists here: ``activation`` takes every entry of
:data:`portamlp.nn.activations.ACTIVATIONS`, ``solver`` every optimizer of
:data:`portamlp.training.optimizers.OPTIMIZERS` and ``cost`` every entry of
:data:`portamlp.nn.costs.COSTS` whose targets are classes, so a newly registered one works in
the estimator with nothing else edited. scikit-learn's names are kept where they differ from
portamlp's (:data:`SKLEARN_ACTIVATIONS`: ``"logistic"`` is portamlp's ``"sigmoid"``).

Checks go through :mod:`portamlp.checks`, as scikit-learn's do, in ``fit`` (not in
``__init__``). scikit-learn's convention is one error for every invalid parameter, both a
``ValueError`` and a ``TypeError``; :mod:`portamlp.checks` raises ``TypeError`` for a wrong type
and ``ValueError`` for a wrong value, so :func:`check_parameters` re-raises either as
:class:`portamlp.checks.InvalidParameterError` (a subclass of both) with the check's message,
which names the parameter, the value given and what would be valid.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..checks import (
    InvalidParameterError,
    check_bool,
    check_choice,
    check_dtype,
    check_float,
    check_int,
    is_integer,
)
from ..nn.activations import ACTIVATIONS
from ..nn.costs import COSTS
from ..nn.init import init_names
from ..nn.network import Network
from ..training.config import TrainConfig
from ..training.distortions import DistortionSpec
from ..training.optimizers import OPTIMIZERS

if TYPE_CHECKING:
    from ._base import BaseMLP

__all__ = ["SKLEARN_ACTIVATIONS", "LEARNING_RATES", "Checked", "activation_names",
           "solver_names", "cost_names", "to_portamlp_activation", "to_sklearn_activation",
           "out_activation", "SOLVER_HYPER_PARAMETERS", "hidden_layers", "check_parameters",
           "invalid_parameter"]

#: scikit-learn's activation names that portamlp registers under another name.
SKLEARN_ACTIVATIONS = {"logistic": "sigmoid"}
#: The ``"sgd"`` solver's learning-rate schedules (scikit-learn's own rules, in ``_epochs``).
LEARNING_RATES = ("constant", "invscaling", "adaptive")


# ---------------------------------------------------------------------------------- names
def to_portamlp_activation(name: str) -> str:
    """portamlp's name of the activation the estimator calls ``name``."""
    return SKLEARN_ACTIVATIONS.get(name, name)


def to_sklearn_activation(name: str) -> str:
    """The estimator's name of portamlp's activation ``name`` (scikit-learn's, where it has
    one)."""
    return next((ours for ours, theirs in SKLEARN_ACTIVATIONS.items() if theirs == name), name)


def activation_names() -> tuple[str, ...]:
    """The values ``activation`` takes: every registered activation, by the estimator's name."""
    return tuple(to_sklearn_activation(name) for name in ACTIVATIONS)


def solver_names() -> tuple[str, ...]:
    """The values ``solver`` takes: every registered optimizer."""
    return tuple(OPTIMIZERS)


def cost_names(targets: str = "classes") -> tuple[str, ...]:
    """The registered costs whose targets are ``targets``: the values the classifier's
    ``cost`` takes ("classes"), the regressor's ``loss`` ("values")."""
    return tuple(name for name, cost in COSTS.items() if cost.targets == targets)


def out_activation(network: Network) -> str:
    """``out_activation_`` of a fitted network: its cost's output function (``"softmax"``,
    ``"identity"``, ``"logistic"``, ...), or the hidden activation by the estimator's name for a
    cost whose output layer uses it."""
    output = COSTS[network.cost].output_name
    return to_sklearn_activation(network.activation) if output is None else output


# ----------------------------------------------------------------- solver hyper-parameters
def _sgd_hyper_parameters(est: BaseMLP) -> dict[str, Any]:
    """``momentum`` and ``nesterovs_momentum`` as portamlp's SGD takes them."""
    momentum = float(est.momentum)
    return {"momentum": momentum, "nesterov": bool(est.nesterovs_momentum) and momentum > 0}


def _adam_hyper_parameters(est: BaseMLP) -> dict[str, Any]:
    """``beta_1``, ``beta_2`` and ``epsilon`` as portamlp's Adam takes them."""
    return {"beta1": float(est.beta_1), "beta2": float(est.beta_2),
            "epsilon": float(est.epsilon)}


#: The solvers that scikit-learn's parameters configure; any other registered optimizer trains
#: with the defaults it declares.
SOLVER_HYPER_PARAMETERS: dict[str, Callable[[BaseMLP], dict[str, Any]]] = {
    "sgd": _sgd_hyper_parameters,
    "adam": _adam_hyper_parameters,
}


# --------------------------------------------------------------------------------- checks
@dataclass(frozen=True)
class Checked:
    """What checked parameters become in :func:`portamlp.train`.

    Attributes
    ----------
    activation : str
        portamlp's name of the hidden activation.
    hyper_parameters : dict
        The optimizer's own keyword arguments (empty: its declared defaults).
    scheduled : bool
        Whether the learning rate follows scikit-learn's ``"invscaling"`` or ``"adaptive"``
        schedule (the ``"sgd"`` solver only, as in scikit-learn).
    distortions : dict
        The distortion options of the training images (``train``'s keywords).
    """

    activation: str
    hyper_parameters: dict[str, Any] = field(default_factory=dict)
    scheduled: bool = False
    distortions: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def invalid_parameter() -> Iterator[None]:
    """Re-raise a check's TypeError or ValueError as InvalidParameterError (same message)."""
    try:
        yield
    except InvalidParameterError:
        raise
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(str(exc)) from None


def hidden_layers(sizes: Any) -> tuple[int, ...]:
    """``hidden_layer_sizes`` as a tuple of Python ints (an int is one hidden layer).

    Raises
    ------
    InvalidParameterError
        ``sizes`` is not an int or a sequence of positive ints.
    """
    try:
        values = (sizes,) if is_integer(sizes) else tuple(sizes)
    except TypeError:
        raise InvalidParameterError(f"hidden_layer_sizes must be an int or a sequence of ints "
                                    f"such as (100,) or (256, 128), got {sizes!r}") from None
    if not all(is_integer(s) and s >= 1 for s in values):
        raise InvalidParameterError(f"hidden_layer_sizes must hold positive ints, got {sizes!r}")
    return tuple(int(s) for s in values)


def _check_names(est: BaseMLP) -> None:
    """portamlp's names of the activations that the estimator takes by scikit-learn's."""
    activations = list(activation_names())
    if isinstance(est.activation, str) and est.activation not in activations and \
            to_sklearn_activation(est.activation) in activations:
        raise InvalidParameterError(
            f"unknown activation {est.activation!r} (portamlp's name: the estimator takes "
            f"scikit-learn's, {to_sklearn_activation(est.activation)!r}); choose one of "
            f"{activations}")


def _check_batch_size(value: Any) -> None:
    """``"auto"`` or an int >= 1."""
    if isinstance(value, str) and value == "auto":
        return
    if not is_integer(value):
        raise InvalidParameterError(f"batch_size must be 'auto' or an int >= 1, got {value!r}")
    check_int("batch_size", value, minimum=1)


def _check_random_state(value: Any) -> None:
    """None, an int or a RandomState (scikit-learn's ``check_random_state`` takes them)."""
    if value is None or is_integer(value) or isinstance(value, np.random.RandomState):
        return
    raise InvalidParameterError(f"random_state must be None, an int or a "
                                f"numpy.random.RandomState, got {value!r}")


def check_parameters(est: BaseMLP, incremental: bool) -> Checked:
    """Check the estimator's parameters (scikit-learn validates in fit, not in __init__).

    Parameters
    ----------
    est : MLPClassifier or MLPRegressor
    incremental : bool
        True for ``partial_fit``.

    Returns
    -------
    Checked
        What the parameters become in :func:`portamlp.train`.

    Raises
    ------
    InvalidParameterError
        A parameter is invalid (both a ValueError and a TypeError); the message names it, the
        value given and what would be valid.
    """
    _check_names(est)
    with invalid_parameter():
        check_choice("solver", est.solver, solver_names())
        check_choice("activation", est.activation, activation_names())
        check_choice("learning_rate", est.learning_rate, LEARNING_RATES)
        check_choice("init", est.init, init_names())
        if est.dtype is not None:
            check_dtype(est.dtype)
        hidden_layers(est.hidden_layer_sizes)
        check_float("alpha", est.alpha, minimum=0.0)
        check_float("learning_rate_init", est.learning_rate_init, above=0.0)
        check_float("power_t", est.power_t, minimum=0.0)
        check_int("max_iter", est.max_iter, minimum=1)
        if not (isinstance(est.n_iter_no_change, float) and est.n_iter_no_change == np.inf):
            # np.inf: scikit-learn's documented way to turn the no-improvement stop off
            check_int("n_iter_no_change", est.n_iter_no_change, minimum=1)
        check_int("max_fun", est.max_fun, minimum=1)
        check_float("tol", est.tol, minimum=0.0)
        check_float("momentum", est.momentum, minimum=0.0, below=1.0)
        check_float("validation_fraction", est.validation_fraction, above=0.0, below=1.0)
        _check_batch_size(est.batch_size)
        for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping"):
            check_bool(name, getattr(est, name))
        check_float("beta_1", est.beta_1, minimum=0.0, below=1.0)
        check_float("beta_2", est.beta_2, minimum=0.0, below=1.0)
        check_float("epsilon", est.epsilon, above=0.0)
        check_float("dropout", est.dropout, minimum=0.0, below=1.0)
        check_float("input_dropout", est.input_dropout, minimum=0.0, below=1.0)
        check_float("max_norm", est.max_norm, above=0.0, optional=True)
        _check_random_state(est.random_state)
    if incremental and est.early_stopping:
        raise InvalidParameterError("partial_fit does not support early_stopping=True: it sees "
                                    "one batch of data at a time; set early_stopping=False")
    distortions = _distortions(est.distortions)
    if distortions and est.solver in OPTIMIZERS and OPTIMIZERS[est.solver].full_batch:
        raise InvalidParameterError(
            f"distortions={est.distortions!r} would change the images between the "
            f"evaluations of solver={est.solver!r}, which minimises one fixed loss: use "
            "solver='adam' or 'sgd', or distortions=None")
    hyper = SOLVER_HYPER_PARAMETERS.get(est.solver)
    return Checked(activation=to_portamlp_activation(est.activation),
                    hyper_parameters={} if hyper is None else hyper(est),
                    scheduled=est.solver == "sgd" and est.learning_rate != "constant",
                    distortions=distortions)


def _distortions(value: Any) -> dict[str, Any]:
    """The ``distortions`` parameter (None or a dict of :class:`DistortionSpec`'s fields) as
    checked ``train`` keywords; each value is checked by its option's own declaration."""
    names = [f.name for f in dataclasses.fields(DistortionSpec)]
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidParameterError(f"distortions must be None or a dict such as "
                                    f"{{'rotation': 10, 'elastic_alpha': 34}}, got {value!r}")
    unknown = [k for k in value if k not in names]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InvalidParameterError(f"distortions has an unknown key {unknown[0]!r}{hint}; "
                                    f"its keys are {names}")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    with invalid_parameter():
        return {k: fields[k].metadata["check"](k, v) for k, v in value.items()}
