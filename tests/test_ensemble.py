"""nk.solve_ensemble: every trajectory equals its single solve, bit for bit."""
import numba
import numpy as np
import pytest
import scipy.linalg
from hypothesis import HealthCheck, given, settings, strategies as st

import nodekit as nk
from nodekit.validation.kernels import lotka_volterra_rhs, lotka_volterra_vjp
from problems import linear_rhs


@numba.njit(cache=True)
def blowup_rhs(t, y, th, out):
    # y' = k y^2: y(t) = y0 / (1 - k y0 t) blows up at t = 1 / (k y0)
    out[0] = th[0] * y[0] * y[0]


LV = nk.ODE(lotka_volterra_rhs)
BLOWUP = nk.ODE(blowup_rhs)
LINEAR = nk.ODE(linear_rhs)


def _lv_problem(n, seed=0):
    rng = np.random.default_rng(seed)
    thetas = np.column_stack([rng.uniform(1.0, 2.0, n), rng.uniform(0.5, 1.5, n),
                              rng.uniform(2.0, 4.0, n), rng.uniform(0.5, 1.5, n)])
    return rng.uniform(0.5, 2.0, (n, 2)), thetas


def _assert_equals_single_solves(ens, fun, y0s, t, thetas, **options):
    for i in range(ens.status.size):
        ti = t[i] if np.ndim(t) == 2 else t
        th = None if thetas is None else thetas[i if len(thetas) > 1 else 0]
        sol = nk.solve(fun, y0s[i if len(y0s) > 1 else 0], ti, th, **options)
        np.testing.assert_array_equal(ens.y[i], sol.y)
        assert ens.status[i] == sol.status
        assert ens.messages[i] == sol.message
        assert (ens.nfev[i], ens.nsteps[i], ens.naccept[i], ens.nreject[i]) == \
            (sol.nfev, sol.nsteps, sol.naccept, sol.nreject)
        assert ens.t_reached[i] == sol.t_reached


@pytest.mark.parametrize("method, extra", [
    ("dopri5", {}), ("tsit5", {}), ("dop853", {}), ("bosh3", {}),
    ("rk4", {"step_size": 0.01})])
@pytest.mark.parametrize("backwards", [False, True])
def test_equals_single_solves(method, extra, backwards):
    y0s, thetas = _lv_problem(7)
    t = np.linspace(0.0, 3.0, 13)
    if backwards:
        t = t[::-1]
    options = dict(method=method, rtol=1e-8, atol=1e-10, **extra)
    ens = nk.solve_ensemble(LV, y0s, t, thetas, workers=2, chunk_size=2, **options)
    assert ens.y.shape == (7, 13, 2)
    assert ens.success
    _assert_equals_single_solves(ens, LV, y0s, t, thetas, **options)


def test_failures_do_not_fail_the_others():
    # k = 0.1 never blows up on [0, 2]; k = 1 blows up at t = 1; a tiny
    # max_steps stops a long trajectory
    y0s = np.ones((4, 1))
    thetas = np.array([[0.1], [1.0], [0.2], [2.0]])
    t = np.linspace(0.0, 2.0, 9)
    ens = nk.solve_ensemble(BLOWUP, y0s, t, thetas, rtol=1e-8, atol=1e-10, max_steps=200)
    assert list(ens.status == 0) == [True, False, True, False]
    assert not ens.success
    assert ens.message.startswith("2 of 4 trajectories failed; the first, trajectory 1")
    assert np.all(np.isnan(ens.y[1, -1])) and np.all(np.isfinite(ens.y[0]))
    _assert_equals_single_solves(ens, BLOWUP, y0s, t, thetas, rtol=1e-8, atol=1e-10,
                                 max_steps=200)
    np.testing.assert_allclose(ens.y[0, :, 0], 1.0 / (1.0 - 0.1 * t), rtol=1e-7)


