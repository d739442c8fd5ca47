"""The compiled loop's interface: named records whose Numba types are exactly
those the loop was compiled for, and a cheap check of what its entry point
would otherwise unbox without looking."""
import numba
import numpy as np
import pytest
from numba import types as nbt

import nodekit as nk
from nodekit import _kernels
from nodekit import integrate as I
from nodekit.tableaux import get_tableau

from problems import LV

TH = np.array([1.5, 1.0, 3.0, 1.0])
T = np.linspace(0.0, 2.0, 5)

_V = nbt.float64[::1]
_M = nbt.float64[:, ::1]
LOOP_TABLEAU_TYPES = (_M, _V, _V, _V, _V, _M, nbt.boolean, nbt.int64, nbt.int64,
                      nbt.boolean, nbt.int64, nbt.int64, nbt.float64)
LOOP_OPTIONS_TYPES = (_V, _V, nbt.int64, _V, nbt.float64, nbt.float64, nbt.int64,
                      nbt.float64, nbt.boolean, nbt.boolean)


def _args(**options):
    """The loop's arguments exactly as ``nk.solve`` builds them."""
    y0 = np.ones(2)
    system = _kernels.OdeSystem(LV.rhs_cfunc, TH)
    opt = I.loop_options(np.full(2, 1e-6), np.full(2, 1e-9), nk.PIController(), **options)
    return (system, y0, T, I.loop_tableau(get_tableau("dopri5")), opt,
            np.full((T.size, 2), np.nan), np.zeros(4))


@pytest.mark.parametrize("options", [{}, {"dense": True, "first_step": 1e-3},
                                     {"step_size": 0.1, "max_steps": 10, "n_err": 1}])
def test_argument_types_match_the_compiled_signature(options):
    args = _args(**options)
    tab, opt = args[3], args[4]
    assert tuple(numba.typeof(tab)) == LOOP_TABLEAU_TYPES
    assert tuple(numba.typeof(opt)) == LOOP_OPTIONS_TYPES
    assert tab._fields == ("A", "C", "B", "E", "E2", "P", "has_e2", "n_stages",
                           "f1_index", "fsal", "error_order", "stiff_stage",
                           "stiff_bound")
    nk.solve(LV, [1.0, 1.0], T, TH)  # compiles (or loads) the loop for ODE systems
    sig = tuple(numba.typeof(a) for a in args)
    assert sig in _kernels.integrate_entry.overloads, (
        f"the loop has no compiled signature {sig}; it has "
        f"{list(_kernels.integrate_entry.overloads)}")


def test_the_entry_returns_every_field_of_the_loop_result_once():
    fields = _kernels.STATS_FIELDS + _kernels.RECORD_FIELDS
    assert sorted(fields) == sorted(_kernels.LoopResult._fields)


@pytest.mark.parametrize("dense", [False, True])
def test_results_are_named_and_equal_the_solution(dense):
    args = _args(dense=dense)
    stats, record = I.run_loop(True, args)
    res = dict(zip(_kernels.STATS_FIELDS, stats))
    sol = nk.solve(LV, [1.0, 1.0], T, TH, dense=dense)
    assert res["status"] == sol.status == 0
    assert (res["nfev"], res["nsteps"], res["naccept"], res["nreject"]) == (
        sol.nfev, sol.nsteps, sol.naccept, sol.nreject)
    assert res["n_out"] == T.size
    np.testing.assert_array_equal(args[5], sol.y)
    if not dense:
        assert record is None and res["n_dense"] == 0  # nothing recorded, nothing boxed
        return
    rec = dict(zip(_kernels.RECORD_FIELDS, record))
    assert res["n_dense"] == sol.naccept == rec["t_grid"].size
    assert rec["K_grid"].shape == (sol.naccept, 7, 2) and rec["event_hits"].size == 0
    for name in ("t_grid", "h_grid", "y_grid", "K_grid"):
        np.testing.assert_array_equal(rec[name], getattr(sol.dense, name))
    # the interpreted loop returns the same fields
    py_stats, py_record = I.run_loop(False, _args(dense=dense))
    assert py_stats[:9] == stats[:9]
    for a, b in zip(py_record, record):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("index, bad, what", [
    (1, np.ones(2, dtype=np.float32), "`y0`"),
    (2, np.linspace(0.0, 2.0, 10)[::2], "`ts`"),
    (5, np.zeros(T.size * 2), "`out`"),
])
def test_arrays_of_another_type_are_refused_before_the_entry_point(index, bad, what):
    args = list(_args())
    args[index] = bad
    with pytest.raises(TypeError, match=what):
        I.run_loop(True, tuple(args))


