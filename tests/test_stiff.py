"""Stiff problems: the Rosenbrock and ESDIRK tableaux (order conditions over
rooted trees) and nk.solve with the stiff methods against SciPy's Radau,
published references and closed forms."""
from fractions import Fraction

import numba as nb
import numpy as np
import pytest
from scipy.linalg import expm

import nodekit as nk
from nodekit.tableaux.esdirk import (ESDIRK_METHODS, KVAERNO5, ESDIRKTableau,
                                     esdirk_order_residuals)
from nodekit.tableaux.rosenbrock import (RODAS5, ROSENBROCK_METHODS, RosenbrockTableau,
                                         rosenbrock_order_residuals)
from tests.problems import LINEAR, linear_jac, linear_py, linear_rhs, linear_vjp
from nodekit.validation.kernels import van_der_pol_rhs
from nodekit.validation.stiff_kernels import (ROBERTSON_LONG_REF, ROBERTSON_LONG_T,
                                      ROBERTSON_REF, ROBERTSON_T, ROBERTSON_THETA,
                                      ROBERTSON_Y0, VDP_MU, VDP_REF, VDP_T, VDP_Y0,
                                      robertson_jac, robertson_rhs, van_der_pol_jac)

ROBERTSON = nk.ODE(robertson_rhs)
LINEAR_J = nk.ODE(linear_rhs, linear_vjp, jac=linear_jac)


def _worst(res, order):
    return max(abs(float(r)) for _, k, r in res if k == order)


# ---------------------------------------------------------------------------
# the tableau
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["rodas4", "rodas5", "ros3p"])
def test_rosenbrock_order_conditions(name):
    t = ROSENBROCK_METHODS[name]
    p, q, r = t.order, t.error_order, t.dense_order
    res = rosenbrock_order_residuals(t, p + 1)
    assert max(_worst(res, k) for k in range(1, p + 1)) < 1e-13   # order p ...
    assert _worst(res, p + 1) > 1e-4                               # ... and not p + 1
    emb = rosenbrock_order_residuals(t, q + 1, which="b_hat")
    assert max(_worst(emb, k) for k in range(1, q + 1)) < 1e-13    # embedded order
    assert _worst(emb, q + 1) > 1e-4
    for theta in ("1/4", "1/2", "4/5", "1"):
        dense = rosenbrock_order_residuals(t, r + 1, which="dense", theta=theta)
        assert max(_worst(dense, k) for k in range(1, r + 1)) < 1e-12, theta
    assert _worst(rosenbrock_order_residuals(t, r + 1, "dense", "1/2"), r + 1) > 1e-4
    assert (p, q, r) == {"rodas4": (4, 3, 3), "rodas5": (5, 4, 4), "ros3p": (3, 2, 2)}[name]


def test_rodas5_structure():
    t = RODAS5
    assert ROSENBROCK_METHODS["rodas5"] is t and nk.STIFF_METHODS["rodas5"] is t
    assert set(nk.STIFF_METHODS) == set(ROSENBROCK_METHODS) | set(ESDIRK_METHODS) \
        == {"rodas4", "rodas5", "ros3p", "kvaerno5", "trbdf2"}
    assert (t.order, t.error_order, t.dense_order, t.n_stages) == (5, 4, 4, 8)
    assert all(t.Gamma[i][i] == Fraction("0.19") for i in range(8))
    # stiffly accurate: y_new is the last stage's argument plus its own increment
    np.testing.assert_array_equal(t.A[7, :7], t.M[:7])
    np.testing.assert_allclose(t.P.sum(axis=1), t.M, rtol=0, atol=1e-12)
    assert abs(sum(t.b) - 1) < 1e-14 and "Di Marzo" in t.references


def test_inconsistent_rosenbrock_tableau():
    kw = dict(name="bad", order=1, error_order=1, dense_order=1, references="",
              gamma=1, a=((),), C=((),), m=(1,), e=(1,), c=(0,), d=(1,))
    assert RosenbrockTableau(**kw).b == (1,)         # linearly implicit Euler
    with pytest.raises(ValueError, match=r"inconsistent Rosenbrock tableau 'bad': d\[0\]"):
        RosenbrockTableau(**dict(kw, d=(2,)))
    with pytest.raises(ValueError, match="gamma"):
        RosenbrockTableau(**dict(kw, gamma=0, d=(0,)))


# ---------------------------------------------------------------------------
# solving
# ---------------------------------------------------------------------------
def _stiff_linear():
    # eigenvalues -1 and -1e4 (and a rotation): explicit methods need ~1e4 steps
    M = np.array([[-1.0, 0.5], [0.0, -1e4]])
    y0 = np.array([1.0, 1.0])
    ts = np.linspace(0.0, 2.0, 9)
    from scipy.linalg import expm
    exact = np.array([expm(M * t) @ y0 for t in ts])
    return M, y0, ts, exact