def test_max_steps_failure_is_per_trajectory():
    y0s, thetas = _lv_problem(3)
    thetas[1] *= 40.0  # a fast oscillation needs many more steps
    t = np.linspace(0.0, 5.0, 6)
    ens = nk.solve_ensemble(LV, y0s, t, thetas, rtol=1e-8, atol=1e-10, max_steps=2000)
    assert list(ens.status) == [0, -3, 0]
    assert "max_steps=2000" in ens.messages[1]
    _assert_equals_single_solves(ens, LV, y0s, t, thetas, rtol=1e-8, atol=1e-10,
                                 max_steps=2000)


def test_shared_rows_and_per_trajectory_times():
    y0s, thetas = _lv_problem(5)
    t = np.stack([np.linspace(0.0, 1.0 + 0.5 * i, 4) for i in range(5)])
    shared_y0 = y0s[:1]
    ens = nk.solve_ensemble(LV, shared_y0, t, thetas, rtol=1e-9, atol=1e-12)
    assert ens.y.shape == (5, 4, 2) and ens.t.shape == (5, 4)
    _assert_equals_single_solves(ens, LV, shared_y0, t, thetas, rtol=1e-9, atol=1e-12)
    one_theta = nk.solve_ensemble(LV, y0s, t[0], thetas[0], rtol=1e-9, atol=1e-12)
    _assert_equals_single_solves(one_theta, LV, y0s, t[0], thetas[:1], rtol=1e-9,
                                 atol=1e-12)


def test_python_rhs_equals_single_solves():
    y0s = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]])
    thetas = np.array([[0.5], [1.0], [2.0]])
    t = np.linspace(0.0, 1.0, 5)
    fun = lambda t, y, k: -k * y  # noqa: E731
    ens = nk.solve_ensemble(fun, y0s, t, thetas, rtol=1e-10, atol=1e-12)
    _assert_equals_single_solves(ens, fun, y0s, t, thetas, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ens.y[:, -1], y0s * np.exp(-thetas), rtol=1e-9)


@pytest.mark.parametrize("kwargs, match", [
    (dict(y0s=np.ones((3, 2)), thetas=np.ones((4, 4))), "`y0s` has 3, `thetas` has 4"),
    (dict(y0s=np.ones((3, 2)), thetas=np.ones((3, 4, 1))), "`thetas` must have shape"),
    (dict(y0s=np.ones((3, 2)), t=np.ones((3, 2, 2))), "`t` must have shape"),
    (dict(y0s=np.ones((3, 2)), chunk_size=0), "`chunk_size` must be a positive integer"),
    (dict(y0s=np.ones((3, 2)), workers=0), "`workers` must be a positive integer"),
    (dict(y0s=np.full((3, 2), np.nan)), "`y0s` must be finite"),
    (dict(y0s=np.ones((3, 2)), rtol=-1.0), "`rtol` must be positive"),
    (dict(y0s=np.ones((3, 2)), t=np.array([[0.0, 1.0], [0.0, 0.0], [0.0, 1.0]])),
     "strictly increasing"),
])
def test_bad_input_is_named(kwargs, match):
    args = dict(y0s=None, t=np.linspace(0, 1, 3), thetas=np.ones((1, 4)))
    args.update(kwargs)
    y0s, t, thetas = args.pop("y0s"), args.pop("t"), args.pop("thetas")
    with pytest.raises((ValueError, TypeError), match=match):
        nk.solve_ensemble(LV, y0s, t, thetas, **args)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 3), n_traj=st.integers(1, 6), seed=st.integers(0, 2**31 - 1),
       backwards=st.booleans())
def test_random_linear_systems_match_expm(n, n_traj, seed, backwards):
    rng = np.random.default_rng(seed)
    mats = rng.normal(0.0, 1.0, (n_traj, n, n))
    y0s = rng.normal(0.0, 1.0, (n_traj, n))
    t = np.linspace(0.0, 1.5, 4) * (-1.0 if backwards else 1.0)
    ens = nk.solve_ensemble(LINEAR, y0s, t, mats.reshape(n_traj, -1), rtol=1e-10,
                            atol=1e-12)
    assert ens.success
    for i in range(n_traj):
        exact = np.stack([scipy.linalg.expm(mats[i] * tj) @ y0s[i] for tj in t])
        scale = 1.0 + np.abs(exact).max()
        np.testing.assert_allclose(ens.y[i], exact, atol=1e-7 * scale, rtol=1e-7)