def test_options_must_be_the_record():
    args = list(_args())
    args[4] = tuple(args[4])  # positional values: exactly what the record prevents
    with pytest.raises(TypeError, match="loop_options"):
        I.run_loop(True, tuple(args))


# ---------------------------------------------------------------------------
# The systems: one named tuple type each, dispatched on the type.
# ---------------------------------------------------------------------------
W1 = np.array([[1.2, 0.7], [0.9, 1.1], [1.0, 1.0]])   # forward states at three stops
W2 = np.array([[0.3, -0.5], [0.25, 0.4], [0.0, 0.1]])  # cotangents at the stops


def _systems():
    """One system of each type, built as the forward and backward passes
    build them, with the state size of each."""
    d = nk.solve(LV, [1.0, 1.0], [0.0, 1.0], TH, dense=True).dense
    return [
        (_kernels.OdeSystem(LV.rhs_cfunc, TH), 2),
        (_kernels.adjoint_system(LV.rhs_cfunc, LV.vjp_cfunc, TH, 2, 4, W1, W2), 8),
        (_kernels.interpolated_system(LV.vjp_cfunc, TH, 2, 4, W2, d.tableau.P, d.t_grid,
                                      d.h_grid, d.y_grid, d.K_grid), 6),
    ]


def _lv_closed_form(x, a):
    """``f``, ``a^T df/dx`` and ``a^T df/dtheta`` of Lotka-Volterra."""
    (u, v), (A, B, C, D) = x, TH
    f = np.array([A * u - B * u * v, -C * v + D * u * v])
    J = np.array([[A - B * v, -B * u], [D * v, -C + D * u]])
    Jth = np.array([[u, -u * v, 0.0, 0.0], [0.0, 0.0, -v, u * v]])
    return f, a @ J, a @ Jth


@numba.njit(cache=True)
def _evaluate_compiled(system, t, y, out):
    return _kernels.evaluate(system, t, y, out)


@pytest.mark.parametrize("kind", [0, 1, 2])
def test_each_system_evaluates_its_own_right_hand_side(kind):
    """Interpreted (the record's method) and compiled (the overload chosen by
    the type) evaluations both give the closed form."""
    system, size = _systems()[kind]
    t = 0.4
    z = np.array([1.3, 0.6, 0.2, -0.7, 0.5, 0.1, -0.3, 0.8])[:size]
    if kind == 0:
        want = _lv_closed_form(z[:2], np.zeros(2))[0]
    elif kind == 1:
        f, ax, ath = _lv_closed_form(z[:2], z[2:4])
        want = np.concatenate([f, -ax, -ath])
    else:
        x = nk.solve(LV, [1.0, 1.0], [0.0, t], TH, rtol=1e-12, atol=1e-12).y[-1]
        _, ax, ath = _lv_closed_form(x, z[:2])
        want = np.concatenate([-ax, -ath])
    for ev in (_kernels.evaluate, _evaluate_compiled):
        out = np.full(size, np.nan)
        assert ev(system, t, z, out) == 0
        np.testing.assert_allclose(out, want, rtol=1e-6 if kind == 2 else 1e-14)