@pytest.mark.parametrize("rtol", [1e-5, 1e-8])
def test_stiff_linear_against_expm(rtol):
    M, y0, ts, exact = _stiff_linear()
    sol = nk.solve(LINEAR, y0, ts, M.ravel(), method="rodas5", rtol=rtol, atol=rtol * 1e-3)
    assert sol.success and sol.method == "rodas5"
    assert np.max(np.abs(sol.y - exact)) < 10 * rtol
    assert sol.naccept < 200 and sol.njev == sol.naccept and sol.nlu == sol.nsteps
    # the interpreted loop (Python right-hand side) runs the same steps
    py = nk.solve(linear_py, y0, ts, M.ravel(), method="rodas5", rtol=rtol,
                  atol=rtol * 1e-3)
    assert py.naccept == sol.naccept
    np.testing.assert_allclose(py.y, sol.y, rtol=1e-9, atol=1e-12)


def test_dense_output_of_rodas5():
    M, y0, ts, exact = _stiff_linear()
    sol = nk.solve(LINEAR, y0, [0.0, 2.0], M.ravel(), method="rodas5", rtol=1e-8,
                   atol=1e-11, dense=True)
    from scipy.linalg import expm
    tq = np.linspace(0.001, 2.0, 37)
    want = np.array([expm(M * t) @ y0 for t in tq])
    assert np.max(np.abs(sol(tq) - want)) < 1e-7


@pytest.mark.parametrize("method", ["rodas4", "rodas5"])
def test_robertson_against_radau(method):
    ts, ref = ROBERTSON_T, ROBERTSON_REF
    for rtol in (1e-6, 1e-9):
        sol = nk.solve(ROBERTSON, ROBERTSON_Y0, ts, ROBERTSON_THETA, method=method,
                       rtol=rtol, atol=1e-4 * rtol)
        assert sol.success
        err = np.max(np.abs(sol.y - ref) / (1e-4 * rtol + np.abs(ref)))
        assert err < 20 * rtol, (method, rtol, err)
        assert np.allclose(sol.y.sum(axis=1), 1.0, atol=1e-12)   # mass is conserved
    assert sol.naccept < {"rodas4": 1500, "rodas5": 600}[method]


def _with_jac(rhs, jac):
    """``nk.ODE(rhs, jac=jac)``; on an ``nk.ODE`` without that argument, the
    attribute it would set."""
    try:
        return nk.ODE(rhs, jac=jac)
    except TypeError:
        ode = nk.ODE(rhs)
        ode.jac = jac
        return ode


def test_analytic_jacobian_is_used():
    # the Jacobian kernel is called instead of difference quotients
    ode = _with_jac(robertson_rhs, robertson_jac)
    fd = nk.solve(ROBERTSON, ROBERTSON_Y0, ROBERTSON_T, ROBERTSON_THETA, method="rodas5")
    an = nk.solve(ode, ROBERTSON_Y0, ROBERTSON_T, ROBERTSON_THETA, method="rodas5")
    assert an.success and an.njev == an.naccept
    assert an.nfev == fd.nfev - 3 * fd.njev          # 3 evaluations a Jacobian saved
    np.testing.assert_allclose(an.y, ROBERTSON_REF, rtol=1e-4, atol=1e-9)


def test_symbolic_systems_bring_their_jacobian(tmp_path):
    from nodekit.symbolic import ODESystem
    system = ODESystem.from_strings(
        {"a": "-k1*a + k3*b*c", "b": "k1*a - k3*b*c - k2*b**2", "c": "k2*b**2"},
        params=["k1", "k2", "k3"], name="robertson")
    ode = system.compile(cache_dir=str(tmp_path))
    sol = nk.solve(ode, ROBERTSON_Y0, ROBERTSON_T, ROBERTSON_THETA, method="rodas5")
    fd = nk.solve(ROBERTSON, ROBERTSON_Y0, ROBERTSON_T, ROBERTSON_THETA, method="rodas5")
    assert sol.success and sol.nfev == fd.nfev - 3 * fd.njev   # jac_y, no differences
    np.testing.assert_allclose(sol.y, ROBERTSON_REF, rtol=1e-4, atol=1e-9)


def test_van_der_pol_mu_1000_against_radau():
    ode = _with_jac(van_der_pol_rhs, van_der_pol_jac)
    sol = nk.solve(ode, VDP_Y0, VDP_T, VDP_MU, method="rodas5", rtol=1e-8, atol=1e-10)
    assert sol.success
    err = np.max(np.abs(sol.y - VDP_REF))
    assert err < 1e-4, err