def test_progress_bar(capsys):
    y0s, thetas = _lv_problem(4)
    ens = nk.solve_ensemble(LV, y0s, [0.0, 1.0], thetas, progress=True, chunk_size=1)
    assert ens.success
    assert "ensemble" in capsys.readouterr().err


LV_GRAD = nk.ODE(lotka_volterra_rhs, lotka_volterra_vjp)


@pytest.mark.parametrize("gradient", ["adjoint", "interpolated", "discrete"])
def test_gradient_equals_loop_of_odeint(gradient):
    import autograd
    import autograd.numpy as anp
    y0s, thetas = _lv_problem(4, seed=3)
    t = np.linspace(0.0, 2.0, 6)
    opts = dict(rtol=1e-8, atol=1e-10, gradient=gradient)

    def loss_ens(y0s, t, thetas):
        return anp.sum(nk.odeint_ensemble(LV_GRAD, y0s, t, thetas, workers=2, **opts) ** 2)

    def loss_loop(y0s, t, thetas):
        return sum(anp.sum(nk.odeint(LV_GRAD, y0s[i], t, thetas[i], **opts) ** 2)
                   for i in range(len(y0s)))

    g_ens = autograd.grad(loss_ens, (0, 1, 2))(y0s, t, thetas)
    g_loop = autograd.grad(loss_loop, (0, 1, 2))(y0s, t, thetas)
    for a, b in zip(g_ens, g_loop):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
    assert loss_ens(y0s, t, thetas) == pytest.approx(loss_loop(y0s, t, thetas), rel=1e-14)


@pytest.mark.parametrize("case", ["seminorm", "backward tolerances", "controller",
                                  "last output only", "per-trajectory times",
                                  "one shared row of times"])
def test_compiled_adjoint_equals_loop_of_odeint(case):
    """The compiled ensemble adjoint (forward chunks, backward chunks in
    nopython) takes every option of nk.odeint and stops where it stops."""
    import autograd
    import autograd.numpy as anp
    y0s, thetas = _lv_problem(3, seed=5)
    t = np.linspace(0.0, 1.5, 5)
    opts = dict(rtol=1e-7, atol=1e-9)
    weight = np.ones(5)
    if case == "seminorm":
        opts["seminorm"] = True
    elif case == "backward tolerances":
        opts.update(adjoint_rtol=1e-5, adjoint_atol=1e-8, adjoint_method="tsit5")
    elif case == "controller":
        opts["controller"] = nk.PIController(safety=0.8, icoeff=0.7, pcoeff=0.4)
    elif case == "last output only":
        weight = np.array([0.0, 0.0, 0.0, 0.0, 1.0])
    elif case == "per-trajectory times":
        t = np.stack([t, 1.1 * t, 0.9 * t])
    elif case == "one shared row of times":
        t = t[None, :]

    def loss_ens(y0s, t, thetas):
        y = nk.odeint_ensemble(LV_GRAD, y0s, t, thetas, workers=2, **opts)
        return anp.sum(weight[None, :, None] * y ** 2)

    def loss_loop(y0s, t, thetas):
        return sum(anp.sum(weight[:, None] * nk.odeint(
            LV_GRAD, y0s[i], t[i if len(t) > 1 else 0] if t.ndim == 2 else t, thetas[i],
            **opts) ** 2)
            for i in range(len(y0s)))

    g_ens = autograd.grad(loss_ens, (0, 1, 2))(y0s, t, thetas)
    g_loop = autograd.grad(loss_loop, (0, 1, 2))(y0s, t, thetas)
    for a, b in zip(g_ens, g_loop):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


