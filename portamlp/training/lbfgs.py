"""L-BFGS: a limited-memory quasi-Newton minimiser of a function of one vector, on any backend.

:class:`LBFGS` holds the minimiser's state across iterations (the last ``history`` steps
``s = x_{k+1} - x_k`` and gradient changes ``y = g_{k+1} - g_k``, the objective and gradient
at the current point); each :meth:`LBFGS.iterate` takes one step, as Nocedal & Wright describe
it (*Numerical Optimization*, 2nd ed.):

* the direction ``d = -H g`` by the two-loop recursion (algorithm 7.4) from ``H₀ = γI``,
  ``γ = sᵀy / yᵀy`` of the newest pair (eq. 7.20); a pair is stored only when
  ``sᵀy > ε·yᵀy`` (ε the dtype's machine epsilon), which keeps ``H`` positive definite; if
  ``d`` is not a descent direction the history is dropped and ``d = -g``;
* a step length satisfying the strong Wolfe conditions (``c₁ = 1e-4``, ``c₂ = 0.9``) by
  bracketing and zoom (algorithms 3.5 and 3.6) with safeguarded cubic interpolation (eq. 3.59).
  The first trial is 1, or ``min(1, 1/‖g‖₂)`` when there is no history (L-BFGS-B's start).

Every array operation goes through the namespace ``xp``; the arrays keep the dtype and device
of ``x``. The host reads only the scalars the line search compares: per evaluation the
objective and the directional derivative, per iteration ``gᵀd``, ``sᵀy``, ``yᵀy`` and
``max|g|``. :func:`flatten` and :func:`unflatten` go between a parameter list and one vector.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any

from ..checks import check_float, check_int

__all__ = ["LBFGS", "flatten", "unflatten", "WOLFE_C1", "WOLFE_C2"]

#: The sufficient-decrease constant of the strong Wolfe conditions.
WOLFE_C1 = 1e-4
#: The curvature constant of the strong Wolfe conditions.
WOLFE_C2 = 0.9
#: The largest step length the line search tries.
_MAX_STEP = 1e10


class LBFGS:
    """The L-BFGS minimiser's state across iterations (see the module docstring).

    Parameters
    ----------
    xp : namespace
        The Array API namespace of the vectors.
    history : int
        How many ``(s, y)`` pairs the inverse-Hessian approximation keeps (>= 1).
    max_fun : int
        Stop with ``"max_fun"`` once ``fun`` has been evaluated more than this many times
        (>= 1); a line search stops at that point too, so ``n_fun <= max_fun + 1``.
    gtol : float
        Stop with ``"gradient"`` when ``max|g| <= gtol``.
    ftol : float
        Stop with ``"ftol"`` when ``(f_k - f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= ftol``.
    max_line_search : int
        Evaluations one line search may take (>= 1) before it fails with ``"line search"``.

    Attributes
    ----------
    f : float
        The objective at the current point (NaN before the first evaluation).
    n_fun : int
        Evaluations of ``fun`` so far.
    n_iter : int
        Iterations so far (calls of :meth:`iterate` that ran a line search).
    """

    def __init__(self, xp: Any, *, history: int = 10, max_fun: int = 15000, gtol: float = 1e-5,
                 ftol: float = 2.220446049250313e-09, max_line_search: int = 20):
        self.xp = xp
        self.history = check_int("history", history, minimum=1)
        self.max_fun = check_int("max_fun", max_fun, minimum=1)
        self.gtol = check_float("gtol", gtol, minimum=0.0)
        self.ftol = check_float("ftol", ftol, minimum=0.0)
        self.max_line_search = check_int("max_line_search", max_line_search, minimum=1)
        self.f = math.nan
        self.n_fun = 0
        self.n_iter = 0
        self._g: Any = None  # the gradient at the current point
        self._pairs: deque[tuple[Any, Any, float]] = deque(maxlen=self.history)  # (s, y, 1/sᵀy)
        self._gamma = 1.0

    def reset(self) -> None:
        """Forget the history and the cached objective and gradient (the point was changed
        from outside): the next :meth:`iterate` evaluates ``fun`` at its ``x`` first."""
        self._pairs.clear()
        self._g = None
        self.f = math.nan

    def iterate(self, x: Any, fun: Callable[[Any], tuple[Any, Any]]) -> tuple[Any, str | None]:
        """One L-BFGS iteration from ``x``.

        Parameters
        ----------
        x : array of shape (n,), float32 or float64
            The current point: the one the previous call returned (its objective and gradient
            are cached), or any point on the first call and after :meth:`reset`.
        fun : callable
            ``fun(x) -> (f, g)``: the objective as a 0-d array and its gradient, an array of
            shape (n,) like ``x``.

        Returns
        -------
        x_new : array of shape (n,)
            The new point (``x`` itself when it did not move), same dtype and device.
        reason : str or None
            None to go on, or why to stop: ``"max_fun"`` (more than ``max_fun`` evaluations;
            checked first, as SciPy does), ``"gradient"`` (``max|g| <= gtol`` at ``x_new``,
            also when ``x`` already satisfies it), ``"ftol"`` (relative decrease of ``f`` at
            most ``ftol``), or
            ``"line search"`` (no strong Wolfe step within ``max_line_search`` evaluations,
            or a non-finite objective or gradient at ``x``). After ``"line search"`` or a
            ``"max_fun"`` that interrupted a line search, ``x_new`` is the best point seen,
            never worse than ``x``, and the history is dropped: calling again retries from it
            along ``-g``.
        """
        xp = self.xp
        if getattr(x, "ndim", None) != 1:
            raise ValueError(f"x must be a 1-D array, got shape {getattr(x, 'shape', None)}")
        if self._g is None:
            self.f, self._g = self._evaluate(x, fun)
            if float(xp.max(xp.abs(self._g))) <= self.gtol:
                return x, "gradient"
            if self.n_fun > self.max_fun:
                return x, "max_fun"
        f, g = self.f, self._g
        d = self._direction(g)
        slope = float(xp.sum(g * d))
        if not slope < 0.0:  # not a descent direction (or not finite): start again from -g
            self._pairs.clear()
            d = -g
            slope = -float(xp.sum(g * g))
        if not (math.isfinite(slope) and math.isfinite(f)):
            return x, "line search"
        step = 1.0 if self._pairs else min(1.0, 1.0 / math.sqrt(-slope))
        self.n_iter += 1
        x_new, f_new, g_new, failure = self._line_search(x, f, d, slope, step, fun)
        if failure is not None:
            self._pairs.clear()
            self.f, self._g = f_new, g_new
            return x_new, failure
        s, y = x_new - x, g_new - g
        sy, yy = float(xp.sum(s * y)), float(xp.sum(y * y))
        if sy > float(xp.finfo(x.dtype).eps) * yy:  # curvature guard: H stays positive definite
            self._pairs.append((s, y, 1.0 / sy))
            self._gamma = sy / yy
        self.f, self._g = f_new, g_new
        # the budget first, as SciPy's driver checks it before L-BFGS-B's convergence tests
        if self.n_fun > self.max_fun:
            return x_new, "max_fun"
        if float(xp.max(xp.abs(g_new))) <= self.gtol:
            return x_new, "gradient"
        if (f - f_new) / max(abs(f), abs(f_new), 1.0) <= self.ftol:
            return x_new, "ftol"
        return x_new, None

    def _evaluate(self, x: Any, fun: Callable[[Any], tuple[Any, Any]]) -> tuple[float, Any]:
        """``fun(x)`` counted, as (host float, gradient array)."""
        f, g = fun(x)
        self.n_fun += 1
        if g.shape != x.shape:
            raise ValueError(f"fun(x) returned a gradient of shape {g.shape}; x has {x.shape}")
        return float(f), g

    def _direction(self, g: Any) -> Any:
        """``-H g`` by the two-loop recursion (Nocedal & Wright, algorithm 7.4)."""
        xp, q, alphas = self.xp, g, []
        for s, y, rho in reversed(self._pairs):
            alpha = rho * xp.sum(s * q)  # 0-d: stays on the device
            alphas.append(alpha)
            q = q - alpha * y
        r = self._gamma * q if self._pairs else q
        for (s, y, rho), alpha in zip(self._pairs, reversed(alphas)):
            r = r + (alpha - rho * xp.sum(y * r)) * s
        return -r

    def _line_search(self, x: Any, f: float, d: Any, slope: float, step: float,
                     fun: Callable) -> tuple[Any, float, Any, str | None]:
        """A step along ``d`` satisfying the strong Wolfe conditions: bracketing and zoom
        (Nocedal & Wright, algorithms 3.5 and 3.6) as one loop. Returns ``(x_new, f_new,
        g_new, None)``, or the best point seen (``x`` if none is better) and why it failed."""
        xp = self.xp
        lo = (0.0, f, slope)  # (α, φ(α), φ'(α)): the best step so far satisfying decrease
        hi: tuple[float, float, float] | None = None  # the other end, once bracketed
        best = (x, f, self._g)
        for _ in range(self.max_line_search):
            x_a = x + step * d
            phi, g_a = self._evaluate(x_a, fun)
            dphi = float(xp.sum(g_a * d))
            if phi < best[1]:
                best = (x_a, phi, g_a)
            here = (step, phi, dphi)
            decrease = phi <= f + WOLFE_C1 * step * slope and phi < lo[1]
            if decrease and abs(dphi) <= -WOLFE_C2 * slope:
                return x_a, phi, g_a, None
            if self.n_fun > self.max_fun:
                return (*best, "max_fun")
            if not decrease:
                hi = here  # too long: the minimiser lies between lo and here
            elif hi is None and dphi < 0.0:  # still descending: extrapolate
                if step >= _MAX_STEP:
                    break
                lo, step = here, _extrapolate(lo, here)
                continue
            else:
                if hi is None or dphi * (hi[0] - lo[0]) >= 0.0:
                    hi = lo  # φ rises beyond here, towards hi: the minimiser is before it
                lo = here
            assert hi is not None
            step = _interpolate(lo, hi)
        return (*best, "line search")


def _cubic_minimiser(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    """The minimiser of the cubic through ``(α, φ, φ')`` at two steps (Nocedal & Wright,
    eq. 3.59); NaN if it has none."""
    (a0, fa, da), (b0, fb, db) = a, b
    if a0 == b0:
        return math.nan
    d1 = da + db - 3.0 * (fa - fb) / (a0 - b0)
    discriminant = d1 * d1 - da * db
    if not discriminant >= 0.0:
        return math.nan
    d2 = math.copysign(math.sqrt(discriminant), b0 - a0)
    denominator = db - da + 2.0 * d2
    if denominator == 0.0:
        return math.nan
    return b0 - (b0 - a0) * (db + d2 - d1) / denominator


def _interpolate(lo: tuple[float, float, float], hi: tuple[float, float, float]) -> float:
    """The next trial between the bracket's ends: the cubic's minimiser if it lies in the
    bracket's middle 80%, else the midpoint."""
    left, right = min(lo[0], hi[0]), max(lo[0], hi[0])
    margin = 0.1 * (right - left)
    step = _cubic_minimiser(lo, hi)
    return step if left + margin <= step <= right - margin else 0.5 * (left + right)


def _extrapolate(previous: tuple[float, float, float], current: tuple[float, float, float]
                 ) -> float:
    """The next trial beyond ``current`` while ``φ`` still descends: the cubic's minimiser,
    kept within ``[α + 1.1Δ, α + 4Δ]`` (``Δ`` the last increase), at most the largest step."""
    step, grow = current[0], current[0] - previous[0]
    low, high = step + 1.1 * grow, step + 4.0 * grow
    trial = _cubic_minimiser(previous, current)
    trial = high if math.isnan(trial) else min(max(trial, low), high)
    return min(trial, _MAX_STEP)


def flatten(xp: Any, arrays: list) -> Any:
    """The arrays, reshaped to 1-D and concatenated (same dtype, on their device).

    Parameters
    ----------
    xp : namespace
    arrays : list of arrays of one dtype, at least one

    Returns
    -------
    array of shape (sum of the arrays' sizes,)
    """
    if not arrays:
        raise ValueError("flatten needs at least one array, got an empty list")
    return xp.concat([xp.reshape(a, (-1,)) for a in arrays])


def unflatten(xp: Any, vector: Any, shapes: list[tuple[int, ...]]) -> list:
    """The inverse of :func:`flatten`: consecutive slices of ``vector`` reshaped to ``shapes``.

    Parameters
    ----------
    xp : namespace
    vector : array of shape (n,)
        ``n`` must equal the total size of ``shapes``.
    shapes : list of tuples of int

    Returns
    -------
    list of arrays
        New array objects, one per shape; on libraries with views (NumPy, PyTorch) they may
        share memory with ``vector``.
    """
    sizes = [math.prod(shape) for shape in shapes]
    if vector.ndim != 1 or vector.shape[0] != sum(sizes):
        raise ValueError(f"unflatten: a vector of shape {tuple(vector.shape)} does not hold "
                         f"shapes {shapes} ({sum(sizes)} values)")
    out, start = [], 0
    for shape, size in zip(shapes, sizes):
        out.append(xp.reshape(vector[start:start + size], tuple(shape)))
        start += size
    return out
