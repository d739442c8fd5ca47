"""nk.solve: closed forms, SciPy agreement, convergence orders, both paths."""
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import nodekit as nk
from nodekit.validation.cases import all_cases

from problems import COSGROWTH, LINEAR, LV, LV_THETA, LV_Y0, VDP, cosgrowth_py, lv_py, vdp_py

ADAPTIVE = [m for m, tab in nk.EXPLICIT_METHODS.items() if tab.is_adaptive]
FIXED = [m for m, tab in nk.EXPLICIT_METHODS.items() if not tab.is_adaptive]


# --- closed forms ------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(all_cases()))
@pytest.mark.parametrize("method", ADAPTIVE)
def test_closed_form_error_falls_with_tolerance(name, method):
    case = all_cases()[name]
    ts = np.linspace(*case.t_span, 7)
    exact = case.exact(ts)
    errors, nfevs = [], []
    # a 2nd-order pair needs ~1e5 steps for 1e-10: stop it earlier
    tols = (1e-4, 1e-7, 1e-10) if nk.get_tableau(method).order > 2 else (1e-3, 1e-5, 1e-7)
    for tol in tols:
        sol = nk.solve(case.fun(), case.y0, ts, case.theta, method=method, rtol=tol,
                       atol=tol)
        assert sol.success, sol.message
        errors.append(np.max(np.abs(sol.y - exact)))
        nfevs.append(sol.nfev)
    # Figure 3a shape: error controlled by the tolerance, paid for in NFE
    assert errors[2] < errors[0] or errors[0] < 1e-12
    assert nfevs[0] <= nfevs[1] <= nfevs[2]
    assert errors[2] < 1e4 * tols[2] * max(1.0, np.max(np.abs(exact)))


@pytest.mark.parametrize("name", sorted(all_cases()))
def test_decreasing_time_matches_closed_form(name):
    case = all_cases()[name]
    ts = np.linspace(case.t_span[1], case.t_span[0], 6)
    y_end = case.exact(np.array(case.t_span))[-1]
    sol = nk.solve(case.fun(), y_end, ts, case.theta, rtol=1e-10, atol=1e-12)
    assert sol.success
    np.testing.assert_allclose(sol.y, case.exact(ts, y0=y_end), rtol=1e-7, atol=1e-9)


# --- convergence orders ------------------------------------------------------
def _fitted_order(method):
    case = all_cases()["nonautonomous growth"]
    tab = nk.get_tableau(method)
    T = 2.0
    exact = case.exact(np.array([0.0, T]))[-1, 0]
    hs, errs = [], []
    # the asymptotic range: errors well above round-off, below pre-asymptotic
    for N in np.unique(np.round(4 * 2 ** np.arange(0, 12, 0.5)).astype(int)):
        h = T / N
        sol = nk.solve(case.fun(), case.y0, [0.0, T], case.theta, method=method,
                       step_size=h)
        err = abs(sol.y[-1, 0] - exact)
        if 1e-12 < err < 10.0 ** -min(2 + tab.order, 7):
            hs.append(h)
            errs.append(err)
        if err < 1e-12:
            break
    assert len(hs) >= 3, (method, hs, errs)
    return np.polyfit(np.log(hs), np.log(errs), 1)[0], tab.order


@pytest.mark.parametrize("method", sorted(nk.EXPLICIT_METHODS))
def test_convergence_order(method):
    slope, order = _fitted_order(method)
    assert abs(slope - order) < 0.2, (method, slope, order)


# --- SciPy agreement ---------------------------------------------------------
def _lv_scipy(t, y):
    return lv_py(t, y, LV_THETA)


def _vdp_scipy(t, y):
    return vdp_py(t, y, [2.0])


PROBLEMS = {
    "lotka-volterra": (LV, _lv_scipy, LV_Y0, LV_THETA, (0.0, 20.0)),
    "van der pol": (VDP, _vdp_scipy, np.array([2.0, 0.0]), np.array([2.0]), (0.0, 10.0)),
    "spiral": (LINEAR, lambda t, y: np.array([[-0.1, 2.0], [-2.0, -0.1]]) @ y,
               np.array([2.0, 0.0]), np.array([-0.1, 2.0, -2.0, -0.1]), (0.0, 10.0)),
}


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("method,scipy_method", [("dopri5", "RK45"), ("dop853", "DOP853"),
                                                 ("bosh3", "RK23")])
@pytest.mark.parametrize("rtol", [1e-5, 1e-8])
def test_agrees_with_solve_ivp(problem, method, scipy_method, rtol):
    ode, f, y0, theta, span = PROBLEMS[problem]
    ts = np.linspace(*span, 50)
    atol = rtol * 1e-2
    ref = solve_ivp(f, span, y0, method=scipy_method, t_eval=ts, rtol=rtol, atol=atol)
    steps = solve_ivp(f, span, y0, method=scipy_method, rtol=rtol, atol=atol)
    sol = nk.solve(ode, y0, ts, theta, method=method, rtol=rtol, atol=atol)
    assert sol.success
    # the same algorithm: the same steps (SciPy evaluates f(t+h) on every
    # attempted step, nodekit only on accepted ones: it is the next first stage)
    assert abs(sol.naccept - (steps.t.size - 1)) <= 2
    scipy_attempts = (steps.nfev - 2) // _stages(method)
    assert abs(sol.nsteps - scipy_attempts) <= 2
    tight = solve_ivp(f, span, y0, method="DOP853", t_eval=ts, rtol=1e-13, atol=1e-13)
    scale = np.max(np.abs(tight.y))
    err_nk = np.max(np.abs(sol.y - tight.y.T)) / scale
    err_sp = np.max(np.abs(ref.y.T - tight.y.T)) / scale
    assert err_nk <= 3 * err_sp + 1e-12


