"""The fast step's CUDA source, assembled from the registries' kernel code.

``kernels.cu`` holds the kernels (forward, output error, backward error, update, and the cuBLAS
variant's elementwise kernels); the mathematics they call comes from the entries:

* ``activate(z, act)`` and ``derivative(a, act)``: a ``switch`` over every activation whose entry
  has kernel code (:attr:`~portamlp.nn.activations.Activation.kernel_f`), in registry order, and
  the identity (the output layer under a softmax cost);
* ``row_cost(cost, out, delta, y, n_out, act, tiny)``: a ``switch`` over the costs with kernel
  code (:attr:`~portamlp.nn.costs.Cost.kernel_row`);
* ``update(p, s1, s2, g, inv_rows, hp, t, decay)``: the run's optimizer rule
  (:class:`~portamlp.training.optimizers.KernelRule`), one per compiled module.

:func:`prelude` is plain C++ apart from ``__device__``: the tests compile it on the host too and
check every entry's kernel code against its Array-API code.
"""

from __future__ import annotations

from importlib import resources

from ..nn.activations import ACTIVATIONS
from ..nn.costs import COSTS

__all__ = ["activation_codes", "cost_codes", "IDENTITY", "prelude", "kernel_source"]

#: The name of the identity among the activation codes.
IDENTITY = "identity"
#: Slots of the hyper-parameter vector (see :data:`portamlp.fast.HYPER_PARAMETERS`).
_HP = """#define HP_LR 0
#define HP_WEIGHT_DECAY 1
#define HP_STEP0 2
#define HP(i) hp[3 + (i)]
"""


def activation_codes() -> dict[str, int]:
    """The kernels' code of each activation that has kernel code, and of the identity (the
    kernels' default case: the ``"identity"`` activation entry, registered or not)."""
    names = [name for name, entry in ACTIVATIONS.items() if entry.has_kernel and name != IDENTITY]
    return {**{name: i for i, name in enumerate(names)}, IDENTITY: len(names)}


def cost_codes() -> dict[str, int]:
    """The kernels' code of each cost that has kernel code."""
    names = [name for name, entry in COSTS.items() if entry.kernel_row is not None]
    return {name: i for i, name in enumerate(names)}


def _activations() -> str:
    codes = activation_codes()
    f = [f"    case {codes[n]}: return {ACTIVATIONS[n].kernel_f};" for n in codes if n != IDENTITY]
    d = [f"    case {codes[n]}: return {ACTIVATIONS[n].kernel_f_prime};"
         for n in codes if n != IDENTITY]
    return ("// sigma(z) of each activation (the identity by default)\n"
            "__device__ __forceinline__ real activate(real z, int act) {\n"
            "    switch (act) {\n" + "\n".join(f) + "\n    default: return z;\n    }\n}\n\n"
            "// sigma'(z), from a = sigma(z) only\n"
            "__device__ __forceinline__ real derivative(real a, int act) {\n"
            "    switch (act) {\n" + "\n".join(d) + "\n    default: return (real)1;\n    }\n}\n")


def _costs() -> str:
    codes = cost_codes()
    parts = []
    for name, code in codes.items():
        parts.append(f"// the {name} cost of one row: its delta, and its raw cost\n"
                     f"__device__ __forceinline__ real row_cost_{code}(const real* out, "
                     f"real* delta, int y, int n_out, int act, real tiny) {{"
                     f"{COSTS[name].kernel_row}}}\n")
    cases = "\n".join(f"    case {code}: return row_cost_{code}(out, delta, y, n_out, act, tiny);"
                      for code in codes.values())
    parts.append("__device__ __forceinline__ real row_cost(int cost, const real* out, "
                 "real* delta, int y, int n_out, int act, real tiny) {\n"
                 f"    switch (cost) {{\n{cases}\n    default: return (real)0;\n    }}\n}}\n")
    return "\n".join(parts)


def _update(rule) -> str:
    return (f"// the {rule.name} update of one parameter\n"
            "__device__ __forceinline__ void update(real* p, real* s1, real* s2, real g, "
            "real inv_rows, const double* hp, long long t, int decay) {"
            f"{rule.code}}}\n")


def prelude(real: str, rule) -> str:
    """The kernels' mathematics for ``real`` ("float" or "double") and the optimizer ``rule``:
    the activation, cost and update functions (see the module docstring)."""
    return (f"#define real {real}\n" + _HP + "\n" + _activations() + "\n" + _costs() + "\n"
            + _update(rule))


def kernel_source(dtype: str, rule) -> str:
    """The whole CUDA source of the fast step for ``dtype`` and the optimizer ``rule``."""
    body = resources.files(__package__).joinpath("kernels.cu").read_text()
    return prelude("float" if dtype == "float32" else "double", rule) + "\n" + body