@pytest.mark.parametrize("kind", [0, 1, 2])
def test_each_system_type_has_its_compiled_loop(kind):
    """The loop is compiled once per system type (the Numba type names the
    class), and the compiled and interpreted loops agree bitwise, jumps
    included."""
    ts = np.array([1.0, 0.5, 0.0]) if kind else T
    runs = []
    for compiled in (True, False):
        system, size = _systems()[kind]  # fresh workspaces for each run
        opt = I.loop_options(np.full(size, 1e-8), np.full(size, 1e-10), nk.PIController(),
                             jumps=kind > 0)
        args = (system, np.linspace(0.5, 1.5, size), ts,
                I.loop_tableau(get_tableau("dopri5")), opt,
                np.full((ts.size, size), np.nan), np.zeros(size + 2))
        stats, _ = I.run_loop(compiled, args)
        assert stats[0] == 0
        runs.append((args[5], stats, args[0]))
    sig = tuple(numba.typeof(a) for a in args)
    assert sig in _kernels.integrate_entry.overloads
    assert numba.typeof(system).instance_class is type(system)
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1][:8] == runs[1][1][:8]
    if kind == 1:  # the jumps recorded the drift from W1 at both later stops
        np.testing.assert_array_equal(runs[0][2].drift, runs[1][2].drift)
        assert np.all(runs[0][2].drift[1:] > 0)


@numba.njit(cache=True)
def _call_kernel(kernel, t, y, theta, out):
    return kernel(t, y, theta, out)


@numba.njit(cache=True)
def _same_kernel(kernel):
    return kernel


def test_kernels_reach_compiled_code_by_their_own_address():
    """Every kernel the package builds is a ``Kernel``, typed ``KernelType``:
    compiled code unboxes it from the address it carries, calls that
    address, and boxes it back as the same object."""
    from nodekit._implicit import _no_jac
    from nodekit._kernel_type import Kernel, KernelType
    from nodekit.ode import _no_vjp, events_cfunc

    g = numba.njit(lambda t, y, th: y[0] - 1.0)
    for k in (LV.rhs_cfunc, LV.vjp_cfunc, _no_vjp(), _no_jac(), events_cfunc([g])):
        assert type(k) is Kernel and numba.typeof(k) == KernelType(k._sig)
        assert k.nodekit_address == k.address
        assert _same_kernel(k) is k
    y, out = np.array([1.3, 0.6]), np.full(2, np.nan)
    assert _call_kernel(LV.rhs_cfunc, 0.0, y, TH, out) == 0
    np.testing.assert_allclose(out, _lv_closed_form(y, np.zeros(2))[0], rtol=1e-15)


def test_an_object_without_the_address_is_refused_by_the_entry():
    nk.solve(LV, [1.0, 1.0], T, TH)  # the ODE system's loop exists
    raw = numba.cfunc(LV.rhs_cfunc._sig)(lambda t, y, th, out: 0)  # a plain cfunc
    args = (_kernels.OdeSystem(raw, TH),) + _args()[1:]
    with pytest.raises(AttributeError, match="nodekit_address"):
        I.run_loop(True, args)


def test_systems_name_their_fields():
    assert _kernels.SYSTEMS == (_kernels.OdeSystem, _kernels.AdjointSystem,
                                _kernels.InterpolatedSystem, _kernels.EventSystem)
    ode, adj, interp = (s for s, _ in _systems())
    assert ode._fields == ("rhs", "theta")
    assert (adj.n, adj.p, adj.quadrature) == (2, 4, True)
    assert (interp.n, interp.p, interp.hint.dtype) == (2, 4, np.dtype(np.int64))
    assert numba.typeof(adj.n) == nbt.int64 and numba.typeof(adj.quadrature) == nbt.boolean


@pytest.mark.parametrize("system, what", [
    (lambda: (LV.rhs_cfunc, TH), "OdeSystem, AdjointSystem, InterpolatedSystem"),
    (lambda: _kernels.OdeSystem(LV.rhs_cfunc, TH.astype(np.float32)), "built for"),
    (lambda: _kernels.OdeSystem(LV.rhs_cfunc, np.repeat(TH, 2)[::2]), "built for"),
])
def test_systems_of_another_type_or_layout_are_refused(system, what):
    nk.solve(LV, [1.0, 1.0], T, TH)  # the ODE system's loop exists
    args = (system(),) + _args()[1:]
    with pytest.raises(TypeError, match=what):
        I.run_loop(True, args)


@numba.njit
def _record_all(ts, hs, ys, Ks):
    """Record every row through the compiled record functions (records never
    leave compiled code: their buffers are handed out borrowed)."""
    n, S = ys.shape[1], Ks.shape[1]
    rec = _kernels.new_record(n, S)
    for k in range(ts.size):
        _kernels.record_step(rec, ts[k], hs[k], ys[k], Ks[k])
    return _kernels.stack_record(rec, n, S)


