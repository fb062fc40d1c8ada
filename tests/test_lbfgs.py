"""The L-BFGS minimiser (portamlp.training.lbfgs) on every backend: it reaches known minimisers
about as fast as SciPy's L-BFGS-B, every step it takes satisfies the strong Wolfe conditions,
each stop reason is reached by its stated rule, and the arrays keep their dtype and device."""

import numpy as np
import pytest
import scipy.optimize

from portamlp.backends import to_numpy
from portamlp.training.lbfgs import LBFGS, WOLFE_C1, WOLFE_C2, flatten, unflatten


def rosenbrock(xp):
    """The n-dimensional Rosenbrock function and its gradient, written in ``xp``."""
    def fun(x):
        a, b = x[:-1], x[1:]
        r = b - a * a
        zero = xp.zeros((1,), dtype=x.dtype, device=x.device)
        g = (xp.concat([-400.0 * a * r - 2.0 * (1.0 - a), zero])
             + xp.concat([zero, 200.0 * r]))
        return xp.sum(100.0 * r * r + (1.0 - a) ** 2), g
    return fun


def quadratic(backend, n=20, dtype="float64", seed=0):
    """½xᵀAx − bᵀx with A symmetric positive definite: (fun, solution on the host)."""
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((n, n))
    a_host, b_host = m.T @ m / n + np.eye(n), rng.standard_normal(n)
    xp, a, b = backend.xp, backend.asarray(a_host, dtype), backend.asarray(b_host, dtype)

    def fun(x):
        ax = xp.sum(a * x, axis=1)
        return 0.5 * xp.sum(x * ax) - xp.sum(b * x), ax - b
    return fun, np.linalg.solve(a_host, b_host)


def recorded(fun):
    """``fun`` that also keeps every point and objective it was asked for (on the host)."""
    def call(x):
        f, g = fun(x)
        call.points.append(to_numpy(x))
        call.values.append(float(f))
        return f, g
    call.points, call.values = [], []
    return call


def minimise(solver, x, fun, limit=10000):
    """Iterate until a stop reason: (x, reason, [(x, x_new, reason) per iteration])."""
    steps = []
    for _ in range(limit):
        x_new, reason = solver.iterate(x, fun)
        steps.append((x, x_new, reason))
        x = x_new
        if reason is not None:
            return x, reason, steps
    raise AssertionError("no stop reason")