#: Van der Pol at mu = 1e6 over two relaxation periods, y1 at 7 times: rodas5 at
#: rtol 1e-11 (15477 steps), which Radau (SciPy, rtol 1e-9) matches to 8.5e-10.
VDP6_T = np.linspace(0.0, 3e6, 7)
VDP6_Y1 = np.array([2.0, 1.5967683944250395, -1.8633839228811166, -1.3541800693850778,
                    1.705546217393942, -1.9458110109158662, -1.5093757029136798])


def test_van_der_pol_mu_1e6_over_two_periods():
    # the extreme stiffness of the issue: explicit methods would need ~1e12 steps
    ode = _with_jac(van_der_pol_rhs, van_der_pol_jac)
    sol = nk.solve(ode, [2.0, 0.0], VDP6_T, [1e6], method="rodas5", rtol=1e-8,
                   atol=1e-10, max_steps=20000)
    assert sol.success and sol.nsteps < 5000, (sol.status, sol.nsteps)
    np.testing.assert_allclose(sol.y[:, 0], VDP6_Y1, atol=2e-6)


def test_rodas5_options_and_failures():
    M, y0, ts, _ = _stiff_linear()
    with pytest.raises(ValueError, match="step_size"):
        nk.solve(LINEAR, y0, ts, M.ravel(), method="rodas5", step_size=0.1)
    sol = nk.solve(LINEAR, y0, ts, M.ravel(), method="RODAS5", max_steps=3)
    assert sol.status == -3 and "max_steps" in sol.message


def test_backsolve_gradients_through_rodas5_are_refused_clearly():
    # (the gradients that work are tested in test_stiff_gradients.py)
    import autograd
    M, y0, ts, _ = _stiff_linear()
    with pytest.raises(ValueError, match="gradient='adjoint' is not available .*'rodas5'"):
        autograd.grad(lambda m: nk.odeint(LINEAR, y0, ts, m, method="rodas5").sum())(
            M.ravel())


