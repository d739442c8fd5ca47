"""nk.odeint gradients: closed forms (SymPy), finite differences, every mode and path."""
import autograd
import autograd.numpy as anp
import numba
import numpy as np
import pytest
from autograd.test_util import check_grads

import nodekit as nk
from nodekit.validation.cases import all_cases

from problems import COSGROWTH, LINEAR, LV, LV_THETA, LV_Y0, cosgrowth_py, linear_py, lv_py

MODES = list(nk.adjoint.GRADIENTS)
TIGHT = dict(rtol=1e-10, atol=1e-12)


def _weights(m, n, seed=0):
    return np.random.default_rng(seed).normal(size=(m, n))


def _rel(a, b):
    return np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(1.0, np.max(np.abs(b)))


# --- closed forms --------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(all_cases()))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward-time", "backward-time"])
def test_gradient_matches_closed_form(name, mode, reverse):
    case = all_cases()[name]
    ts = np.linspace(*case.t_span, 6)
    if reverse:
        ts = ts[::-1].copy()
    W = _weights(ts.size, len(case.states))
    y0 = case.exact(np.array(case.t_span))[-1] if reverse else np.array(case.y0)

    def loss(y0, theta, t):
        return anp.sum(W * nk.odeint(case.fun(), y0, t, theta, gradient=mode, **TIGHT))

    g = autograd.grad(loss, (0, 1, 2))(y0, np.array(case.theta), ts)
    exact = case.exact_gradient(ts, W, y0=y0)
    for got, want in zip(g, exact):
        assert _rel(got, want) < 1e-6, (name, mode, got, want)


@pytest.mark.parametrize("mode", MODES)
def test_compiled_linear_system_matches_matrix_exponential(mode):
    from scipy.linalg import expm
    M = np.array([[-0.3, 1.2, 0.0], [-1.1, -0.2, 0.4], [0.1, -0.5, -0.6]])
    y0 = np.array([1.0, -0.5, 2.0])
    ts = np.array([0.0, 0.7, 1.5, 3.0])
    W = _weights(4, 3, seed=3)

    def loss(y0, theta, t):
        return anp.sum(W * nk.odeint(LINEAR, y0, t, theta, gradient=mode, **TIGHT))

    gy0, gth, gt = autograd.grad(loss, (0, 1, 2))(y0, M.ravel(), ts)
    # closed form: y(t_j) = expm(M (t_j - t0)) y0
    Es = [expm(M * (tj - ts[0])) for tj in ts]
    np.testing.assert_allclose(gy0, sum(W[j] @ Es[j] for j in range(4)), rtol=1e-7)
    gt_exact = np.array([W[j] @ (M @ Es[j] @ y0) for j in range(4)])
    gt_exact[0] = -sum(W[j] @ (Es[j] @ M @ y0) for j in range(1, 4))
    np.testing.assert_allclose(gt, gt_exact, rtol=1e-7, atol=1e-9)
    # d/dM of w^T expm(M tau) y0, by finite differences of the closed form
    eps = 1e-6
    num = np.zeros(9)
    for k in range(9):
        dM = np.zeros(9)
        dM[k] = eps
        f = lambda Mf: sum(W[j] @ expm(Mf.reshape(3, 3) * (ts[j] - ts[0])) @ y0
                           for j in range(4))
        num[k] = (f(M.ravel() + dM) - f(M.ravel() - dM)) / (2 * eps)
    np.testing.assert_allclose(gth, num, rtol=1e-6, atol=1e-8)


