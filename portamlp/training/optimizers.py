"""Optimizers: update a network's parameters in place from their gradients.

Every update is written with in-place operators (``p -= ...``) so parameter and state buffers keep
their identity (and, on a GPU, their addresses). L2 ``weight_decay`` adds ``λ·W`` to the gradient of
each weight matrix; biases are not decayed.
"""

from __future__ import annotations

import math
from typing import Any

from ..checks import check_choice

__all__ = ["SGD", "Adam", "make_optimizer", "apply_max_norm", "OPTIMIZERS"]

OPTIMIZERS = ("sgd", "adam")


class SGD:
    """Stochastic gradient descent, with optional (Nesterov) momentum.

    Plain: ``W ← W − η∇``. Momentum ``μ``: ``v ← μv − η∇; W ← W + v``.
    Nesterov: ``v ← μv − η∇; W ← W + μv − η∇``.
    """

    def __init__(self, params: list, xp: Any, *, learning_rate: float, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0):
        self.params = params
        self.xp = xp
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.velocity = [xp.zeros_like(p) for p in params] if momentum else None

    def step(self, grads: list, scale: float = 1.0) -> None:
        """Apply one update; ``grads`` is aligned with ``params`` and multiplied by ``scale``
        (``1/n`` turns gradients summed over a batch of ``n`` into the batch mean)."""
        lr, mu, wd = self.learning_rate, self.momentum, self.weight_decay
        eta = lr * scale
        for i, (p, g) in enumerate(zip(self.params, grads)):
            delta = eta * g  # η∇ (+ ηλW for weight matrices), from the current parameters
            if wd and p.ndim == 2:
                delta = delta + (lr * wd) * p
            if self.velocity is None:
                p -= delta
                continue
            v = self.velocity[i]
            v *= mu
            v -= delta
            if self.nesterov:  # W + μv − η∇ with the new v
                p += mu * v
                p -= delta
            else:
                p += v

    def state_arrays(self) -> dict[str, Any]:
        """The optimizer's state buffers by name (for checkpoints; arrays stay on the device)."""
        return {f"velocity.{i}": v for i, v in enumerate(self.velocity or [])}

    def scalars(self) -> dict[str, Any]:
        return {}

    def load_state(self, arrays: dict[str, Any], scalars: dict[str, Any]) -> None:
        """Restore :meth:`state_arrays` / :meth:`scalars` (arrays already on this device)."""
        if self.velocity is not None:
            self.velocity = [arrays[f"velocity.{i}"] for i in range(len(self.params))]


class Adam:
    """Adam (Kingma & Ba): per-parameter step sizes from running moments of the gradient."""

    def __init__(self, params: list, xp: Any, *, learning_rate: float = 1e-3, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0):
        self.params = params
        self.xp = xp
        self.learning_rate = learning_rate
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.weight_decay = weight_decay
        self.m = [xp.zeros_like(p) for p in params]
        self.v = [xp.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads: list, scale: float = 1.0) -> None:
        """One update from ``grads`` (times ``scale``: ``1/n`` for gradients summed over n)."""
        self.t += 1
        b1, b2, wd = self.beta1, self.beta2, self.weight_decay
        # Bias corrections folded into the step size (Kingma & Ba, section 2).
        step = self.learning_rate * math.sqrt(1.0 - b2 ** self.t) / (1.0 - b1 ** self.t)
        eps_hat = self.eps * math.sqrt(1.0 - b2 ** self.t)
        xp = self.xp
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            g = g * scale if scale != 1.0 else g
            if wd and p.ndim == 2:
                g = g + wd * p
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            p -= step * m / (xp.sqrt(v) + eps_hat)

    def state_arrays(self) -> dict[str, Any]:
        out = {f"m.{i}": m for i, m in enumerate(self.m)}
        out.update({f"v.{i}": v for i, v in enumerate(self.v)})
        return out

    def scalars(self) -> dict[str, Any]:
        return {"t": self.t}

    def load_state(self, arrays: dict[str, Any], scalars: dict[str, Any]) -> None:
        n = len(self.params)
        self.m = [arrays[f"m.{i}"] for i in range(n)]
        self.v = [arrays[f"v.{i}"] for i in range(n)]
        self.t = int(scalars["t"])


def make_optimizer(name: str, params: list, xp: Any, *, learning_rate: float, momentum: float = 0.0,
                   nesterov: bool = False, weight_decay: float = 0.0):
    """Build the optimizer called ``name`` ("sgd" or "adam") over ``params``."""
    name = check_choice("optimizer", name, OPTIMIZERS)
    if name == "sgd":
        return SGD(params, xp, learning_rate=learning_rate, momentum=momentum, nesterov=nesterov,
                   weight_decay=weight_decay)
    if momentum or nesterov:
        raise ValueError("momentum and nesterov apply to optimizer='sgd'; Adam has its own "
                         "moments (beta1, beta2)")
    return Adam(params, xp, learning_rate=learning_rate, weight_decay=weight_decay)


def apply_max_norm(xp: Any, weights: list, max_norm: float) -> None:
    """Scale each row of each weight matrix (a unit's incoming weights) down to norm
    ``max_norm`` if it is longer (Srivastava et al.'s max-norm constraint), in place."""
    for w in weights:
        norms = xp.sqrt(xp.sum(w * w, axis=1, keepdims=True))
        w *= xp.minimum(max_norm / xp.maximum(norms, max_norm * 1e-12), 1.0)
