"""JAX's fast step, compiled by XLA: the portable step itself, a whole epoch in one program.

Nothing here re-implements the mathematics. The mini-batch step is the portable step itself —
:meth:`portamlp.Network.backprop` and the optimizer's :meth:`~portamlp.training.optimizers.
Optimizer.step`, Array-API code that writes through the backend's write-through helper —
called with JAX tracers in place of the network's parameters and the optimizer's state, so
that it becomes a pure function ``(parameters, state, batch, rate, step) -> (parameters',
state', cost)``. ``jax.lax.scan`` runs it over the epoch's mini-batches (gathered from the
staged data by the epoch's permutation, inside the program), and ``jax.jit`` compiles the
epoch once: Python runs once per epoch, not once per mini-batch. A last, shorter mini-batch is
one more compiled step.

The learning rate and the step count are arguments of the program (Python numbers, so JAX
treats them as weakly typed and keeps the parameters' dtype), so a schedule that changes the
rate every epoch does not recompile it. The programs for a run's shapes are compiled when the
run starts (:attr:`FastEpoch.compile_seconds`), so an epoch's time is training time; a
resumed epoch that starts mid-way compiles one for its remaining steps.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

__all__ = ["FastEpoch"]


class FastEpoch:
    """Runs epochs of a training run as compiled JAX programs (see the module docstring).

    ``net``, ``opt`` and ``data`` are the run's network, optimizer and staged training split;
    after each program the network's parameter list and the optimizer's state hold its results,
    as after the portable step.
    """

    def __init__(self, net, opt, data, cfg):
        import jax

        self.jax = jax
        self.net, self.opt, self.data, self.cfg = net, opt, data, cfg
        self.batch = cfg.batch_size
        self._epochs: dict[int, Any] = {}  # compiled epoch programs, by their number of steps
        self._step = jax.jit(self._pure_step, donate_argnums=(0, 1))
        self._costs: list[Any] = []
        #: Seconds spent compiling (when the run starts, and for a resumed partial epoch).
        self.compile_seconds = 0.0
        n = len(data)
        if n // self.batch:
            self._epoch_program(n // self.batch)
        if n % self.batch:
            self._compiled_step(n % self.batch)

    # -- the pure step: the portable code, run on tracers
    def _pure_step(self, params: list, state: dict, xb: Any, tb: Any, rate: Any, t: Any):
        """One portable step as a pure function: the network's parameter list and the
        optimizer's state are swapped for ``params`` and ``state`` while it runs, then put
        back."""
        net, opt = self.net, self.opt
        own = net.parameters()
        kept_params, kept_state = list(own), opt.state_arrays()
        kept_t, kept_rate = opt.t, opt.learning_rate
        try:
            own[:] = params
            opt.load_state(state, {"t": 0})
            opt.t, opt.learning_rate = t, rate
            cost, grads = net.backprop(xb, tb)
            opt.step(grads, 1.0 / xb.shape[0])
            return list(own), opt.state_arrays(), cost
        finally:
            own[:] = kept_params
            opt.load_state(kept_state, {"t": 0})
            opt.t, opt.learning_rate = kept_t, kept_rate

    def _epoch(self, params: list, state: dict, x: Any, targets: Any, index: Any, rate: Any,
               t: Any):
        """``index.shape[0]`` steps over the rows ``index[i]`` (one scan)."""
        jnp, lax = self.jax.numpy, self.jax.lax

        def body(carry, rows):
            params, state, t = carry
            xb, tb = jnp.take(x, rows, axis=0), jnp.take(targets, rows, axis=0)
            params, state, cost = self._pure_step(params, state, xb, tb, rate, t)
            return (params, state, t + 1), cost

        (params, state, _), costs = lax.scan(body, (params, state, t), index)
        return params, state, costs

    # -- compiling
    def _arguments(self, steps: int, rows: int):
        """Abstract arguments of a program of ``steps`` steps of ``rows`` rows."""
        sds = self.jax.ShapeDtypeStruct
        params = [sds(p.shape, p.dtype) for p in self.net.parameters()]
        state = {k: sds(v.shape, v.dtype) for k, v in self.opt.state_arrays().items()}
        return params, state, sds((steps, rows), self._index_dtype())

    def _index_dtype(self):
        return self.jax.numpy.asarray(np.zeros(1, dtype=np.int64)).dtype

    def _epoch_program(self, steps: int):
        if steps not in self._epochs:
            start = time.perf_counter()
            params, state, index = self._arguments(steps, self.batch)
            jitted = self.jax.jit(self._epoch, donate_argnums=(0, 1))
            self._epochs[steps] = jitted.lower(params, state, self.data.x, self.data.targets,
                                               index, 0.0, 0).compile()
            self.compile_seconds += time.perf_counter() - start
        return self._epochs[steps]

    def _compiled_step(self, rows: int):
        key = -rows  # single steps, by their rows
        if key not in self._epochs:
            start = time.perf_counter()
            params, state, _ = self._arguments(1, rows)
            sds = self.jax.ShapeDtypeStruct
            x, targets = self.data.x, self.data.targets
            self._epochs[key] = self._step.lower(
                params, state, sds((rows, x.shape[1]), x.dtype),
                sds((rows, targets.shape[1]), targets.dtype), 0.0, 0).compile()
            self.compile_seconds += time.perf_counter() - start
        return self._epochs[key]

    # -- running
    def run(self, order: np.ndarray, first_batch: int = 0):
        """Run an epoch (from step ``first_batch``) over the rows in ``order``; yields the number
        of steps done after the epoch's program and after its last, shorter step. The
        optimizer's step count follows."""
        jnp, device = self.jax.numpy, self.net.backend.device
        n, batch = len(self.data), self.batch
        full = n // batch
        rate, opt = float(self.opt.learning_rate), self.opt
        self._costs = []
        done = first_batch
        if done < full:
            steps = full - done
            index = self.jax.device_put(
                jnp.asarray(np.ascontiguousarray(order[done * batch:full * batch])
                            .reshape(steps, batch)), device)
            program = self._epoch_program(steps)
            params, state, costs = program(list(self.net.parameters()), opt.state_arrays(),
                                           self.data.x, self.data.targets, index, rate, opt.t)
            self._keep(params, state, costs)
            opt.advance(steps)
            done = full
            yield done
        if n % batch and done == full:
            rows = self.jax.device_put(jnp.asarray(np.ascontiguousarray(order[full * batch:])),
                                       device)
            xb, tb = jnp.take(self.data.x, rows, axis=0), jnp.take(self.data.targets, rows, axis=0)
            params, state, cost = self._compiled_step(n % batch)(
                list(self.net.parameters()), opt.state_arrays(), xb, tb, rate, opt.t)
            self._keep(params, state, jnp.reshape(cost, (1,)))
            opt.advance(1)
            done += 1
            yield done

    def _keep(self, params: list, state: dict, costs: Any) -> None:
        """The program's results become the network's parameters and the optimizer's state."""
        self.net.parameters()[:] = params
        if state:
            self.opt.load_state(state, self.opt.scalars())
        self._costs.append(costs)

    def cost_vector(self, first_batch: int, done: int):
        """The raw costs of the steps run since :meth:`run` started (``first_batch`` to
        ``done``), as one device vector."""
        jnp = self.jax.numpy
        if not self._costs:
            return jnp.zeros((0,), dtype=self.data.x.dtype)
        return jnp.concat(self._costs) if len(self._costs) > 1 else self._costs[0]