# --- compiled and Python paths agree -------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_compiled_and_python_gradients_agree(mode):
    ts = np.linspace(0.0, 10.0, 25)

    def grads(fun):
        loss = lambda y0, th, t: anp.sum(nk.odeint(fun, y0, t, th, gradient=mode,
                                                   rtol=1e-8, atol=1e-10) ** 2)
        return autograd.grad(loss, (0, 1, 2))(LV_Y0, LV_THETA, ts)

    for a, b in zip(grads(LV), grads(lv_py)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


def test_lotka_volterra_reference_gradient():
    """The peers' published reference gradient, all modes."""
    T = np.linspace(0.0, 20.0, 200)
    for mode in MODES:
        loss = lambda y0, th: anp.sum(nk.odeint(LV, y0, T, th, rtol=1e-8, atol=1e-10,
                                                gradient=mode) ** 2)
        gy0, gth = autograd.grad(loss, (0, 1))(LV_Y0, LV_THETA)
        np.testing.assert_allclose(gy0, [-2071.43, -515.83], atol=0.01)
        np.testing.assert_allclose(gth, [136.07, -2199.51, 2050.36, -7218.82], atol=0.01)


# --- finite differences ----------------------------------------------------------
@pytest.mark.parametrize("method", ["rk4", "midpoint", "dopri5"])
def test_discrete_gradient_is_exact_derivative_of_the_solver(method):
    """RK-Net: with fixed steps, the discrete adjoint equals central finite
    differences of the solver's own output to near round-off."""
    ts = np.linspace(0.0, 3.0, 7)
    W = _weights(7, 2, seed=1)
    kw = dict(method=method, step_size=0.05)

    def loss(y0, th):
        return anp.sum(W * nk.odeint(LV, y0, ts, th, gradient="discrete", **kw))

    def solver(y0, th):
        return np.sum(W * nk.solve(LV, y0, ts, th, **kw).y)

    gy0, gth = autograd.grad(loss, (0, 1))(LV_Y0, LV_THETA)
    eps = 1e-5
    for x0, g, which in ((LV_Y0, gy0, 0), (LV_THETA, gth, 1)):
        for k in range(x0.size):
            d = np.zeros_like(x0)
            d[k] = eps
            args_p = [LV_Y0, LV_THETA]
            args_m = [LV_Y0, LV_THETA]
            args_p[which] = x0 + d
            args_m[which] = x0 - d
            fd = (solver(*args_p) - solver(*args_m)) / (2 * eps)
            assert abs(fd - g[k]) < 1e-7 * max(1.0, abs(fd))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "python"])
def test_check_grads_on_random_linear_problem(mode, compiled):
    rng = np.random.default_rng(7)
    M = rng.normal(scale=0.5, size=(3, 3))
    y0 = rng.normal(size=3)
    ts = np.array([0.0, 0.4, 1.1, 2.0])
    fun = LINEAR if compiled else linear_py

    def f(y0, theta, t):
        return nk.odeint(fun, y0, t, theta, gradient=mode, rtol=1e-12, atol=1e-12)

    check_grads(f, modes=["rev"], order=1)(y0, M.ravel(), ts)


# --- times ---------------------------------------------------------------------
def test_time_gradients_with_loss_reading_some_outputs():
    ts = np.linspace(0.0, 6.0, 8)
    case = all_cases()["nonautonomous growth"]
    W = np.zeros((8, 1))
    W[3] = 1.0   # only y(t_3) and y(t_6) enter the loss
    W[6] = -2.0
    for mode in MODES:
        loss = lambda t: anp.sum(W * nk.odeint(COSGROWTH, case.y0, t, case.theta,
                                               gradient=mode, **TIGHT))
        gt = autograd.grad(loss)(ts)
        exact = case.exact_gradient(ts, W)[2]
        np.testing.assert_allclose(gt, exact, rtol=1e-7, atol=1e-9)
        assert gt[1] == 0.0 and gt[7] == 0.0 and gt[0] != 0.0


