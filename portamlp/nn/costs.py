"""Costs: one registry entry each, carrying everything about itself.

* ``"quadratic"`` — ``C = ½‖a − y‖²`` summed over the batch; the output layer uses the hidden
  activation (Nielsen's chapter 1 and the original program), so ``δᴸ = (a − y) ⊙ σ'(zᴸ)``.
* ``"cross_entropy"`` — a softmax output layer with the log-likelihood cost
  ``C = −log softmax(zᴸ)_y``; then ``δᴸ = softmax(zᴸ) − y``. Computed stably (max subtracted).
* ``"squared_error"`` — regression: an identity output layer, ``C = ½‖a − y‖²`` with real
  targets ``y``, ``δᴸ = a − y``.
* ``"binary_cross_entropy"`` — several labels per sample: a logistic output per label,
  ``C = −Σ [y log a + (1 − y) log(1 − a)]`` with 0/1 targets, ``δᴸ = a − y``.
* ``"poisson"`` — regression of counts or rates (``y ≥ 0``): an exponential output layer
  ``a = exp(zᴸ)``, ``C = Σ [y log(y/a) − y + a]`` (half the Poisson deviance, scikit-learn's
  ``loss="poisson"``; 0 for a perfect fit), ``δᴸ = a − y``.

What a cost's targets are (:attr:`Cost.targets`) decides what training takes as ``y`` and what
``predict`` answers: class indices (one-hot targets; the class of the highest output), real
values (the outputs themselves), or 0/1 indicators of several labels (outputs above ½).

With per-sample weights ``w`` (shape (n, 1)), each sample's cost and ``δ`` are multiplied by its
weight. Every function takes the namespace ``xp`` first and uses only Array API functions; none
reads a value back to the host.

"Cost" is portamlp's one word for the function training minimises and for its value on data
(Nielsen's and 3Blue1Brown's word; scikit-learn and Keras say "loss"). Adding a cost is adding
an entry to :data:`COSTS`: the options, the command line, model files and the estimator read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..registry import Registry
from .activations import Activation

__all__ = ["Cost", "COSTS", "TARGETS", "get_cost", "softmax"]

#: What a cost's targets are: class indices, real values, or 0/1 indicators of several labels.
TARGETS = ("classes", "values", "labels")


def softmax(xp, z):
    """Row-wise softmax of ``z`` (shape (n, k)), stable for large inputs."""
    e = xp.exp(z - xp.max(z, axis=1, keepdims=True))
    return e / xp.sum(e, axis=1, keepdims=True)


@dataclass(frozen=True)
class Cost:
    """A cost: the output layer's activation, and the batch-summed value with ``δᴸ``.

    Attributes
    ----------
    name : str
    output : callable
        ``output(xp, z, hidden_activation) -> a``: the output layer's activation.
    value_and_delta : callable
        ``value_and_delta(xp, z, a, y, activation, with_value, weights) -> (raw value or None,
        δᴸ)``: one pass shares work between the two (``activation`` None: only the value is
        wanted, and δᴸ is None). The raw value is the batch-summed cost divided by
        ``value_scale`` (the training loop multiplies once per epoch instead of per batch).
    value_scale : float
    kernel_output : {"hidden", "identity"}
        What CuPy's fused kernels apply to the output layer's ``z`` before ``kernel_row``:
        the hidden activation, or nothing.
    min_target : float or None
        The smallest target the cost takes (0 for the Poisson deviance); smaller ones are
        refused when the data is checked. None: any.
    output_name : str or None
        The output layer's function by scikit-learn's name (``out_activation_``): "softmax",
        "identity", "logistic", "exp"; None when it is the hidden activation.
    targets : {"classes", "values", "labels"}
        What ``y`` holds (:data:`TARGETS`): class indices (one-hot targets, ``predict`` gives
        the class of the highest output), real values (``predict`` gives the outputs), or 0/1
        indicators of several labels per sample (``predict`` gives outputs above ½).
    kernel_row : str or None
        Its code in the fused kernels (:mod:`portamlp.fast`): the body of a C function of one
        row, ``real f(const real* out, real* delta, int y, int n_out, int act, real tiny)``,
        that writes the row's δᴸ into ``delta[0:n_out]`` and returns its raw cost (``y`` is the
        row's class, ``out`` the output layer as ``kernel_output`` left it, ``act`` the hidden
        activation's kernel code for ``derivative(a, act)``, ``tiny`` the dtype's smallest
        normal number). None: runs with this cost take the portable step.
    """

    name: str
    output: Callable[[Any, Any, Activation], Any]
    value_and_delta: Callable[..., tuple]
    value_scale: float = 1.0
    kernel_output: str = "identity"
    kernel_row: str | None = None
    targets: str = "classes"
    output_name: str | None = None
    min_target: float | None = None

    def value(self, xp, a, y, weights=None):
        """The cost summed over the batch (0-d array), from output activations ``a``."""
        raw, _ = self.value_and_delta(xp, None, a, y, None, True, weights)
        return self.value_scale * raw


def _quadratic_output(xp, z, act):
    return act.f(xp, z)


def _quadratic_value_and_delta(xp, z, a, y, act, with_value, weights=None):
    d = a - y
    if weights is not None:
        value = xp.sum(weights * (d * d)) if with_value else None
    else:
        value = xp.sum(d * d) if with_value else None  # times value_scale = 0.5
    if act is None:  # only the value is wanted (Cost.value)
        return value, None
    delta = d * act.f_prime(xp, z, a)
    return value, (delta if weights is None else delta * weights)


_QUADRATIC_ROW = """
    real sum = 0;
    for (int j = 0; j < n_out; ++j) {
        real diff = out[j] - (j == y ? (real)1 : (real)0);
        sum += diff * diff;
        delta[j] = diff * derivative(out[j], act);
    }
    return sum;