def test_compiled_adjoint_names_the_failed_trajectory():
    import autograd
    import autograd.numpy as anp
    y0s, thetas = _lv_problem(3, seed=5)
    thetas[1] = [40.0, 0.0, 1.0, 0.0]  # exponential growth: max_steps is too few
    loss = lambda th: anp.sum(nk.odeint_ensemble(  # noqa: E731
        LV_GRAD, y0s, np.linspace(0.0, 5.0, 3), th, max_steps=50) ** 2)
    with pytest.raises(nk.SolveError, match="trajectory 1: .*max_steps"):
        autograd.grad(loss)(thetas)


def test_gradient_of_shared_theta_sums_over_trajectories():
    import autograd
    import autograd.numpy as anp
    y0s = np.array([[1.0], [2.0], [0.5]])
    t = np.linspace(0.0, 1.0, 3)
    fun = lambda t, y, k: -k * y  # noqa: E731
    loss = lambda k: anp.sum(nk.odeint_ensemble(fun, y0s, t, k, rtol=1e-11,  # noqa: E731
                                                atol=1e-13)[:, -1])
    g = autograd.grad(loss)(np.array([0.7]))
    # d/dk sum_i y0_i exp(-k) = -exp(-k) sum_i y0_i
    np.testing.assert_allclose(g, [-np.exp(-0.7) * y0s.sum()], rtol=1e-8)


def test_dask_cluster_equals_local():
    distributed = pytest.importorskip("dask.distributed")
    y0s, thetas = _lv_problem(12)
    t = np.linspace(0.0, 2.0, 5)
    local = nk.solve_ensemble(LV, y0s, t, thetas, rtol=1e-8, atol=1e-10)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        remote = nk.solve_ensemble(LV, y0s, t, thetas, rtol=1e-8, atol=1e-10,
                                   client=client, chunk_size=5)
    np.testing.assert_array_equal(remote.y, local.y)
    np.testing.assert_array_equal(remote.nfev, local.nfev)
    assert remote.messages == local.messages


def test_stats_are_filled_per_trajectory():
    # every trajectory's nk.odeint used to fill one shared dict, from a thread
    # pool: the counts and the drift were those of an arbitrary trajectory
    import autograd
    import autograd.numpy as anp
    y0s, thetas = _lv_problem(3, seed=4)
    t = np.linspace(0.0, 2.0, 5)
    opts = dict(rtol=1e-7, atol=1e-9)
    stats = {}
    autograd.grad(lambda th: anp.sum(nk.odeint_ensemble(
        LV_GRAD, y0s, t, th, workers=2, stats=stats, **opts)))(thetas)
    for i in range(3):
        alone = {}
        autograd.grad(lambda y0, tt, th: anp.sum(nk.odeint(
            LV_GRAD, y0, tt, th, stats=alone, **opts)), (0, 1, 2))(y0s[i], t, thetas[i])
        for key, value in alone.items():
            if key == "drift":
                np.testing.assert_array_equal(stats[key][i], value)
            else:
                assert stats[key].shape == (3,) and stats[key][i] == value, key


def test_a_stiff_trajectory_is_reported_as_nk_solve_reports_it():
    # the chunks never read the loop's stiffness test: no note, no warning
    import warnings

    from nodekit.validation.stiff_kernels import robertson_rhs
    ode = nk.ODE(robertson_rhs)
    thetas = np.array([[0.04, 3.0, 1.0], [0.04, 3e7, 1e4]])  # the second is Robertson
    opts = dict(rtol=1e-6, atol=1e-10, max_steps=200000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ens = nk.solve_ensemble(ode, [[1.0, 0.0, 0.0]], [0.0, 40.0], thetas, workers=2, **opts)
    stiff = [w for w in caught if issubclass(w.category, nk.StiffnessWarning)]
    assert len(stiff) == 1 and "stiff trajectories: 1 (1 of 2)" in str(stiff[0].message)
    with pytest.warns(nk.StiffnessWarning):
        alone = nk.solve(ode, [1.0, 0.0, 0.0], [0.0, 40.0], thetas[1], **opts)
    assert ens.messages[1] == alone.message and "looks stiff" in alone.message
    assert "stiff" not in ens.messages[0]