def test_nonautonomous_compiled_and_python_time_gradients():
    ts = np.array([0.3, 1.0, 2.5])
    for fun in (COSGROWTH, cosgrowth_py):
        loss = lambda y0, th, t: anp.sum(nk.odeint(fun, y0, t, th, **TIGHT) ** 2)
        g = autograd.grad(loss, (0, 1, 2))(np.array([1.0, 2.0]), np.array([1.5]), ts)
        # y = y0 exp(k (sin t - sin t0))
        e = lambda t: np.exp(1.5 * (np.sin(t) - np.sin(ts[0])))
        y0 = np.array([1.0, 2.0])
        L = lambda y0, k, t: np.sum((np.exp(k * (np.sin(t) - np.sin(t[0])))[:, None] * y0) ** 2)
        eps = 1e-6
        num_t = [(L(y0, 1.5, ts + eps * np.eye(3)[i]) - L(y0, 1.5, ts - eps * np.eye(3)[i]))
                 / (2 * eps) for i in range(3)]
        np.testing.assert_allclose(g[2], num_t, rtol=1e-6)
        np.testing.assert_allclose(g[0], 2 * y0 * np.sum(e(ts) ** 2), rtol=1e-8)


# --- composition, options, statistics -----------------------------------------
def test_loss_mixing_autograd_code_and_two_solves():
    ts = np.linspace(0.0, 2.0, 5)
    enc = np.array([[0.5, -0.2], [0.1, 0.3]])

    def loss(params):
        z0 = anp.tanh(anp.dot(enc, params[:2]))
        ys = nk.odeint(lv_py, z0 + 1.0, ts, params[2:], rtol=1e-10, atol=1e-12)
        ys2 = nk.odeint(LV, ys[-1], ts, params[2:] * 1.1, rtol=1e-10, atol=1e-12,
                        gradient="interpolated")
        return anp.sum(ys ** 2) + anp.sum(anp.sin(ys2))

    p = np.concatenate([[0.3, -0.4], LV_THETA])
    check_grads(loss, modes=["rev"], order=1)(p)


def test_jacobian_through_odeint():
    ts = np.array([0.0, 1.0])
    J = autograd.jacobian(lambda y0: nk.odeint(LV, y0, ts, LV_THETA, **TIGHT)[-1])(LV_Y0)
    eps = 1e-6
    num = np.stack([(nk.solve(LV, LV_Y0 + eps * e, ts, LV_THETA, **TIGHT).y[-1]
                     - nk.solve(LV, LV_Y0 - eps * e, ts, LV_THETA, **TIGHT).y[-1]) / (2 * eps)
                    for e in np.eye(2)], axis=1)
    np.testing.assert_allclose(J, num, rtol=1e-6)


def test_stats_report_nfe_and_drift_and_seminorm_saves_work():
    ts = np.linspace(0.0, 20.0, 200)
    out = {}
    for seminorm in (False, True):
        st = {}
        loss = lambda y0, th: anp.sum(nk.odeint(LV, y0, ts, th, rtol=1e-8, atol=1e-10,
                                                seminorm=seminorm, stats=st) ** 2)
        out[seminorm] = (autograd.grad(loss, (0, 1))(LV_Y0, LV_THETA), st)
    st = out[False][1]
    assert st["nfev_forward"] == 2792 and st["nfev_backward"] > 0
    assert st["drift"].shape == (200,) and st["drift"].max() < 1e-5
    assert out[True][1]["nfev_backward"] < st["nfev_backward"]
    for a, b in zip(out[True][0], out[False][0]):
        np.testing.assert_allclose(a, b, rtol=1e-5)


def test_only_requested_gradients_and_no_backward_without_grad():
    st = {}
    ys = nk.odeint(LV, LV_Y0, [0.0, 1.0], LV_THETA, stats=st)
    assert ys.shape == (2, 2) and "nfev_backward" not in st
    g = autograd.grad(lambda th: anp.sum(nk.odeint(LV, LV_Y0, [0.0, 1.0], th, stats=st)))(
        LV_THETA)
    assert g.shape == (4,) and "nfev_backward" in st