def test_plain_numpy_fun_falls_back_to_differences():
    # autograd cannot trace np.array([...]): the loop takes difference quotients
    # instead of a zero Jacobian (which made rodas5 crawl: 60000 steps)
    def f(t, y, k):
        return np.array([-k[0] * y[0] + k[2] * y[1] * y[2],
                         k[0] * y[0] - k[2] * y[1] * y[2] - k[1] * y[1] ** 2,
                         k[1] * y[1] ** 2])

    sol = nk.solve(f, ROBERTSON_Y0, ROBERTSON_T[:3], ROBERTSON_THETA, method="rodas5")
    assert sol.success and sol.naccept < 100
    np.testing.assert_allclose(sol.y, ROBERTSON_REF[:3], rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("method, factor", [("rodas5", 10), ("kvaerno5", 20)])
@pytest.mark.parametrize("name", ["hires", "orego"])
def test_test_set_problems_against_published_references(name, method, factor):
    from validation import stiff_kernels as sk
    rhs, y0, t1, ref = {"hires": (sk.hires_rhs, sk.HIRES_Y0, sk.HIRES_T1, sk.HIRES_REF),
                        "orego": (sk.orego_rhs, sk.OREGO_Y0, sk.OREGO_T1,
                                  sk.OREGO_REF)}[name]
    sol = nk.solve(nk.ODE(rhs), y0, [0.0, t1], np.zeros(1), method=method,
                   rtol=1e-8, atol=1e-12)
    assert sol.success
    err = np.max(np.abs(sol.y[-1] - ref) / (1e-12 + np.abs(ref)))
    # measured: rodas5 HIRES 1.4e-9, OREGO 2.4e-9; kvaerno5 5.2e-9, 8.5e-8
    assert err < factor * 1e-8, err


def test_backward_in_time_and_non_autonomous():
    # backwards: a decaying rotation from t = 2 to 0 against the matrix exponential
    from scipy.linalg import expm
    M = np.array([[-0.5, 1.0], [-1.0, -0.5]])
    y2 = np.array([1.0, 0.3])
    ts = np.linspace(2.0, 0.0, 5)
    sol = nk.solve(LINEAR, y2, ts, M.ravel(), method="rodas5", rtol=1e-9, atol=1e-12,
                   dense=True)
    want = np.array([expm(M * (t - 2.0)) @ y2 for t in ts])
    assert sol.success and np.max(np.abs(sol.y - want)) < 1e-8
    assert np.max(np.abs(sol(0.7) - expm(M * -1.3) @ y2)) < 1e-8
    # non-autonomous and stiff (the df/dt term of the stages): y = cos t
    from nodekit.validation.stiff_kernels import prothero_robinson_rhs
    ts = np.linspace(0.0, 3.0, 7)
    for method in ("rodas4", "rodas5"):
        sol = nk.solve(nk.ODE(prothero_robinson_rhs), [1.0], ts, [1e4], method=method,
                       rtol=1e-8, atol=1e-10)
        assert sol.success and np.max(np.abs(sol.y[:, 0] - np.cos(ts))) < 1e-7, method


# ---------------------------------------------------------------------------
# ESDIRK methods (kvaerno5, trbdf2)
# ---------------------------------------------------------------------------
def _stability(tab, z):
    """``R(z) = 1 + z b^T (I - z A)^-1 1`` of an ESDIRK tableau, and of its
    embedded weights."""
    s = tab.n_stages
    A = tab.A[:s, :s]
    u = np.linalg.solve(np.eye(s) - z * A, np.ones(s))
    return 1 + z * tab.B[:s] @ u, 1 + z * (tab.B - tab.E)[:s] @ u


@pytest.mark.parametrize("name, p, q", [("kvaerno5", 5, 4), ("trbdf2", 2, 3)])
def test_esdirk_order_conditions(name, p, q):
    t = ESDIRK_METHODS[name]
    assert (t.order, t.embedded_order, t.error_order) == (p, q, min(p, q))
    res = esdirk_order_residuals(t, p + 1)
    assert max(_worst(res, k) for k in range(1, p + 1)) < 1e-15    # order p ...
    assert _worst(res, p + 1) > 1e-3                               # ... and not p + 1
    emb = esdirk_order_residuals(t, q + 1, which="b_hat")
    assert max(_worst(emb, k) for k in range(1, q + 1)) < 1e-15
    assert _worst(emb, q + 1) > 1e-3


@pytest.mark.parametrize("name", ["kvaerno5", "trbdf2"])
def test_esdirk_structure_and_stability(name):
    t = ESDIRK_METHODS[name]
    assert nk.STIFF_METHODS[name] is t and t.stiffly_accurate
    s = t.n_stages
    assert t.A[0, 0] == 0 and np.all(np.diag(t.A)[1:s] == float(t.gamma))
    np.testing.assert_allclose(t.A[s, :s], t.B[:s])       # slot s: f(t + h, y_new)
    np.testing.assert_allclose(t.P.sum(axis=1), t.B, atol=1e-15)
    # L-stable: |R| <= 1 on the imaginary axis and R(z) -> 0 as z -> -inf
    assert max(abs(_stability(t, 1j * y)[0]) for y in np.logspace(-2, 6, 60)) <= 1 + 1e-12
    assert abs(_stability(t, -1e4)[0]) < 1e-3 and abs(_stability(t, -1e6)[0]) < 1e-5


def test_trbdf2_is_the_trapezoidal_rule_then_bdf2():
    from nodekit.tableaux.esdirk import TRBDF2 as t
    g = 2 - np.sqrt(2)
    assert abs(t.C[1] - g) < 1e-15 and t.smooth_error and not KVAERNO5.smooth_error
    # stage 2 is the trapezoidal rule over [0, g h] ...
    np.testing.assert_allclose(t.A[1, :2], [g / 2, g / 2], rtol=1e-15)
    # ... and y_new the BDF2 formula through t, t + g h, t + h:
    # y_new - (1/(g(2-g))) y_g + ((1-g)^2/(g(2-g))) y = ((1-g)/(2-g)) h f(y_new)
    d = (1 - g) / (2 - g)
    assert abs(t.A[2, 2] - d) < 1e-15


def test_inconsistent_esdirk_tableau():
    kw = dict(name="bad", order=1, embedded_order=1, references="", gamma=1,
              a=((0,), (0, 1)), b=(0, 1), b_hat=(0, 1), c=(0, 1), exact=True)
    assert ESDIRKTableau(**kw).stiffly_accurate     # implicit Euler after an explicit stage
    with pytest.raises(ValueError, match=r"inconsistent ESDIRK tableau 'bad': c\[1\]"):
        ESDIRKTableau(**dict(kw, c=(0, 2)))
    with pytest.raises(ValueError, match=r"a\[1\]\[1\] must be gamma"):
        ESDIRKTableau(**dict(kw, a=((0,), (Fraction(1, 2), Fraction(1, 2)))))
    with pytest.raises(ValueError, match="row 1 of `a` must have 2 entries"):
        ESDIRKTableau(**dict(kw, a=((0,), (1,))))


def _slow_manifold_system():
    """``y' = M y`` with eigenvalues -1 and -1e4 (non-normal), from ``y0`` on
    the slow eigenvector: ``y(t) = e^{-t} y0``, while every step must damp the
    rounding that excites the fast mode (``h lambda`` down to -4000)."""
    V = np.array([[1.0, 1.0], [0.5, -1.0]])
    M = V @ np.diag([-1.0, -1e4]) @ np.linalg.inv(V)
    return M, V[:, 0].copy()


@pytest.mark.parametrize("method, order, rtol", [
    ("kvaerno5", 5, 1e-4), ("trbdf2", 2, 1e-1), ("rodas5", 5, 1e-4), ("rodas4", 4, 1e-3),
    ("ros3p", 3, 1e-1)])
def test_convergence_slopes_on_a_stiff_linear_system(method, order, rtol):
    # fixed steps (first_step = max_step = h, and no rejection at this rtol);
    # the exact Jacobian (a Rosenbrock method's order needs it)
    from scipy.linalg import expm
    M, y0 = _slow_manifold_system()
    exact = expm(2.0 * M) @ y0
    errs = []
    for h in (0.5, 0.25, 0.125):
        sol = nk.solve(LINEAR_J, y0, [0.0, 2.0], M.ravel(), method=method, rtol=rtol,
                       atol=1e-12, first_step=h, max_step=h)
        assert sol.success and sol.nreject == 0 and sol.naccept == round(2.0 / h)
        errs.append(np.max(np.abs(sol.y[-1] - exact)))
    slopes = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.abs(slopes - order) < 0.3), (method, errs, slopes)