def start(n):
    return np.array([-1.2, 1.0] * (n // 2))


@pytest.mark.parametrize("n", [2, 10])
def test_rosenbrock_like_scipy(backend, n):
    x0 = backend.asarray(start(n), "float64")
    solver = LBFGS(backend.xp)
    x, reason, _ = minimise(solver, x0, rosenbrock(backend.xp))
    ref = scipy.optimize.minimize(scipy.optimize.rosen, start(n), jac=scipy.optimize.rosen_der,
                                  method="L-BFGS-B")
    assert ref.success
    # both stop on the same tests: a small projected gradient or a small relative reduction
    assert reason in ("gradient", "ftol")
    np.testing.assert_allclose(to_numpy(x), np.ones(n), atol=1e-5)
    assert solver.n_iter <= 2 * ref.nit + 10
    assert solver.n_fun <= 2 * ref.nfev + 10
    assert x.dtype == x0.dtype and x.device == x0.device
    assert solver.f == pytest.approx(scipy.optimize.rosen(to_numpy(x)), abs=1e-12)


def test_quadratic_float64_to_the_gradient_test(backend):
    fun, solution = quadratic(backend)
    x0 = backend.asarray(np.zeros(20), "float64")
    solver = LBFGS(backend.xp, ftol=0.0)
    x, reason, _ = minimise(solver, x0, fun)
    assert reason == "gradient"
    _, g = fun(x)
    assert np.abs(to_numpy(g)).max() <= 1e-5
    np.testing.assert_allclose(to_numpy(x), solution, atol=1e-4)
    assert solver.n_iter < 60


def test_quadratic_float32(backend):
    fun, solution = quadratic(backend, dtype="float32")
    x0 = backend.asarray(np.zeros(20), "float32")
    solver = LBFGS(backend.xp)
    x, reason, steps = minimise(solver, x0, fun)
    assert reason is not None
    np.testing.assert_allclose(to_numpy(x), solution, atol=1e-3)
    for _, after, _ in steps:
        assert after.dtype == x0.dtype and after.device == x0.device


def test_already_at_the_minimum_does_not_move(backend):
    fun, solution = quadratic(backend)
    x0 = backend.asarray(solution, "float64")
    solver = LBFGS(backend.xp)
    x, reason = solver.iterate(x0, fun)
    assert reason == "gradient" and x is x0
    assert (solver.n_fun, solver.n_iter) == (1, 0)


def test_every_step_satisfies_the_strong_wolfe_conditions(backend):
    n = 10
    x, solver = backend.asarray(start(n), "float64"), LBFGS(backend.xp, ftol=0.0)
    _, reason, steps = minimise(solver, x, rosenbrock(backend.xp))
    assert reason == "gradient"
    for before, after, why in steps:
        if why is not None:
            continue
        x0, x1 = to_numpy(before), to_numpy(after)
        s = x1 - x0  # = αd, so the conditions on φ(α) read with s in place of αd
        f0, f1 = scipy.optimize.rosen(x0), scipy.optimize.rosen(x1)
        slope0, slope1 = scipy.optimize.rosen_der(x0) @ s, scipy.optimize.rosen_der(x1) @ s
        assert slope0 < 0
        assert f1 <= f0 + WOLFE_C1 * slope0 + 1e-12 * abs(f0)
        assert abs(slope1) <= WOLFE_C2 * abs(slope0) * (1 + 1e-9)


def test_the_relative_reduction_stops_by_its_rule(backend):
    fun = recorded(rosenbrock(backend.xp))
    solver, ftol = LBFGS(backend.xp, ftol=1e-2), 1e-2
    x, reason, steps = minimise(solver, backend.asarray(start(10), "float64"), fun)
    assert reason == "ftol"
    values = [scipy.optimize.rosen(to_numpy(after)) for _, after, _ in steps]
    values.insert(0, fun.values[0])
    reductions = [(a - b) / max(abs(a), abs(b), 1.0) for a, b in zip(values, values[1:])]
    assert reductions[-1] <= ftol
    assert all(r > ftol for r in reductions[:-1])
    assert solver.f == pytest.approx(values[-1])


@pytest.mark.parametrize("max_fun", [1, 2, 7, 30, 33])
def test_max_fun_stops_after_one_evaluation_more(backend, max_fun):
    """The rule: stop as soon as more than max_fun evaluations were made, inside a line search
    too, so n_fun == max_fun + 1; the point returned is never worse than the one before."""
    fun = recorded(rosenbrock(backend.xp))
    solver = LBFGS(backend.xp, max_fun=max_fun)
    x, reason, steps = minimise(solver, backend.asarray(start(10), "float64"), fun)
    assert reason == "max_fun"
    assert solver.n_fun == len(fun.values) == max_fun + 1
    assert solver.f <= fun.values[0]
    assert solver.f == pytest.approx(scipy.optimize.rosen(to_numpy(x)))
    assert solver.f == min(fun.values)


def test_a_failed_line_search_returns_the_start_when_nothing_is_better(backend):
    """A constant objective whose gradient says it descends: no step has sufficient
    decrease, and the search gives up after max_line_search evaluations, where it began."""
    xp = backend.xp
    direction = backend.asarray(np.array([1.0, -2.0, 0.5]), "float64")

    def fun(x):
        return xp.sum(x * 0.0) + 3.0, direction

    x0 = backend.asarray(np.array([0.5, 1.0, -1.0]), "float64")
    solver = LBFGS(backend.xp, max_line_search=7)
    x, reason = solver.iterate(x0, fun)
    assert reason == "line search"
    assert solver.n_fun == 1 + 7
    np.testing.assert_array_equal(to_numpy(x), to_numpy(x0))
    assert solver.f == 3.0


def test_a_failed_line_search_returns_the_best_point_seen(backend):
    """‖x‖² with a constant (wrong) gradient: φ' never shrinks, so the curvature condition
    never holds; the search returns the lowest point it evaluated, below the start."""
    xp = backend.xp
    c = backend.asarray(np.array([1.0, 2.0]), "float64")
    fun = recorded(lambda x: (xp.sum(x * x), c))
    x0 = backend.asarray(np.array([3.0, 4.0]), "float64")
    solver = LBFGS(backend.xp)
    x, reason = solver.iterate(x0, fun)
    assert reason == "line search"
    assert solver.n_fun == 1 + solver.max_line_search
    assert solver.f == min(fun.values) < fun.values[0]
    assert float(np.sum(to_numpy(x) ** 2)) == solver.f
    assert x.device == x0.device and x.dtype == x0.dtype
    best = solver.f
    x_again, _ = solver.iterate(x, fun)  # the history is dropped; it goes on from x
    assert float(np.sum(to_numpy(x_again) ** 2)) == solver.f <= best


def test_reset_evaluates_again(backend):
    fun = recorded(rosenbrock(backend.xp))
    solver = LBFGS(backend.xp)
    x = backend.asarray(start(2), "float64")
    x, _ = solver.iterate(x, fun)
    n = solver.n_fun
    x_host = to_numpy(x)
    x, _ = solver.iterate(x, fun)
    assert len(fun.points) == solver.n_fun > n
    assert not any(np.array_equal(p, x_host) for p in fun.points[n:])  # cached, not re-evaluated
    solver.reset()
    before = solver.n_fun
    solver.iterate(x, fun)
    np.testing.assert_array_equal(fun.points[before], to_numpy(x))


def test_flatten_and_unflatten_round_trip(backend):
    rng = np.random.default_rng(1)
    shapes = [(3, 4), (4,), (4, 2), (2,)]
    arrays = [backend.asarray(rng.standard_normal(s), "float32") for s in shapes]
    vector = flatten(backend.xp, arrays)
    assert vector.shape == (12 + 4 + 8 + 2,)
    assert vector.dtype == arrays[0].dtype and vector.device == arrays[0].device
    back = unflatten(backend.xp, vector, shapes)
    for a, b in zip(arrays, back):
        assert tuple(b.shape) == tuple(a.shape) and b.device == a.device
        np.testing.assert_array_equal(to_numpy(b), to_numpy(a))
    with pytest.raises(ValueError, match="does not hold"):
        unflatten(backend.xp, vector, shapes[:2])
    with pytest.raises(ValueError, match="empty"):
        flatten(backend.xp, [])


def test_an_ascent_direction_starts_again_from_minus_the_gradient(backend):
    """A history that would give an ascent direction (negative curvature, which the curvature
    guard keeps out) is dropped, and the step goes along -g."""
    fun = recorded(rosenbrock(backend.xp))
    solver = LBFGS(backend.xp)
    x, _ = solver.iterate(backend.asarray(start(2), "float64"), fun)
    g = to_numpy(fun(x)[1])
    s = backend.asarray(np.array([-g[1], g[0]]), "float64")  # ⟂ g
    solver._pairs.clear()
    solver._pairs.append((s, s, 1.0 / float(np.sum(g * g))))
    solver._gamma = -1.0  # H g = -g for g ⟂ s: d = g, an ascent direction
    f = solver.f
    x_new, reason = solver.iterate(x, fun)
    assert reason is None and solver.f < f
    assert len(solver._pairs) <= 1  # dropped, then at most the new pair


@pytest.mark.filterwarnings("ignore:invalid value encountered in log")
def test_non_finite_values(backend):
    """A non-finite objective where the search starts ends it at once; non-finite values
    during a line search count as too long a step."""
    xp = backend.xp

    def fun(x):  # (x - 10)² where x < 5, NaN beyond
        wall = 0.0 * xp.log(5.0 - x)
        return xp.sum((x - 10.0) ** 2 + wall), 2.0 * (x - 10.0) + wall

    solver = LBFGS(xp)
    x = backend.asarray(np.array([0.0, 1.0]), "float64")
    values = [float(fun(x)[0])]
    for _ in range(5):  # towards the wall, where the line search ends up failing
        x, reason = solver.iterate(x, fun)
        values.append(solver.f)
        assert np.isfinite(to_numpy(x)).all() and np.isfinite(solver.f)
    assert values == sorted(values, reverse=True) and values[-1] < 0.6 * values[0]
    assert reason == "line search"
    solver.reset()
    n_fun = solver.n_fun
    x_bad = backend.asarray(np.array([6.0, 1.0]), "float64")
    x, reason = solver.iterate(x_bad, fun)
    assert reason == "line search" and x is x_bad and solver.n_fun == n_fun + 1


def test_bad_arguments_are_refused(backend):
    solver = LBFGS(backend.xp)
    x = backend.asarray(np.zeros((2, 2)), "float64")
    with pytest.raises(ValueError, match="1-D"):
        solver.iterate(x, rosenbrock(backend.xp))
    x = backend.asarray(np.zeros(3), "float64")
    with pytest.raises(ValueError, match="shape"):
        solver.iterate(x, lambda x: (backend.xp.sum(x), x[:2]))


@pytest.mark.parametrize("option", [{"history": 0}, {"max_fun": 0}, {"gtol": -1.0},
                                    {"max_line_search": 0}, {"ftol": float("nan")}])
def test_options_are_checked(option):
    with pytest.raises(ValueError):
        LBFGS(np, **option)
