"""The fast step on CuPy: static buffers, the kernels of ``kernels.cu`` (with the mathematics
of :mod:`portamlp.fast.source`), and one CUDA graph of :data:`~portamlp.fast.GRAPH_STEPS` steps
replayed across each epoch.

Nothing global changes: the work runs on a stream of its own, ordered after the caller's current
stream by an event at the start of an epoch and before it by another at the end (no host
synchronisation), and every buffer is allocated before the capture from CuPy's usual pool.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import fast
from ..backends import native_library
from ..errors import PortamlpWarning, warn
from ..nn.costs import get_cost
from . import hyper_parameters, plan_epoch, uses_graphs
from .source import IDENTITY, activation_codes, cost_codes, kernel_source

__all__ = ["FastEpoch"]

cupy = native_library("cupy")

_THREADS = 256
_MODULES: dict[tuple[str, int], Any] = {}


def _module(source: str) -> Any:
    """The compiled kernels of ``source`` on the current device (compiled once per process)."""
    key = (source, cupy.cuda.Device().id)
    if key not in _MODULES:
        module = cupy.RawModule(code=source, options=("--std=c++14",))
        module.compile()
        _MODULES[key] = module
    return _MODULES[key]


def _blocks(threads: int) -> tuple[int]:
    return (max(1, -(-threads // _THREADS)),)


class FastEpoch:
    """Runs epochs of a training run with the fast step (see :mod:`portamlp.fast`).

    ``net``, ``opt`` and ``data`` are the run's network, optimizer and staged training split;
    their arrays are updated in place, exactly as the portable step updates them.
    """

    def __init__(self, net, opt, data, cfg):
        self.net, self.opt, self.data, self.cfg = net, opt, data, cfg
        self.batch = cfg.batch_size
        self.graph_steps = fast.GRAPH_STEPS  # read here, so a test can change it
        self.dtype = net.dtype
        self.rule = opt.kernel_rule()
        source = kernel_source(self.dtype, self.rule)
        with net.backend.activate():
            self.kernels = {name: _module(source).get_function(name) for name in
                            ("forward_layer", "output_delta", "backward_delta", "update_layer",
                             "advance", "bias_activation", "times_derivative", "apply_update")}
            real = cupy.float32 if self.dtype == "float32" else cupy.float64
            self.real = real
            n = len(data)
            self.x = cupy.ascontiguousarray(data.x)
            self.labels = cupy.ascontiguousarray(data.labels, dtype=cupy.int64)
            self.perm = cupy.zeros(n, dtype=cupy.int64)
            self.ctr = cupy.zeros(2, dtype=cupy.int64)
            self.hp = cupy.zeros(len(hyper_parameters(opt)), dtype=cupy.float64)
            self.costs = cupy.zeros(-(-n // self.batch), dtype=real)
            widths = net.layers[1:]
            self.acts = [cupy.zeros((self.batch, w), dtype=real) for w in widths]
            self.deltas = [cupy.zeros((self.batch, w), dtype=real) for w in widths]
            self.dummy = cupy.zeros(1, dtype=real)
            #: small steps: hand-written kernels in CUDA graphs; large: cuBLAS products
            self.graphs = uses_graphs(net.layers, self.batch)
            if not self.graphs:  # the gathered batch and the gradients of the products
                self.xb = cupy.zeros((self.batch, net.layers[0]), dtype=real)
                self.grads = [(cupy.zeros_like(w), cupy.zeros_like(b))
                              for w, b in zip(net.weights, net.biases)]
            self.stream = cupy.cuda.Stream(non_blocking=True)
        self.graph = None
        self.graph_key: tuple = ()
        #: capture full steps into a CUDA graph (False: launch every step's kernels directly)
        self.capture = True
        self.tiny = float(np.finfo(self.dtype).tiny)
        codes = activation_codes()
        self.act = codes[net.activation]
        cost = get_cost(net.cost)
        self.output_act = codes[IDENTITY] if cost.kernel_output == "identity" else self.act
        self.cost = cost_codes()[cost.name]

    # -- state the kernels update in place
    def _state(self) -> list[tuple]:
        """Per layer: (W, b, W state 1, W state 2, b state 1, b state 2), the optimizer rule's
        state buffers, or a one-element dummy where it keeps fewer than two."""
        opt, params, dummy = self.opt, self.net.parameters(), self.dummy

        def two(index):
            held = tuple(opt.kernel_state(index))[:2]
            return held + (dummy,) * (2 - len(held))

        out = []
        for l in range(len(params) // 2):
            out.append((params[2 * l], params[2 * l + 1], *two(2 * l), *two(2 * l + 1)))
        for arrays in out:
            for a in arrays:
                if not a.flags.c_contiguous:
                    raise ValueError("the fast step needs C-contiguous parameters and optimizer "
                                     "state; use fast_path='off'")
        return out

    # -- the kernels of `count` steps of `rows` rows, then the counters moved on
    def _launch_steps(self, count: int, rows: int, state: list[tuple]) -> None:
        k_fwd, k_out, k_back, k_upd, k_adv = (self.kernels[n] for n in (
            "forward_layer", "output_delta", "backward_delta", "update_layer", "advance"))
        real, layers = self.real, self.net.layers
        n_layers = len(layers) - 1
        act = self.act
        i32, i64 = np.int32, np.int64
        inv_rows = real(1.0 / rows)
        for k in range(count):
            rel = i64(k * rows)
            for l in range(n_layers):
                n_in, n_out = layers[l], layers[l + 1]
                w, b = state[l][0], state[l][1]
                src = self.x if l == 0 else self.acts[l - 1]
                layer_act = self.output_act if l == n_layers - 1 else act
                k_fwd(_blocks(rows * n_out * 32), (_THREADS,),
                      (src, i32(l == 0), self.perm, self.ctr, rel, w, b, self.acts[l], i32(rows),
                       i32(n_in), i32(n_out), i32(layer_act)))
            k_out((1,), (_THREADS,),
                  (self.acts[-1], self.labels, self.perm, self.ctr, rel, i32(k), self.deltas[-1],
                   self.costs, i32(rows), i32(layers[-1]), i32(self.cost), i32(act),
                   real(self.tiny)), shared_mem=_THREADS * np.dtype(real).itemsize)
            for l in range(n_layers - 1, -1, -1):
                n_in, n_out = layers[l], layers[l + 1]
                w, b, w1, w2, b1, b2 = state[l]
                if l:
                    k_back(_blocks(rows * n_in), (_THREADS,),
                           (self.deltas[l], w, self.acts[l - 1], self.deltas[l - 1], i32(rows),
                            i32(n_out), i32(n_in), i32(act)))
                src = self.x if l == 0 else self.acts[l - 1]
                k_upd(_blocks(n_out * n_in + n_out), (_THREADS,),
                      (self.deltas[l], src, i32(l == 0), self.perm, self.ctr, rel, i32(k), w, b,
                       w1, w2, b1, b2, i32(rows), i32(n_out), i32(n_in), inv_rows, self.hp))
        k_adv((1,), (1,), (self.ctr, i64(count * rows), i64(count)))

    def _launch_large_step(self, first_row: int, rows: int, state: list[tuple]) -> None:
        """One step with cuBLAS products (CuPy's matmul into the step's buffers) and fused
        elementwise kernels, for rows ``first_row:first_row + rows`` of the permutation."""
        kernels, real, layers = self.kernels, self.real, self.net.layers
        n_layers = len(layers) - 1
        act = self.act
        i32, i64 = np.int32, np.int64
        grid = (min(4096, max(1, -(-rows * max(layers[1:]) // _THREADS))),)
        xb = self.xb[:rows]
        cupy.take(self.x, self.perm[first_row:first_row + rows], axis=0, out=xb)
        inputs = [xb] + [a[:rows] for a in self.acts[:-1]]
        for l in range(n_layers):
            w, b = state[l][0], state[l][1]
            z = self.acts[l][:rows]
            cupy.matmul(inputs[l], w.T, out=z)
            layer_act = self.output_act if l == n_layers - 1 else act
            kernels["bias_activation"](grid, (_THREADS,), (z, b, i64(z.size), i32(layers[l + 1]),
                                                           i32(layer_act)))
        kernels["output_delta"]((1,), (_THREADS,),
                                (self.acts[-1], self.labels, self.perm, self.ctr, i64(0), i32(0),
                                 self.deltas[-1], self.costs, i32(rows), i32(layers[-1]),
                                 i32(self.cost), i32(act), real(self.tiny)),
                                shared_mem=_THREADS * np.dtype(real).itemsize)
        inv_rows = real(1.0 / rows)
        for l in range(n_layers - 1, -1, -1):
            w, b, w1, w2, b1, b2 = state[l]
            d = self.deltas[l][:rows]
            if l:  # the error of the layer below, from the weights before their update
                below = self.deltas[l - 1][:rows]
                cupy.matmul(d, w, out=below)
                kernels["times_derivative"](grid, (_THREADS,), (below, inputs[l],
                                                                i64(below.size), i32(act)))
            gw, gb = self.grads[l]
            cupy.matmul(d.T, inputs[l], out=gw)
            cupy.sum(d, axis=0, out=gb)
            for p, g, s1, s2, decay in ((w, gw, w1, w2, 1), (b, gb, b1, b2, 0)):
                kernels["apply_update"](
                    (min(4096, max(1, -(-p.size // _THREADS))),), (_THREADS,),
                    (p, g, s1, s2, i64(p.size), inv_rows, self.hp, self.ctr, i32(0),
                     i32(decay), i32(self.rule.states)))
        kernels["advance"]((1,), (1,), (self.ctr, i64(rows), i64(1)))

    def _captured(self, steps: int, state: list[tuple]):
        """The graph of ``steps`` full steps, captured again when a buffer has moved; None
        (with a warning, once) where this CuPy or driver cannot capture one."""
        key = (steps, *(a.data.ptr for layer in state for a in layer))
        if self.graph is None or key != self.graph_key:
            try:
                self.stream.begin_capture()
                try:
                    self._launch_steps(steps, self.batch, state)
                finally:
                    graph = self.stream.end_capture()
            except Exception as exc:  # the launches themselves are checked eagerly next
                self.capture = False
                warn(PortamlpWarning(f"the fast step could not capture a CUDA graph "
                                     f"({type(exc).__name__}: {exc}); it launches its kernels "
                                     "one by one instead"))
                return None
            self.graph, self.graph_key = graph, key
        return self.graph

    # -- one epoch
    def run(self, order: np.ndarray, first_batch: int = 0):
        """Run an epoch (from step ``first_batch``) over the rows in ``order``; yields the number
        of steps done after each group of launches, so the caller can show progress and stop
        at a step boundary. The optimizer's step count (Adam) follows.

        The caller's code between the yields runs on its own stream, ordered after the steps.
        """
        plan = plan_epoch(len(self.data), self.batch, first_batch, self.graph_steps)
        with self.net.backend.activate():
            caller = cupy.cuda.get_current_stream()
            self._after(caller, self.stream)
            with self.stream:
                self.perm.set(np.ascontiguousarray(order, dtype=np.int64))
                self.ctr.set(np.array([first_batch * self.batch, first_batch], dtype=np.int64))
                self.hp.set(np.array(hyper_parameters(self.opt, first_batch)))
            state = self._state()
        groups = [(plan.graph_steps, self.batch, self.capture)] * plan.replays
        if plan.eager_steps:
            groups.append((plan.eager_steps, self.batch, False))
        if plan.last_rows:
            groups.append((1, plan.last_rows, False))
        if not self.graphs:  # one step at a time
            groups = [(1, rows, False) for steps, rows, _ in groups for _ in range(steps)]
        done = first_batch
        for steps, rows, captured in groups:
            with self.net.backend.activate():
                with self.stream:
                    graph = self._captured(steps, state) if captured else None
                    if graph is not None:
                        graph.launch(self.stream)
                    elif self.graphs:
                        self._launch_steps(steps, rows, state)
                    else:
                        self._launch_large_step(done * self.batch, rows, state)
                self._after(self.stream, caller)
            done += steps
            self._count(steps)
            yield done

    @staticmethod
    def _after(first, then) -> None:
        """Make stream ``then`` wait for the work queued so far on ``first`` (no host wait)."""
        event = cupy.cuda.Event(disable_timing=True)
        event.record(first)
        then.wait_event(event)

    def _count(self, steps: int) -> None:
        self.opt.advance(steps)

    def cost_vector(self, first_batch: int, done: int):
        """The raw costs of steps ``first_batch`` to ``done`` of the epoch (a device copy)."""
        with self.net.backend.activate():
            return self.costs[first_batch:done].copy()