def test_batched_state_and_structured_theta_python_path():
    W = np.array([[0.0, 1.0], [-1.0, 0.0]])

    def f(t, y, th):
        return anp.dot(y, th.T) - 0.1 * y

    y0 = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, -1.0]])
    ts = np.linspace(0.0, 1.0, 4)
    loss = lambda y0, th: anp.sum(nk.odeint(f, y0, ts, th, **TIGHT) ** 2)
    gy0, gth = autograd.grad(loss, (0, 1))(y0, W)
    assert gy0.shape == (3, 2) and gth.shape == (2, 2)
    check_grads(loss, modes=["rev"], order=1)(y0, W)


# --- bad input and failures ---------------------------------------------------------
def test_unknown_gradient_mode_lists_valid():
    with pytest.raises(ValueError, match="'adjoint', 'interpolated', 'discrete'"):
        nk.odeint(LV, LV_Y0, [0.0, 1.0], LV_THETA, gradient="backprop")


def test_unknown_option_is_an_error():
    with pytest.raises(TypeError, match="unexpected keyword argument.*'adjoint_tol'"):
        nk.odeint(LV, LV_Y0, [0.0, 1.0], LV_THETA, adjoint_tol=1e-3)


@numba.njit(cache=True)
def _decay(t, y, th, out):
    out[0] = -th[0] * y[0]


def test_ode_without_vjp_explains_how_to_get_one():
    ode = nk.ODE(_decay)
    assert nk.odeint(ode, [1.0], [0.0, 1.0], [1.0]).shape == (2, 1)
    with pytest.raises(TypeError, match="no `vjp` kernel.*nk.symbolic"):
        autograd.grad(lambda th: anp.sum(nk.odeint(ode, [1.0], [0.0, 1.0], th)))(
            np.array([1.0]))


def test_failed_forward_solve_raises_not_garbage():
    with pytest.raises(nk.SolveError, match="forward solve failed.*t="):
        autograd.grad(lambda y0: anp.sum(nk.odeint(lambda t, y, th: y ** 2, y0, [0.0, 2.0])))(
            np.array([1.0]))


def test_failed_backward_solve_raises_with_advice():
    loss = lambda y0: anp.sum(nk.odeint(LV, y0, np.linspace(0.0, 20.0, 5), LV_THETA,
                                        max_steps=600, adjoint_rtol=1e-13, adjoint_atol=1e-13))
    with pytest.raises(nk.GradientError, match="backward.*max_steps"):
        autograd.grad(loss)(LV_Y0)


@pytest.mark.parametrize("mode", ["adjoint", "interpolated"])
def test_backward_pass_skips_outputs_the_loss_does_not_read(mode):
    ts = np.linspace(0.0, 20.0, 200)
    st_all, st_one = {}, {}
    g_all = autograd.grad(lambda th: anp.sum(nk.odeint(
        LV, LV_Y0, ts, th, rtol=1e-8, atol=1e-10, gradient=mode, stats=st_all) ** 2))(LV_THETA)
    # only y(t_50) is read: the backward pass starts there and never stops in between
    g_one = autograd.grad(lambda th: anp.sum(nk.odeint(
        LV, LV_Y0, ts, th, rtol=1e-8, atol=1e-10, gradient=mode, stats=st_one)[50] ** 2))(
        LV_THETA)
    g_ref = autograd.grad(lambda th: anp.sum(nk.odeint(
        LV, LV_Y0, ts[:51], th, rtol=1e-8, atol=1e-10, gradient=mode)[-1] ** 2))(LV_THETA)
    np.testing.assert_allclose(g_one, g_ref, rtol=1e-6)
    assert st_one["nfev_backward"] < st_all["nfev_backward"] / 3
    assert np.all(np.isfinite(g_all))
    if mode == "adjoint":
        assert np.isnan(st_one["drift"][100]) and np.isfinite(st_one["drift"][0])


