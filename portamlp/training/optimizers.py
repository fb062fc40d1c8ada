"""Optimizers: how gradients update a network's parameters, one registry entry each.

An optimizer is a subclass of :class:`Optimizer` registered in :data:`OPTIMIZERS`. It declares
its hyper-parameters (:class:`HyperParameter`: name, default, check, one line of help), which
become options of ``train`` (``train(optimizer="adam", beta2=0.99)``), flags of
``portamlp train`` and keys of its TOML files; it holds its state as named arrays and scalars,
which checkpoints save and restore; and it may give CuPy's fast step its update rule as kernel
code (:meth:`Optimizer.kernel_rule`). An optimizer without kernel code trains on the portable
step.

Every write goes through the backend's write-through helper (:mod:`portamlp.backends.writes`):
in place where the library allows it, so parameter and state buffers keep their identity (and,
on a GPU, their addresses), and as new arrays where it does not. L2 ``weight_decay`` adds
``λ·W`` to the gradient of each weight matrix; biases are not decayed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from ..checks import check_bool, check_float, check_int
from ..registry import Registry

__all__ = ["HyperParameter", "KernelRule", "Optimizer", "SGD", "Adam", "LBFGS", "OPTIMIZERS",
           "make_optimizer", "hyper_parameters", "apply_max_norm"]


@dataclass(frozen=True)
class HyperParameter:
    """One hyper-parameter an optimizer declares.

    ``check(name, value)`` validates a value and returns it normalised (Python ``float`` /
    ``bool``); ``kind`` names its type for the command line ("float", "int", "bool").
    """

    name: str
    default: Any
    help: str
    check: Callable[[str, Any], Any]
    kind: str = "float"


@dataclass(frozen=True)
class KernelRule:
    """An optimizer's update rule in CuPy's fast step (:mod:`portamlp.fast`).

    ``code`` is the body of the C function
    ``void update(real* p, real* s1, real* s2, real g, real inv_rows, const double* hp,
    long long t, int decay)``: it updates the parameter ``*p`` from its batch-summed gradient
    ``g`` (times ``inv_rows`` for the batch mean) and its state ``*s1``, ``*s2`` (the first
    ``states`` of :meth:`Optimizer.kernel_state`). ``hp[HP_LR]`` is the learning rate,
    ``hp[HP_WEIGHT_DECAY]`` the weight decay (apply it where ``decay`` is 1: weights, not
    biases), ``HP(i)`` is ``values[i]``, and ``t`` the 1-based count of steps taken.
    """

    name: str
    code: str
    values: tuple[float, ...] = ()
    states: int = 0


class Optimizer:
    """The base of every optimizer (see the module docstring).

    Parameters
    ----------
    params : list of arrays
        The network's own parameter list (:meth:`portamlp.Network.parameters`): updates are
        written into it.
    backend : Backend
        The network's backend (its namespace and write-through helper).
    learning_rate : float
    weight_decay : float
    **hyper
        The optimizer's declared hyper-parameters (checked by :func:`hyper_parameters`).
    """

    #: The name ``train(optimizer=...)`` takes.
    name: ClassVar[str] = ""
    #: One line for the docs.
    help: ClassVar[str] = ""
    #: Its hyper-parameters, besides the learning rate and weight decay every one has.
    hyper_parameters: ClassVar[tuple[HyperParameter, ...]] = ()
    #: True for an optimizer that minimises the cost over the whole training set: it takes
    #: :meth:`iterate` once per epoch instead of :meth:`step` once per mini-batch.
    full_batch: ClassVar[bool] = False

    def __init__(self, params: list, backend: Any, *, learning_rate: float,
                 weight_decay: float = 0.0, **hyper: Any):
        self.params = params
        self.backend, self.xp, self.write = backend, backend.xp, backend.writes
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        for name, value in hyper_parameters(type(self), hyper).items():
            setattr(self, name, value)
        #: Steps taken so far (the fast step counts its own through :meth:`advance`).
        self.t = 0

    @classmethod
    def check(cls, values: dict[str, Any]) -> None:
        """Checks between hyper-parameters (each one is already valid on its own)."""

    def step(self, grads: list, scale: float = 1.0) -> None:
        """Apply one update; ``grads`` is aligned with ``params`` and multiplied by ``scale``
        (``1/n`` turns gradients summed over a batch of ``n`` into the batch mean)."""
        self.t += 1
        self.update(grads, scale)

    def update(self, grads: list, scale: float) -> None:
        """The update itself (subclasses)."""
        raise NotImplementedError

    def iterate(self, evaluate: Callable[[], tuple[Any, list]], scale: float) -> tuple[Any, bool]:
        """One iteration of a full-batch optimizer (:attr:`full_batch`).

        ``evaluate()`` returns the cost summed over the training set (a 0-d array, as
        :meth:`portamlp.Network.backprop` returns it times the cost's scale) and its gradients,
        at the parameters as they are now; ``scale`` turns sums into means. Returns the summed
        cost at the new parameters and whether the optimizer has finished (converged, or out of
        evaluations); why is in :meth:`scalars`.
        """
        raise TypeError(f"optimizer {self.name!r} updates per mini-batch: call step(grads, scale)")

    def advance(self, steps: int) -> None:
        """Count ``steps`` steps taken by the fast step's kernels."""
        self.t += steps

    # -- state, for checkpoints and for continuing a run
    def state_arrays(self) -> dict[str, Any]:
        """The optimizer's state buffers by name (arrays stay on the device)."""
        return {}

    def scalars(self) -> dict[str, Any]:
        """The optimizer's state scalars by name (plain data)."""
        return {"t": self.t}

    def load_state(self, arrays: dict[str, Any], scalars: dict[str, Any]) -> None:
        """Restore :meth:`state_arrays` / :meth:`scalars` (arrays already on this device)."""
        self.t = int(scalars.get("t", 0))

    # -- the fast step
    def kernel_rule(self) -> KernelRule | None:
        """The update rule as fast-step kernel code, or None (then the portable step runs)."""
        return None

    def kernel_state(self, index: int) -> tuple[Any, ...]:
        """The state buffers of parameter ``index`` that the rule's code reads as ``s1``,
        ``s2``."""
        return ()


def _momentum(name, value):
    return check_float(name, value, minimum=0.0, below=1.0)


def _decay_rate(name, value):
    return check_float(name, value, minimum=0.0, below=1.0)


def _positive(name, value):
    return check_float(name, value, above=0.0)


def _non_negative(name, value):
    return check_float(name, value, minimum=0.0)


def _count(name, value):
    return check_int(name, value, minimum=1)


class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum.

    Plain: ``W ← W − η∇``. Momentum ``μ``: ``v ← μv − η∇; W ← W + v``.
    Nesterov: ``v ← μv − η∇; W ← W + μv − η∇``.
    """

    name = "sgd"
    help = "stochastic gradient descent, with optional (Nesterov) momentum"
    hyper_parameters = (
        HyperParameter("momentum", 0.0, "SGD momentum μ in [0, 1)", _momentum),
        HyperParameter("nesterov", False, "Nesterov momentum (needs momentum > 0)",
                       check_bool, kind="bool"),
    )
    momentum: float
    nesterov: bool

    def __init__(self, params: list, backend: Any, **options: Any):
        super().__init__(params, backend, **options)
        self.velocity = [self.xp.zeros_like(p) for p in params] if self.momentum else None

    @classmethod
    def check(cls, values: dict[str, Any]) -> None:
        if values["nesterov"] and not values["momentum"]:
            raise ValueError("nesterov=True needs momentum > 0 (e.g. momentum=0.9)")

    def update(self, grads: list, scale: float) -> None:
        lr, mu, wd = self.learning_rate, self.momentum, self.weight_decay
        eta = lr * scale
        params, write, velocity = self.params, self.write, self.velocity
        for i, g in enumerate(grads):
            p = params[i]
            delta = eta * g  # η∇ (+ ηλW for weight matrices), from the current parameters
            if wd and p.ndim == 2:
                delta = delta + (lr * wd) * p
            if velocity is None:
                params[i] = write.subtract(p, delta)
                continue
            v = write.subtract(write.multiply(velocity[i], mu), delta)
            velocity[i] = v
            if self.nesterov:  # W + μv − η∇ with the new v
                params[i] = write.subtract(write.add(p, mu * v), delta)
            else:
                params[i] = write.add(p, v)

    def state_arrays(self) -> dict[str, Any]:
        return {f"velocity.{i}": v for i, v in enumerate(self.velocity or [])}

    def load_state(self, arrays: dict[str, Any], scalars: dict[str, Any]) -> None:
        super().load_state(arrays, scalars)
        if self.velocity is not None:
            self.velocity = [arrays[f"velocity.{i}"] for i in range(len(self.params))]

    def kernel_rule(self) -> KernelRule:
        if not self.momentum:
            return KernelRule("sgd", _SGD_RULE)
        return KernelRule("nesterov" if self.nesterov else "momentum",
                          _NESTEROV_RULE if self.nesterov else _MOMENTUM_RULE,
                          (self.momentum,), states=1)

    def kernel_state(self, index: int) -> tuple[Any, ...]:
        return () if self.velocity is None else (self.velocity[index],)


#: η∇ (+ ηλW), as SGD.update computes it: the batch mean folded into the rate.
_SGD_CHANGE = """
    real wd = decay ? (real)hp[HP_WEIGHT_DECAY] : (real)0;
    real change = (real)(hp[HP_LR] * (double)inv_rows) * g + (real)hp[HP_LR] * wd * *p;
"""
_SGD_RULE = _SGD_CHANGE + """
    *p -= change;
"""
_MOMENTUM_RULE = _SGD_CHANGE + """
    real mu = (real)HP(0);
    real v = mu * *s1 - change;
    *s1 = v;
    *p += v;
"""
_NESTEROV_RULE = _SGD_CHANGE + """
    real mu = (real)HP(0);
    real v = mu * *s1 - change;
    *s1 = v;
    *p += mu * v;
    *p -= change;
"""


class Adam(Optimizer):
    """Adam (Kingma & Ba): per-parameter step sizes from running moments of the gradient."""

    name = "adam"
    help = "Adam (Kingma & Ba): per-parameter steps from running moments of the gradient"
    hyper_parameters = (
        HyperParameter("beta1", 0.9, "Adam's decay rate β₁ of the gradient's running mean, "
                       "in [0, 1)", _decay_rate),
        HyperParameter("beta2", 0.999, "Adam's decay rate β₂ of the squared gradient's "
                       "running mean, in [0, 1)", _decay_rate),
        HyperParameter("epsilon", 1e-8, "Adam's ε, added to the root of the second moment "
                       "(> 0)", _positive),
    )
    beta1: float
    beta2: float
    epsilon: float

    def __init__(self, params: list, backend: Any, **options: Any):
        super().__init__(params, backend, **options)
        self.m = [self.xp.zeros_like(p) for p in params]
        self.v = [self.xp.zeros_like(p) for p in params]

    def update(self, grads: list, scale: float) -> None:
        b1, b2, wd, t = self.beta1, self.beta2, self.weight_decay, self.t
        # Bias corrections folded into the step size (Kingma & Ba, section 2); ``** 0.5``, not
        # math.sqrt, so that a traced step count (JAX's compiled step) flows through.
        step = self.learning_rate * (1.0 - b2 ** t) ** 0.5 / (1.0 - b1 ** t)
        eps_hat = self.epsilon * (1.0 - b2 ** t) ** 0.5
        xp, write, params = self.xp, self.write, self.params
        for i, g in enumerate(grads):
            p = params[i]
            g = g * scale if scale != 1.0 else g
            if wd and p.ndim == 2:
                g = g + wd * p
            m = self.m[i] = write.add(write.multiply(self.m[i], b1), (1.0 - b1) * g)
            v = self.v[i] = write.add(write.multiply(self.v[i], b2), (1.0 - b2) * (g * g))
            params[i] = write.subtract(p, step * m / (xp.sqrt(v) + eps_hat))

    def state_arrays(self) -> dict[str, Any]:
        out = {f"m.{i}": m for i, m in enumerate(self.m)}
        out.update({f"v.{i}": v for i, v in enumerate(self.v)})
        return out

    def load_state(self, arrays: dict[str, Any], scalars: dict[str, Any]) -> None:
        super().load_state(arrays, scalars)
        n = len(self.params)
        self.m = [arrays[f"m.{i}"] for i in range(n)]
        self.v = [arrays[f"v.{i}"] for i in range(n)]

    def kernel_rule(self) -> KernelRule:
        return KernelRule("adam", _ADAM_RULE, (self.beta1, self.beta2, self.epsilon), states=2)

    def kernel_state(self, index: int) -> tuple[Any, ...]:
        return (self.m[index], self.v[index])


_ADAM_RULE = """
    real wd = decay ? (real)hp[HP_WEIGHT_DECAY] : (real)0;
    double b1 = HP(0), b2 = HP(1);
    double corr = sqrt(1.0 - pow(b2, (double)t));
    real step = (real)(hp[HP_LR] * corr / (1.0 - pow(b1, (double)t)));
    real eps_hat = (real)(HP(2) * corr);
    g = g * inv_rows + wd * *p;
    real m = (real)b1 * *s1 + (real)(1.0 - b1) * g;
    real v = (real)b2 * *s2 + (real)(1.0 - b2) * (g * g);
    *s1 = m;
    *s2 = v;
    *p -= step * m / (sqrt(v) + eps_hat);
"""

class LBFGS(Optimizer):
    """L-BFGS over the whole training set (Nocedal & Wright, chapter 7): each epoch is one
    iteration, a quasi-Newton direction from the last ``history`` steps and a line search
    satisfying the strong Wolfe conditions (:mod:`portamlp.training.lbfgs`).

    It minimises the mean cost plus ``½·weight_decay·Σ‖W‖²`` (the decay on weight matrices, not
    biases: the gradient SGD follows). The learning rate is not used: the line search chooses
    each step. It stops before ``epochs`` when the largest gradient component is at most
    ``gtol``, when the relative decrease of the objective is at most ``ftol``, or once the cost
    and gradient have been evaluated more than ``max_fun`` times (as SciPy's L-BFGS-B, which
    scikit-learn uses, does); :meth:`scalars` says which. The memory is not saved in
    checkpoints: a resumed run starts it afresh.
    """

    name = "lbfgs"
    help = "L-BFGS over the whole training set (each epoch one iteration; no learning rate)"
    full_batch = True
    hyper_parameters = (
        HyperParameter("history", 10, "the steps remembered for its curvature (>= 1)",
                       _count, kind="int"),
        HyperParameter("max_fun", 15000, "stop after this many evaluations of the cost "
                       "and gradient (>= 1)", _count, kind="int"),
        HyperParameter("gtol", 1e-5, "stop when every gradient component is at most "
                       "this (>= 0)", _non_negative),
        HyperParameter("ftol", 2.220446049250313e-09, "stop when the objective falls "
                       "by at most this, relative to it (>= 0)", _non_negative),
    )
    history: int
    max_fun: int
    gtol: float
    ftol: float

    def __init__(self, params: list, backend: Any, **options: Any):
        super().__init__(params, backend, **options)
        from .lbfgs import LBFGS as Minimizer

        self.minimizer = Minimizer(self.xp, history=self.history, max_fun=self.max_fun,
                                   gtol=self.gtol, ftol=self.ftol)
        #: Why the last iteration stopped the run ("" while it goes on).
        self.reason = ""

    def update(self, grads: list, scale: float) -> None:
        raise TypeError("optimizer 'lbfgs' is full-batch: it takes iterate(evaluate, scale) "
                        "once per epoch, not step(grads, scale)")

    def iterate(self, evaluate: Callable[[], tuple[Any, list]], scale: float) -> tuple[Any, bool]:
        from .lbfgs import flatten, unflatten

        xp, params, wd = self.xp, self.params, self.weight_decay
        shapes = [tuple(p.shape) for p in params]
        decayed = [p.ndim == 2 for p in params]

        def objective(vector):
            params[:] = unflatten(xp, vector, shapes)
            cost, grads = evaluate()
            f, grads = cost * scale, [g * scale for g in grads]
            if wd:
                f = f + 0.5 * wd * sum(xp.sum(p * p) for p, d in zip(params, decayed) if d)
                grads = [g + wd * p if d else g for g, p, d in zip(grads, params, decayed)]
            return f, flatten(xp, grads)

        self.t += 1
        vector, reason = self.minimizer.iterate(flatten(xp, params), objective)
        params[:] = unflatten(xp, vector, shapes)
        self.reason = reason or ""
        f = self.minimizer.f
        if wd:
            f -= 0.5 * wd * sum(float(xp.sum(p * p)) for p, d in zip(params, decayed) if d)
        return f / scale, reason is not None

    def scalars(self) -> dict[str, Any]:
        return {"t": self.t, "evaluations": self.minimizer.n_fun, "reason": self.reason}

    def load_state(self, arrays: dict[str, Any], scalars: dict[str, Any]) -> None:
        super().load_state(arrays, scalars)
        self.minimizer.reset()


def _check(entry: Any) -> None:
    """An optimizer that could not work is refused when it is registered."""
    if not (isinstance(entry, type) and issubclass(entry, Optimizer)):
        raise TypeError(f"an optimizer entry is a subclass of portamlp's Optimizer, got "
                        f"{entry!r}")
    for hp in entry.hyper_parameters:
        if not isinstance(hp, HyperParameter):
            raise TypeError(f"optimizer {entry.name!r}: hyper_parameters holds "
                            f"HyperParameter entries, got {hp!r}")
        hp.check(hp.name, hp.default)  # the default must pass its own check
    if entry.full_batch and entry.iterate is Optimizer.iterate:
        raise TypeError(f"optimizer {entry.name!r} is full_batch but does not define "
                        "iterate(evaluate, scale)")
    if not entry.full_batch and entry.update is Optimizer.update:
        raise TypeError(f"optimizer {entry.name!r} does not define update(grads, scale)")


#: The optimizers, by name.
OPTIMIZERS: Registry[type[Optimizer]] = Registry("optimizer", (SGD, Adam, LBFGS), check=_check)


def hyper_parameters(optimizer: str | type[Optimizer], given: dict[str, Any]) -> dict[str, Any]:
    """The hyper-parameters of ``optimizer``: ``given`` checked, defaults for the others.

    A name that another registered optimizer declares is refused with the optimizer it
    belongs to; an unknown name with a suggestion.
    """
    cls = OPTIMIZERS.lookup(optimizer) if isinstance(optimizer, str) else optimizer
    own = {hp.name: hp for hp in cls.hyper_parameters}
    for name in given:
        if name in own:
            continue
        owners = [o.name for o in OPTIMIZERS.values()
                  if any(hp.name == name for hp in o.hyper_parameters)]
        if owners:
            raise ValueError(f"{name}={given[name]!r} applies to optimizer={owners[0]!r}, not "
                             f"optimizer={cls.name!r}" + (f" (whose hyper-parameters are "
                                                          f"{sorted(own)})" if own else ""))
        from ..checks import suggestion

        raise TypeError(f"optimizer {cls.name!r} has no hyper-parameter {name!r}"
                        f"{suggestion(name, own)}; its hyper-parameters are {sorted(own)}")
    values = {name: hp.check(name, given[name]) if name in given else hp.default
              for name, hp in own.items()}
    cls.check(values)
    return values


def make_optimizer(name: str, params: list, backend: Any, *, learning_rate: float,
                   weight_decay: float = 0.0, **hyper: Any) -> Optimizer:
    """Build the optimizer called ``name`` over ``params`` (the network's parameter list)."""
    cls = OPTIMIZERS.lookup(name)
    return cls(params, backend, learning_rate=learning_rate, weight_decay=weight_decay,
               **hyper_parameters(cls, hyper))


def apply_max_norm(backend: Any, params: list, max_norm: float) -> None:
    """Scale each row of each weight matrix (a unit's incoming weights; the even items of the
    parameter list) down to norm ``max_norm`` if it is longer (Srivastava et al.'s max-norm
    constraint), written through the backend's helper."""
    xp, write = backend.xp, backend.writes
    for i in range(0, len(params), 2):
        w = params[i]
        norms = xp.sqrt(xp.sum(w * w, axis=1, keepdims=True))
        params[i] = write.multiply(w, xp.minimum(max_norm / xp.maximum(norms, max_norm * 1e-12),
                                                 1.0))