def _stages(method):
    tab = nk.get_tableau(method)
    return tab.n_stages - 1 if tab.fsal else tab.n_stages


def test_step_sequence_matches_scipy_rk45():
    ode, f, y0, theta, span = PROBLEMS["lotka-volterra"]
    ts = np.linspace(*span, 200)
    ref = solve_ivp(f, span, y0, method="RK45", rtol=1e-8, atol=1e-10)  # steps as t
    sol = nk.solve(ode, y0, ts, theta, rtol=1e-8, atol=1e-10, dense=True)
    t_steps = np.append(sol.dense.t_grid, span[1])
    assert t_steps.size == ref.t.size
    # identical up to the rounding of the error estimate's cancelling sum
    np.testing.assert_allclose(t_steps, ref.t, rtol=1e-6)
    assert sol.nfev == ref.nfev


# --- compiled vs Python path -------------------------------------------------
@pytest.mark.parametrize("method", ["dopri5", "dop853", "tsit5", "rk4", "heun_euler"])
def test_compiled_and_python_paths_agree(method):
    ts = np.linspace(0.0, 15.0, 40)
    kw = dict(method=method, rtol=1e-7, atol=1e-9, step_size=0.01 if method == "rk4" else None)
    a = nk.solve(LV, LV_Y0, ts, LV_THETA, **kw)
    b = nk.solve(lv_py, LV_Y0, ts, LV_THETA, **kw)
    assert (a.nfev, a.nsteps, a.naccept, a.nreject) == (b.nfev, b.nsteps, b.naccept, b.nreject)
    np.testing.assert_allclose(a.y, b.y, rtol=1e-12, atol=1e-14)


def test_nonautonomous_compiled_matches_closed_form():
    ts = np.linspace(0.0, 6.0, 30)
    sol = nk.solve(COSGROWTH, [1.0, 2.0], ts, [1.5], rtol=1e-10, atol=1e-12)
    exact = np.exp(1.5 * np.sin(ts))[:, None] * np.array([1.0, 2.0])
    np.testing.assert_allclose(sol.y, exact, rtol=1e-8)
    sol_py = nk.solve(cosgrowth_py, [1.0, 2.0], ts, [1.5], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sol.y, sol_py.y, rtol=1e-13)


# --- shapes, batches, outputs, dense -----------------------------------------
def test_batched_state_is_solved_jointly():
    y0 = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    M = np.array([[-0.1, 2.0], [-2.0, -0.1]])
    ts = np.linspace(0.0, 3.0, 11)
    sol = nk.solve(lambda t, y, th: y @ M.T, y0, ts, rtol=1e-10, atol=1e-12)
    assert sol.y.shape == (11, 3, 2)
    spiral = all_cases()["linear spiral"]
    for b in range(3):
        np.testing.assert_allclose(sol.y[:, b], spiral.exact(ts, y0=y0[b]), atol=1e-8)


def test_output_times_do_not_change_steps():
    span = (0.0, 20.0)
    few = nk.solve(LV, LV_Y0, np.linspace(*span, 2), LV_THETA, rtol=1e-8, atol=1e-10)
    many = nk.solve(LV, LV_Y0, np.linspace(*span, 500), LV_THETA, rtol=1e-8, atol=1e-10)
    assert few.nsteps == many.nsteps and few.nfev == many.nfev
    np.testing.assert_array_equal(few.y[-1], many.y[-1])


@pytest.mark.parametrize("method", ADAPTIVE)
def test_dense_output_interpolates_accurately(method):
    case = all_cases()["linear spiral"]
    tol = 1e-9 if nk.get_tableau(method).order > 2 else 1e-6
    sol = nk.solve(case.fun(), case.y0, [0.0, 10.0], case.theta, method=method,
                   rtol=tol, atol=tol * 1e-2, dense=True)
    tq = np.linspace(0.0, 10.0, 333)
    err = np.max(np.abs(sol(tq) - case.exact(tq)))
    assert err < 1e4 * tol
    np.testing.assert_allclose(sol(10.0), sol.y[-1], rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="span"):
        sol(11.0)


def test_dense_output_matches_outputs_at_same_times():
    ts = np.linspace(0.0, 20.0, 77)
    sol = nk.solve(LV, LV_Y0, ts, LV_THETA, rtol=1e-8, atol=1e-10, dense=True,
                   method="dop853")
    np.testing.assert_allclose(sol(ts), sol.y, rtol=1e-12, atol=1e-13)


def test_per_component_tolerances():
    ts = np.linspace(0.0, 5.0, 5)
    loose = nk.solve(LV, LV_Y0, ts, LV_THETA, rtol=[1e-3, 1e-3], atol=1e-6)
    tight = nk.solve(LV, LV_Y0, ts, LV_THETA, rtol=[1e-3, 1e-9], atol=1e-12)
    assert tight.nsteps > loose.nsteps


def test_pi_controller_option():
    ts = np.linspace(0.0, 20.0, 5)
    sol = nk.solve(LV, LV_Y0, ts, LV_THETA, rtol=1e-8, atol=1e-10,
                   controller=nk.PIController(icoeff=0.3, pcoeff=0.4))
    ref = nk.solve(LV, LV_Y0, ts, LV_THETA, rtol=1e-8, atol=1e-10)
    assert sol.success and sol.nsteps != ref.nsteps
    np.testing.assert_allclose(sol.y, ref.y, rtol=1e-5)


def test_solution_repr_and_fields():
    sol = nk.solve(LV, LV_Y0, [0.0, 1.0], LV_THETA)
    assert "dopri5" in repr(sol) and sol.success and sol.status == 0
    assert sol.naccept + sol.nreject == sol.nsteps