def test_gradient_of_a_loss_reading_only_y0_is_free():
    st = {}
    g = autograd.grad(lambda y0: anp.sum(nk.odeint(LV, y0, [0.0, 5.0], LV_THETA,
                                                   stats=st)[0] ** 2))(LV_Y0)
    np.testing.assert_allclose(g, 2 * LV_Y0)
    assert st["nfev_backward"] == 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fun", [LV, lv_py], ids=["compiled", "python"])
def test_parameter_quadrature_skipped_when_only_y0_is_wanted(mode, fun):
    ts = np.linspace(0.0, 10.0, 20)
    st_both, st_y0 = {}, {}
    loss = lambda y0, th, st: anp.sum(nk.odeint(fun, y0, ts, th, rtol=1e-8, atol=1e-10,
                                                gradient=mode, stats=st) ** 2)
    gy0_both, _ = autograd.grad(lambda y0, th: loss(y0, th, st_both), (0, 1))(LV_Y0, LV_THETA)
    gy0 = autograd.grad(lambda y0: loss(y0, LV_THETA, st_y0))(LV_Y0)
    np.testing.assert_allclose(gy0, gy0_both, rtol=1e-5)
    assert st_y0["nfev_backward"] <= st_both["nfev_backward"]


# --- bounded-memory discrete gradients (checkpoints) ---------------------------------
def _discrete(fun, ts, W, k, stats, **kw):
    loss = lambda y0, th, t: anp.sum(W * nk.odeint(fun, y0, t, th, gradient="discrete",
                                                   checkpoints=k, stats=stats, **kw))
    return np.concatenate(autograd.grad(loss, (0, 1, 2))(LV_Y0, LV_THETA, ts))


@pytest.mark.parametrize("method", ["dopri5", "tsit5", "bosh3"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward-time", "backward-time"])
def test_checkpointed_discrete_gradient_equals_the_recorded_one(method, reverse):
    """About 2300 steps: three segments by default, merged pairs with 2."""
    ts = np.linspace(0.0, 100.0, 37)
    if reverse:
        ts = ts[::-1].copy()
    W = _weights(37, 2, seed=5)
    kw = dict(method=method, rtol=1e-8, atol=1e-10)
    st_all, st_def, st_two = {}, {}, {}
    want = _discrete(LV, ts, W, 0, st_all, **kw)
    for k, st in ((None, st_def), (2, st_two)):
        got = _discrete(LV, ts, W, k, st, **kw)
        assert _rel(got, want) < 1e-12, (k, _rel(got, want))
        assert st["nsteps_forward"] == st_all["nsteps_forward"]
    assert st_def["checkpoints"] >= 3 and st_two["checkpoints"] == 2
    np.testing.assert_array_equal(
        nk.odeint(LV, LV_Y0, ts, LV_THETA, checkpoints=2, gradient="discrete", **kw),
        nk.odeint(LV, LV_Y0, ts, LV_THETA, checkpoints=0, gradient="discrete", **kw))


def test_checkpointed_discrete_gradient_python_fixed_step(monkeypatch):
    from nodekit import _checkpoint
    monkeypatch.setattr(_checkpoint, "SEGMENT_STEPS", 8)  # 52 steps: 7 segments, merged
    ts = np.linspace(0.0, 5.2, 7)
    W = _weights(7, 2, seed=6)
    kw = dict(method="rk4", step_size=0.1)
    st = {}
    got = _discrete(lv_py, ts, W, 2, st, **kw)
    assert _rel(got, _discrete(lv_py, ts, W, 0, {}, **kw)) < 1e-12
    assert st["checkpoints"] == 2


def test_short_solves_are_not_recomputed_and_bad_checkpoints_rejected():
    st = {}
    _discrete(LV, np.linspace(0.0, 5.0, 4), np.ones((4, 2)), None, st)
    assert "checkpoints" not in st  # one segment: reversed from its own record
    for bad in (1, -3, 2.5, True):
        with pytest.raises(ValueError, match="`checkpoints` must be"):
            nk.odeint(LV, LV_Y0, [0.0, 1.0], LV_THETA, gradient="discrete", checkpoints=bad)