"""


def _ce_output(xp, z, act):
    return softmax(xp, z)


def _ce_value_and_delta(xp, z, a, y, act, with_value, weights=None):
    if act is None:  # only the value is wanted (Cost.value)
        delta = None
    else:
        delta = a - y if weights is None else (a - y) * weights
    if not with_value:
        return None, delta
    # a is the softmax output; a floor at the smallest normal keeps log finite. ``maximum`` is
    # one kernel with no host read (array-api-compat's ``clip`` indexes with a boolean mask).
    tiny = float(xp.finfo(a.dtype).smallest_normal)
    log_a = xp.log(xp.maximum(a, tiny))
    t = y if weights is None else y * weights
    return xp.sum(t * log_a), delta  # times value_scale = -1


_CROSS_ENTROPY_ROW = """
    real m = out[0];
    for (int j = 1; j < n_out; ++j) m = out[j] > m ? out[j] : m;
    real total = 0;
    for (int j = 0; j < n_out; ++j) total += exp(out[j] - m);
    real sum = 0;
    for (int j = 0; j < n_out; ++j) {
        real a = exp(out[j] - m) / total;
        delta[j] = a - (j == y ? (real)1 : (real)0);
        if (j == y) sum += log(a > tiny ? a : tiny);
    }
    return sum;
"""

def _identity_output(xp, z, act):
    return z


def _squared_error_value_and_delta(xp, z, a, y, act, with_value, weights=None):
    d = a - y
    value = None
    if with_value:
        value = xp.sum(d * d) if weights is None else xp.sum(weights * (d * d))
    if act is None:
        return value, None
    return value, (d if weights is None else d * weights)  # times value_scale = 0.5


def _logistic_output(xp, z, act):
    return 1.0 / (1.0 + xp.exp(-z))


def _bce_value_and_delta(xp, z, a, y, act, with_value, weights=None):
    delta = None if act is None else (a - y if weights is None else (a - y) * weights)
    if not with_value:
        return None, delta
    tiny = float(xp.finfo(a.dtype).smallest_normal)
    terms = y * xp.log(xp.maximum(a, tiny)) + (1.0 - y) * xp.log(xp.maximum(1.0 - a, tiny))
    return xp.sum(terms if weights is None else terms * weights), delta  # value_scale = -1


def _exp_output(xp, z, act):
    return xp.exp(z)


def _poisson_value_and_delta(xp, z, a, y, act, with_value, weights=None):
    delta = None if act is None else (a - y if weights is None else (a - y) * weights)
    if not with_value:
        return None, delta
    # the half Poisson deviance y·log(y/a) − y + a (a = exp z > 0; y·log y is 0 at y = 0)
    tiny = float(xp.finfo(a.dtype).smallest_normal)
    y_log_y = y * xp.log(xp.where(y > 0, y, 1.0))
    terms = y_log_y - y * xp.log(xp.maximum(a, tiny)) - y + a
    return xp.sum(terms if weights is None else terms * weights), delta


def _check(entry: Any) -> None:
    """A cost whose targets are not one of :data:`TARGETS` is refused when registered."""
    if not isinstance(entry, Cost):
        raise TypeError(f"a cost entry is a portamlp Cost, got {entry!r}")
    if entry.targets not in TARGETS:
        raise ValueError(f"cost {entry.name!r}: targets={entry.targets!r} is not one of "
                         f"{list(TARGETS)}")


#: The costs, by name.
COSTS: Registry[Cost] = Registry("cost", (
    Cost("quadratic", _quadratic_output, _quadratic_value_and_delta, 0.5,
         kernel_output="hidden", kernel_row=_QUADRATIC_ROW),
    Cost("cross_entropy", _ce_output, _ce_value_and_delta, -1.0,
         kernel_output="identity", kernel_row=_CROSS_ENTROPY_ROW, output_name="softmax"),
    Cost("squared_error", _identity_output, _squared_error_value_and_delta, 0.5,
         targets="values", output_name="identity"),
    Cost("binary_cross_entropy", _logistic_output, _bce_value_and_delta, -1.0,
         targets="labels", output_name="logistic"),
    Cost("poisson", _exp_output, _poisson_value_and_delta, 1.0, targets="values",
         output_name="exp", min_target=0.0),
), check=_check)


def get_cost(name: str | Cost) -> Cost:
    """Look up a cost by its exact name (a near miss gets a suggestion)."""
    if isinstance(name, Cost):
        return name
    return COSTS.lookup(name)