@pytest.mark.parametrize("method, bound", [("kvaerno5", 10), ("trbdf2", 100)])
def test_esdirk_stiff_linear_against_expm(method, bound):
    M, y0, ts, exact = _stiff_linear()
    for rtol in (1e-5, 1e-8):
        sol = nk.solve(LINEAR, y0, ts, M.ravel(), method=method, rtol=rtol,
                       atol=rtol * 1e-3)
        assert sol.success and sol.method == method
        # measured / rtol: kvaerno5 0.1 and 0.4, trbdf2 23 and 59 (second order:
        # error per step adds up over 1900 steps)
        assert np.max(np.abs(sol.y - exact)) < bound * rtol
        # linear: one (difference) Jacobian for the whole solve, fewer LUs than steps
        assert sol.njev == 1 and sol.nlu < sol.nsteps, (sol.njev, sol.nlu, sol.nsteps)
    # the interpreted loop (Python right-hand side) runs the same steps
    py = nk.solve(linear_py, y0, ts, M.ravel(), method=method, rtol=rtol, atol=rtol * 1e-3)
    assert py.naccept == sol.naccept and py.nlu == sol.nlu
    np.testing.assert_allclose(py.y, sol.y, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("rtol", [1e-10, 1e-12])
@pytest.mark.parametrize("fun", [LINEAR, linear_py], ids=["compiled", "python"])
def test_kvaerno5_converges_at_tight_tolerances_in_both_directions(fun, rtol):
    # A Newton correction at the rounding level of Y leaves Y unchanged, so the
    # next correction is the same and its "rate" is 1; that was taken for
    # divergence, and on this benign system every step size failed down to
    # underflow (backwards at rtol 1e-10: status -2 after 893 rejections)
    M = np.array([[-1.0, 2.0], [-2.0, -1.0]])
    y0 = np.array([1.0, 0.5])
    for ts in (np.linspace(0.0, 2.0, 9), np.linspace(2.0, 0.0, 9), np.array([2.0, 0.0])):
        sol = nk.solve(fun, y0, ts, M.ravel(), method="kvaerno5", rtol=rtol, atol=1e-2 * rtol)
        assert sol.success, (ts[0], ts.size, sol.message)
        exact = np.array([expm(M * (t - ts[0])) @ y0 for t in ts])
        # error / (rtol max|y|), measured: 0.5 forwards, 3.3 backwards (the
        # solution grows by e**2 backwards; 3.3 also at rtol 1e-8, and dopri5 0.7)
        assert np.max(np.abs(sol.y - exact)) < 10 * rtol * np.max(np.abs(exact))
        assert sol.nreject < sol.naccept // 4 + 5, (sol.nreject, sol.naccept)


def test_kvaerno5_dense_output_is_the_hermite_cubic():
    from scipy.linalg import expm
    M, y0, _, _ = _stiff_linear()
    sol = nk.solve(LINEAR, y0, [0.0, 2.0], M.ravel(), method="kvaerno5", rtol=1e-8,
                   atol=1e-11, dense=True)
    d = sol.dense
    assert d.t_grid.size == sol.naccept and d.K_grid.shape[1] == KVAERNO5.n_stages + 1
    k = d.t_grid.size // 2
    t, h, y = d.t_grid[k], d.h_grid[k], d.y_grid[k]
    f0, f1 = d.K_grid[k, 0], d.K_grid[k, -1]
    y1 = y + h * KVAERNO5.B @ d.K_grid[k]
    for th in (0.25, 0.5, 0.9):
        herm = ((1 - th) * y + th * y1 + th * (th - 1) * (
            (1 - 2 * th) * (y1 - y) + (th - 1) * h * f0 + th * h * f1))
        np.testing.assert_allclose(sol(t + th * h), herm, rtol=1e-13, atol=1e-15)
    tq = np.linspace(0.01, 2.0, 23)
    want = np.array([expm(M * q) @ y0 for q in tq])
    assert np.max(np.abs(sol(tq) - want)) < 1e-6


@pytest.mark.parametrize("method, bound", [("kvaerno5", 20), ("trbdf2", 200)])
def test_esdirk_robertson_against_radau(method, bound):
    ode = _with_jac(robertson_rhs, robertson_jac)
    rtol = 1e-6
    sol = nk.solve(ode, ROBERTSON_Y0, ROBERTSON_T, ROBERTSON_THETA, method=method,
                   rtol=rtol, atol=1e-4 * rtol)
    assert sol.success
    err = np.abs(sol.y - ROBERTSON_REF) / (1e-4 * rtol + np.abs(ROBERTSON_REF))
    # every output time is a step end; y2 ~ 1e-5 .. 1e-7 is held to atol = 1e-10
    assert err.max() < bound * rtol, err.max()
    assert np.allclose(sol.y.sum(axis=1), 1.0, atol=1e-12)   # mass is conserved
    assert sol.njev < sol.naccept      # Jacobians are reused across steps


def test_kvaerno5_van_der_pol():
    ode = _with_jac(van_der_pol_rhs, van_der_pol_jac)
    sol = nk.solve(ode, VDP_Y0, VDP_T, VDP_MU, method="kvaerno5", rtol=1e-8, atol=1e-10)
    assert sol.success
    assert np.max(np.abs(sol.y - VDP_REF)) < 1e-6            # measured 7.5e-8
    sol = nk.solve(ode, [2.0, 0.0], VDP6_T, [1e6], method="kvaerno5", rtol=1e-8,
                   atol=1e-10, max_steps=20000)
    assert sol.success, sol.message
    np.testing.assert_allclose(sol.y[:, 0], VDP6_Y1, atol=2e-6)   # measured 2e-8


@nb.njit(cache=True)
def _robertson_jac_90(t, y, th, out):
    """Robertson's Jacobian, 10 % too small: a poor Newton matrix."""
    robertson_jac(t, y, th, out)
    for i in range(3):
        for j in range(3):
            out[i, j] *= 0.9


def test_a_poor_jacobian_costs_iterations_not_accuracy():
    ts = ROBERTSON_T[:4]
    good = nk.solve(_with_jac(robertson_rhs, robertson_jac), ROBERTSON_Y0, ts,
                    ROBERTSON_THETA, method="kvaerno5", rtol=1e-6, atol=1e-10)
    poor = nk.solve(_with_jac(robertson_rhs, _robertson_jac_90), ROBERTSON_Y0, ts,
                    ROBERTSON_THETA, method="kvaerno5", rtol=1e-6, atol=1e-10)
    assert poor.success and poor.nfev > good.nfev and poor.nreject > good.nreject
    np.testing.assert_allclose(poor.y, ROBERTSON_REF[:4], rtol=2e-5, atol=1e-11)
    np.testing.assert_allclose(good.y, ROBERTSON_REF[:4], rtol=2e-5, atol=1e-11)


@pytest.mark.parametrize("method", ["kvaerno5", "trbdf2"])
def test_esdirk_faults_end_the_solve(method):
    import fault_kernels as fk
    T = np.linspace(0.0, 1.0, 5)
    for jac in (None, fk.decay_jac_raises_late):
        sol = nk.solve(nk.ODE(fk.raises_late, jac=jac), [1.0], T, [1.0], method=method)
        assert sol.status == -4 and "`rhs` kernel 'raises_late'" in sol.message
        assert np.isnan(sol.y[-1]).all()
    # a raising Jacobian ends the solve too, but on this linear problem the
    # one taken at t = 0 serves every step: it never meets t > 0.5
    sol = nk.solve(nk.ODE(fk.decay, jac=fk.decay_jac_raises_late), [1.0], T, [1.0],
                   method=method)
    assert sol.success and sol.njev == 1
    sol = nk.solve(nk.ODE(fk.decay, jac=fk.decay_jac_raises_late), [1.0], [0.6, 1.0],
                   [1.0], method=method)
    assert sol.status == -4 and "`jac` kernel 'decay_jac_raises_late'" in sol.message
    sol = nk.solve(LINEAR, [1.0, 1.0], T, np.array([-1.0, 0, 0, -1e4]), method=method,
                   max_steps=3)
    assert sol.status == -3 and "max_steps" in sol.message
    import autograd
    with pytest.raises(ValueError, match="not available through the stiff method"):
        autograd.grad(lambda a: nk.odeint(LINEAR, [1.0, 1.0], T, a, method=method,
                                          gradient="adjoint").sum())(
            np.array([-1.0, 0, 0, -2.0]))


# ---------------------------------------------------------------------------
# ros3p
# ---------------------------------------------------------------------------
def _rosenbrock_stability(tab, z, weights):
    """``R(z) = 1 + z w^T (I - z (alpha + Gamma))^-1 1`` in classical weights."""
    s = tab.n_stages
    beta = np.array([[float(tab.alpha[i][j] + tab.Gamma[i][j]) for j in range(s)]
                     for i in range(s)])
    w = np.array([float(x) for x in weights])
    return 1 + z * w @ np.linalg.solve(np.eye(s) - z * beta, np.ones(s))


def test_ros3p_error_estimate_sees_linear_problems():
    from nodekit.tableaux.rosenbrock import ROS3P as t
    assert t.n_stages == 4 and t.M[3] == 0 and float(t.gamma) == 0.5 + np.sqrt(3) / 6
    # the solution is Lang and Verwer's three-stage ROS3P: b = (2/3, 0, 1/3)
    np.testing.assert_allclose([float(x) for x in t.b], [2 / 3, 0, 1 / 3, 0], atol=1e-15)
    # A-stable with R(inf) = 1 - sqrt(3)
    assert abs(_rosenbrock_stability(t, -1e9, t.b) - (1 - np.sqrt(3))) < 1e-8
    # the published embedded weights (1/3, 1/3, 1/3) give the same R(z) as b
    # (no estimate on y' = lambda y); ours differ by O(z^3)
    for z in (-0.01, -0.1, -1.0):
        pub = _rosenbrock_stability(t, z, (Fraction(1, 3),) * 3 + (0,))
        assert abs(pub - _rosenbrock_stability(t, z, t.b)) < 1e-15
        ours = _rosenbrock_stability(t, z, t.b) - _rosenbrock_stability(t, z, t.b_hat)
        assert 0.01 * abs(z) ** 3 < abs(ours) < 0.2 * abs(z) ** 3
    # and so a linear solve is held to its tolerance
    M, y0, ts, exact = _stiff_linear()
    for rtol in (1e-4, 1e-6):
        sol = nk.solve(LINEAR_J, y0, ts, M.ravel(), method="ros3p", rtol=rtol,
                       atol=rtol * 1e-3)
        assert sol.success and np.max(np.abs(sol.y - exact)) < 10 * rtol


def test_ros3p_robertson_and_van_der_pol_at_loose_tolerances():
    rob = _with_jac(robertson_rhs, robertson_jac)
    for rtol in (1e-4, 1e-6):
        sol = nk.solve(rob, ROBERTSON_Y0, ROBERTSON_T, ROBERTSON_THETA, method="ros3p",
                       rtol=rtol, atol=1e-4 * rtol)
        err = np.abs(sol.y - ROBERTSON_REF) / (1e-4 * rtol + np.abs(ROBERTSON_REF))
        assert sol.success and err.max() < 20 * rtol, err.max()   # measured 2.1, 5.2
    vdp = _with_jac(van_der_pol_rhs, van_der_pol_jac)
    sol = nk.solve(vdp, VDP_Y0, VDP_T, VDP_MU, method="ros3p", rtol=1e-4, atol=1e-6)
    assert sol.success and np.max(np.abs(sol.y - VDP_REF)) < 1e-3   # measured 1.1e-4


@pytest.mark.parametrize("method", ["kvaerno5", "trbdf2", "ros3p"])
def test_new_methods_backward_in_time_and_non_autonomous(method):
    from scipy.linalg import expm
    from nodekit.validation.stiff_kernels import prothero_robinson_rhs
    rtol = {"kvaerno5": 1e-9, "trbdf2": 1e-7, "ros3p": 1e-8}[method]
    # backwards the rotation grows: errors add up over the steps (trbdf2: 210
    # steps, 2.5e-5 measured)
    bound = {"kvaerno5": 100, "trbdf2": 500, "ros3p": 100}[method] * rtol
    M = np.array([[-0.5, 1.0], [-1.0, -0.5]])
    y2 = np.array([1.0, 0.3])
    ts = np.linspace(2.0, 0.0, 5)
    sol = nk.solve(LINEAR_J, y2, ts, M.ravel(), method=method, rtol=rtol, atol=1e-12,
                   dense=True)
    want = np.array([expm(M * (t - 2.0)) @ y2 for t in ts])
    assert sol.success and np.max(np.abs(sol.y - want)) < bound
    assert np.max(np.abs(sol(0.7) - expm(M * -1.3) @ y2)) < 1e-4
    # stiff and time-dependent: y = cos t (kvaerno5 and trbdf2 need no df/dt)
    ts = np.linspace(0.0, 3.0, 7)
    sol = nk.solve(nk.ODE(prothero_robinson_rhs), [1.0], ts, [1e4], method=method,
                   rtol=rtol, atol=1e-10)
    assert sol.success and np.max(np.abs(sol.y[:, 0] - np.cos(ts))) < 100 * rtol


def test_rodas5_controls_a_pure_time_dependent_component():
    # Rodas5's embedded estimate (its last stage) vanishes identically on a
    # component that depends on time alone; the dense-output defect check
    # must catch what it misses (without it: status 0 after 6 steps, error 0.56).
    sol = nk.solve(lambda t, y, th: np.cos(10 * t) + 0 * y, [0.0], [0.0, 2.0],
                   method="rodas5", rtol=1e-6, atol=1e-9)
    assert sol.success
    assert abs(sol.y[-1, 0] - np.sin(20.0) / 10) < 1e-5


def test_rodas5_blind_estimate_is_structural():
    # the reason for the defect check: Rodas5's error weights (classical
    # form) live on its last three stages, which share node 1 and weight
    # d = 0, so they cancel on any f(t).
    w = np.array([float(b - bh) for b, bh in zip(RODAS5.b, RODAS5.b_hat)])
    assert np.all(abs(w[:5]) < 1e-14) and abs(w.sum()) < 1e-14 and abs(w[5:]).min() > 1e-2
    assert np.all(RODAS5.c_arr[5:] == 1.0) and np.all(RODAS5.d_arr[5:] == 0.0)
    assert RODAS5.defect_theta == Fraction(1, 2)


@pytest.mark.parametrize("rtol", [1e-4, 1e-7, 1e-10])
def test_rodas5_forced_decay_error_follows_tolerance(rtol):
    # y' = -y + cos(10 t): time-driven forcing coupled to a decaying mode
    exact = (np.cos(20.0) + 10 * np.sin(20.0) - np.exp(-2.0)) / 101
    sol = nk.solve(lambda t, y, th: -y + np.cos(10 * t), [0.0], [0.0, 2.0],
                   method="rodas5", rtol=rtol, atol=rtol * 1e-3)
    assert sol.success and abs(sol.y[-1, 0] - exact) < 30 * rtol * abs(exact)


def test_defect_theta_must_lie_inside_the_step():
    from dataclasses import replace

    from nodekit.tableaux.rosenbrock import RODAS4
    with pytest.raises(ValueError, match="defect_theta"):
        replace(RODAS4, defect_theta="1")
    tab = replace(RODAS4, defect_theta="1/3")
    classical = tab.defect_weights @ np.array(tab.Gamma, dtype=float)  # on k_i = h f(..)
    assert np.allclose(classical.sum(axis=1), [1 / 3, 1.0])


@pytest.mark.parametrize("method", ["rodas4", "kvaerno5", "ros3p"])
def test_other_stiff_methods_control_a_pure_time_dependent_component(method):
    sol = nk.solve(lambda t, y, th: np.cos(10 * t) + 0 * y, [0.0], [0.0, 2.0],
                   method=method, rtol=1e-6, atol=1e-9)
    assert sol.success
    assert abs(sol.y[-1, 0] - np.sin(20.0) / 10) < 1e-5


#: Error allowed at rtol 1e-6 over Robertson's long horizon, relative in every
#: component (trbdf2 is second order: its error adds up over the steps).
LONG_TOL = {"rodas5": 5e-6, "rodas4": 5e-6, "ros3p": 5e-6, "kvaerno5": 5e-6, "trbdf2": 1e-4}


@pytest.mark.parametrize("method", sorted(LONG_TOL))
def test_robertson_to_1e11_against_the_published_reference(method):
    # y2 ends near 1e-13: atol must be far below it for a relative answer
    ode = nk.ODE(robertson_rhs, jac=robertson_jac)
    sol = nk.solve(ode, ROBERTSON_Y0, ROBERTSON_LONG_T, ROBERTSON_THETA, method=method,
                   rtol=1e-6, atol=1e-22, max_steps=100_000)
    assert sol.success
    err = np.abs(sol.y[1:] - ROBERTSON_LONG_REF[1:]) / ROBERTSON_LONG_REF[1:]
    assert err.max() < LONG_TOL[method]
    assert abs(sol.y[-1].sum() - 1.0) < 1e-12      # the kinetics conserve mass