def _record_all_py(ts, hs, ys, Ks):
    n, S = ys.shape[1], Ks.shape[1]
    twins = _kernels._PY
    rec = twins["new_record"](n, S)
    for k in range(ts.size):
        twins["record_step"](rec, ts[k], hs[k], ys[k], Ks[k])
    return twins["stack_record"](rec, n, S)


@pytest.mark.parametrize("record_all", [_record_all, _record_all_py])
@pytest.mark.parametrize("steps", [0, 1, 64, 65, 200])
def test_the_step_record_keeps_every_row_across_growth(record_all, steps):
    """record_step grows its buffers (64 rows, then doubling); stack_record
    returns exactly the rows appended, in order, compiled and interpreted."""
    n, S = 3, 4
    rng = np.random.default_rng(steps)
    ts, hs = 0.5 * np.arange(steps), 0.25 + np.arange(steps)
    ys, Ks = rng.normal(size=(steps, n)), rng.normal(size=(steps, S, n))
    t_grid, h_grid, y_grid, K_grid, count = record_all(ts, hs, ys, Ks)
    assert count == steps
    assert y_grid.shape == (steps, n) and K_grid.shape == (steps, S, n)
    np.testing.assert_array_equal(t_grid, ts)
    np.testing.assert_array_equal(h_grid, hs)
    np.testing.assert_array_equal(y_grid, ys)
    np.testing.assert_array_equal(K_grid, Ks)


def test_a_dense_record_of_many_steps_equals_the_interpreted_loop():
    """The loop body writes its record into borrowed buffers that grow under
    it (replaced every doubling): the record of a 2000-step solve equals the
    interpreted loop's, and so does the dense output."""
    t = np.linspace(0.0, 200.0, 3)
    compiled = nk.solve(LV, [1.0, 1.0], t, np.array([1.5, 1.0, 3.0, 1.0]), rtol=1e-9,
                        atol=1e-11, dense=True)
    assert compiled.nsteps > 1000
    tq = np.linspace(0.0, 200.0, 777)
    py = nk.solve(lambda s, y, th: np.array([th[0] * y[0] - th[1] * y[0] * y[1],
                                             -th[2] * y[1] + th[3] * y[0] * y[1]]),
                  [1.0, 1.0], t, np.array([1.5, 1.0, 3.0, 1.0]), rtol=1e-9, atol=1e-11,
                  dense=True)
    assert py.nsteps == compiled.nsteps
    np.testing.assert_array_equal(compiled.dense.t_grid, py.dense.t_grid)
    np.testing.assert_allclose(compiled.dense.K_grid, py.dense.K_grid, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(compiled.dense(tq), py.dense(tq), rtol=1e-12, atol=1e-12)


@numba.njit
def _below_min_step_compiled(h, t, direction):
    return _kernels.below_min_step(h, t, direction), _kernels.min_step_at(t, direction)


def test_the_cheap_min_step_test_equals_the_exact_one():
    # the loop compares a step with the smallest one t resolves only when a
    # cheap upper bound says it may be below it: the answer must be the same
    tiny = 5e-324
    times = [0.0, tiny, -tiny, 1e-310, 2.0 ** -1022, 1.0, -1.0, 2.0, 3.0, -4.0, 1e16,
             -1e16, 2.0 ** 60, 1e300, np.nextafter(1.0, 0.0), 0.1, -7.5e-200]
    for t in times:
        for direction in (1.0, -1.0):
            _, exact = _below_min_step_compiled(1.0, t, direction)
            assert exact == 10.0 * abs(np.nextafter(t, direction * np.inf) - t)
            hs = [exact, np.nextafter(exact, 0.0), np.nextafter(exact, np.inf), exact * 0.5,
                  exact * 1.05, exact * 1.2, exact * 2.0, exact * 1e3, tiny, 1.0]
            for h in hs:
                below, _ = _below_min_step_compiled(h, t, direction)
                assert below == (h < exact), (h, t, direction)
