"""Fast training steps: a backend's own compiled version of the mini-batch step.

The portable Array-API step stays the reference; a fast step does the same mathematics in the
way its backend runs fastest, and the tests compare the two. Today CuPy has one
(:mod:`portamlp.fast.cuda`): at small batches a GPU step is dozens of tiny kernel launches,
each costing more host time than its arithmetic, so the fast step does a whole step in
``3 × layers`` hand-written kernels — forward with bias and activation fused, the output error
with the cost, the backward error, and the gradient fused with the optimizer update — with no
cuBLAS, cuRAND or allocation inside, so ``graph_steps`` of them are captured once into a CUDA
graph and replayed. The epoch's permutation is uploaded before the replays and the batches are
gathered inside the kernels. For large steps (wide layers, big batches; see
:func:`uses_graphs`) the products go to cuBLAS instead, with the bias and activation, the
derivative and the optimizer update each fused into one elementwise kernel around them.

The kernels' mathematics comes from the registries (:mod:`portamlp.fast.source`): each
activation, cost and optimizer entry carries its own kernel code, and a run whose activation,
cost or optimizer has none takes the portable step (``fast_path="on"`` says why).

``fast_path="auto"`` (the default) uses a fast step where it applies (see :func:`blockers`),
``"on"`` insists (an error says why it cannot), ``"off"`` keeps the portable step. This module
holds the host-side logic, testable anywhere; the backend's module imports its library.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

__all__ = ["FAST_PATH_MODES", "GRAPH_STEPS", "MAX_STEP_FLOPS", "FAST_STEPS",
           "HYPER_PARAMETERS", "blockers", "step_flops", "uses_graphs", "EpochPlan",
           "plan_epoch", "wanted", "hyper_parameters", "new_fast_epoch"]

#: Values of the ``fast_path`` option.
FAST_PATH_MODES = ("auto", "on", "off")
#: Mini-batch steps captured into one CUDA graph.
GRAPH_STEPS = 100
#: Above this many floating-point operations per step the arithmetic dominates the launch
#: overhead: the fast step then uses cuBLAS for the products (no graph capture, which cuBLAS
#: refuses under CuPy) and keeps its fused elementwise kernels.
MAX_STEP_FLOPS = 2e9
#: The backends that have a fast step, and the module holding its ``FastEpoch``.
FAST_STEPS = {"cupy": "portamlp.fast.cuda", "jax": "portamlp.fast.xla"}
#: The fast steps generated from the entries' kernel code (the others compile the portable
#: step itself, so every activation, cost and optimizer runs on them).
KERNEL_CODE = ("cupy",)
#: The first slots of the hyper-parameter vector the kernels read (set once per epoch); the
#: optimizer rule's own values follow (``HP(i)`` in its code).
HYPER_PARAMETERS = ("learning_rate", "weight_decay", "step0")


def step_flops(layers, batch_size: int) -> float:
    """Floating-point operations of one training step (forward, weight and input gradients)."""
    products = [a * b for a, b in zip(layers[:-1], layers[1:])]
    return 2.0 * batch_size * (2 * sum(products) + sum(products[1:]))


def blockers(network: Any, optimizer: Any, config: Any, *, sample_weight: bool = False,
             processes: int = 1, sparse: bool = False) -> list[str]:
    """Why no fast step can train this run (an empty list: one can).

    ``network``, ``optimizer`` and ``config`` are the run's :class:`~portamlp.Network`,
    optimizer and :class:`~portamlp.TrainConfig`.
    """
    from ..nn.activations import get_activation
    from ..nn.costs import get_cost

    out = []
    backend = network.backend.name
    if backend not in FAST_STEPS:
        out.append(f"it needs the {' or '.join(_names(FAST_STEPS))} backend (this run uses "
                   f"{backend})")
    if backend not in FAST_STEPS or backend in KERNEL_CODE:
        activation = get_activation(network.activation)
        if not activation.has_kernel:
            out.append(f"activation {activation.name!r} has no kernel code "
                       "(Activation.kernel_f)")
        cost = get_cost(network.cost)
        if cost.kernel_row is None:
            out.append(f"cost {cost.name!r} has no kernel code (Cost.kernel_row)")
        if optimizer.kernel_rule() is None:
            out.append(f"optimizer {optimizer.name!r} has no kernel code "
                       "(Optimizer.kernel_rule)")
    if optimizer.full_batch:
        out.append(f"optimizer {optimizer.name!r} iterates over the whole training set, not "
                   "in mini-batch steps")
    if config.dropout or config.input_dropout:
        out.append("dropout is not in the fast step")
    if config.max_norm is not None:
        out.append("max_norm is not in the fast step")
    if config.distortions.active:
        out.append("distortions are not in the fast step")
    if sample_weight:
        out.append("sample_weight is not in the fast step")
    if sparse:
        out.append("sparse x is not in the fast step")
    if processes > 1:
        out.append("distributed training is not in the fast step")
    return out


def _names(steps: dict[str, str]) -> list[str]:
    return [{"cupy": "CuPy", "jax": "JAX"}.get(name, name) for name in steps]


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


def hyper_parameters(opt, first_batch: int = 0) -> list[float]:
    """The kernels' hyper-parameter vector for an epoch of ``opt`` that starts at step
    ``first_batch``: :data:`HYPER_PARAMETERS`, then the optimizer rule's own values. The
    kernels count steps as ``step0 + step + 1``."""
    rule = opt.kernel_rule()
    return [float(opt.learning_rate), float(opt.weight_decay), float(opt.t - first_batch),
            *(float(v) for v in rule.values)]


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
    """The fast step of ``net``'s backend for this run (imports its library)."""
    module = importlib.import_module(FAST_STEPS[net.backend.name])
    return module.FastEpoch(net, opt, data, cfg)
