"""The fast training step of the CuPy backend: whole mini-batch steps as fused kernels, K steps
captured into one CUDA graph and replayed across the epoch.

At small batches a GPU step is dozens of tiny kernel launches, each costing more host time than
its arithmetic; the portable Array-API step then leaves the GPU idle most of the time. The fast
step does the same mathematics (the portable step stays the reference and the tests compare
the two) in ``3 × layers`` hand-written kernels per step — forward with bias and activation
fused, the output error with the loss, the backward error, and the gradient fused with the
optimizer update — with no cuBLAS, cuRAND or allocation inside, so ``graph_steps`` of them are
captured once and replayed. The epoch's permutation is uploaded before the replays and the
batches are gathered inside the kernels. For large steps (wide layers, big batches; see
:func:`uses_graphs`) the products go to cuBLAS instead, with the bias and activation, the
derivative and the optimizer update each fused into one elementwise kernel around them.

``fast_path="auto"`` (the default) uses it where it applies (see :func:`blockers`), ``"on"``
insists (an error says why it cannot), ``"off"`` keeps the portable step. This module holds the
host-side logic, testable anywhere; :mod:`portamlp.fast.cuda` imports CuPy and runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["FAST_PATH_MODES", "GRAPH_STEPS", "MAX_STEP_FLOPS", "ACTIVATION_CODES",
           "OPTIMIZER_CODES", "HYPER_PARAMETERS", "blockers", "step_flops", "uses_graphs",
           "EpochPlan", "plan_epoch", "wanted", "hyper_parameters", "optimizer_code"]

#: Values of the ``fast_path`` option.
FAST_PATH_MODES = ("auto", "on", "off")
#: Mini-batch steps captured into one CUDA graph.
GRAPH_STEPS = 100
#: Above this many floating-point operations per step the arithmetic dominates the launch
#: overhead: the fast step then uses cuBLAS for the products (no graph capture, which cuBLAS
#: refuses under CuPy) and keeps its fused elementwise kernels.
MAX_STEP_FLOPS = 2e9

# The codes the kernels (kernels.cu, its #defines) know things by; a test holds the two equal.
#: Activation of a layer: the hidden ones, and the identity (z) of a softmax output layer.
ACTIVATION_CODES = {"sigmoid": 0, "relu": 1, "leaky_relu": 2, "tanh": 3, "identity": 4}
#: The update rule of the optimizer.
OPTIMIZER_CODES = {"sgd": 0, "momentum": 1, "nesterov": 2, "adam": 3}
#: The slots of the hyper-parameter vector the kernels read (set once per epoch).
HYPER_PARAMETERS = ("lr", "momentum", "weight_decay", "beta1", "beta2", "eps", "adam_t0")


def step_flops(layers, batch_size: int) -> float:
    """Floating-point operations of one training step (forward, weight and input gradients)."""
    products = [a * b for a, b in zip(layers[:-1], layers[1:])]
    return 2.0 * batch_size * (2 * sum(products) + sum(products[1:]))


def blockers(*, backend: str, layers, batch_size: int, dropout: float = 0.0,
             input_dropout: float = 0.0, max_norm: float | None = None,
             sample_weight: bool = False, processes: int = 1) -> list[str]:
    """Why the fast step cannot run this training (an empty list: it can)."""
    out = []
    if backend != "cupy":
        out.append(f"it needs the CuPy backend (this run uses {backend})")
    if dropout or input_dropout:
        out.append("dropout is not in the fast step")
    if max_norm is not None:
        out.append("max_norm is not in the fast step")
    if sample_weight:
        out.append("sample_weight is not in the fast step")
    if processes > 1:
        out.append("distributed training is not in the fast step")
    return out


def uses_graphs(layers, batch_size: int) -> bool:
    """Whether the fast step runs as hand-written kernels captured in CUDA graphs (small steps,
    where launch overhead dominates), else as cuBLAS products with fused elementwise kernels
    around them (large steps, where the products dominate)."""
    return step_flops(layers, batch_size) <= MAX_STEP_FLOPS


def wanted(mode: str, reasons: list[str]) -> bool:
    """Whether to use the fast step under ``fast_path=mode``; raises for ``"on"`` when it
    cannot run, naming why."""
    if mode == "off":
        return False
    if reasons and mode == "on":
        raise ValueError("fast_path='on' cannot be honoured: " + "; ".join(reasons)
                         + ". Use fast_path='auto' to fall back to the portable step")
    return not reasons


def optimizer_code(opt) -> int:
    """The kernels' code of a :mod:`portamlp.optim` optimizer's update rule."""
    if hasattr(opt, "beta1"):
        return OPTIMIZER_CODES["adam"]
    if not opt.momentum:
        return OPTIMIZER_CODES["sgd"]
    return OPTIMIZER_CODES["nesterov" if opt.nesterov else "momentum"]


def hyper_parameters(opt, first_batch: int = 0) -> list[float]:
    """The values of :data:`HYPER_PARAMETERS` for an epoch of ``opt`` that starts at step
    ``first_batch`` (the kernels count Adam's steps as ``adam_t0 + step + 1``)."""
    adam = hasattr(opt, "beta1")
    values = {"lr": opt.learning_rate, "momentum": getattr(opt, "momentum", 0.0),
              "weight_decay": opt.weight_decay,
              "beta1": opt.beta1 if adam else 0.0, "beta2": opt.beta2 if adam else 0.0,
              "eps": opt.eps if adam else 0.0,
              "adam_t0": float(opt.t - first_batch) if adam else 0.0}
    return [float(values[name]) for name in HYPER_PARAMETERS]


@dataclass(frozen=True)
class EpochPlan:
    """How an epoch's steps run: ``replays`` launches of the captured ``graph_steps``-step
    graph, then ``eager_steps`` full steps launched one by one, then a last step of
    ``last_rows`` rows when the batch size does not divide the rows (0: none)."""

    graph_steps: int
    replays: int
    eager_steps: int
    last_rows: int

    @property
    def steps(self) -> int:
        return self.replays * self.graph_steps + self.eager_steps + (1 if self.last_rows else 0)


def plan_epoch(n_rows: int, batch_size: int, first_batch: int = 0,
               graph_steps: int = GRAPH_STEPS) -> EpochPlan:
    """The plan of an epoch over ``n_rows`` rows starting at step ``first_batch`` (a resumed
    epoch skips the steps already done)."""
    full = max(0, n_rows // batch_size - first_batch)
    last = n_rows % batch_size
    k = max(1, min(graph_steps, full))
    return EpochPlan(graph_steps=k, replays=full // k, eager_steps=full % k, last_rows=last)


def new_fast_epoch(net, opt, data, cfg) -> Any:
    """A :class:`portamlp.fast.cuda.FastEpoch` for this run (imports CuPy)."""
    from .cuda import FastEpoch

    return FastEpoch(net, opt, data, cfg)
