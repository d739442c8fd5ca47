"""Gradients through the stiff methods (``nk.odeint(method=<stiff>)``).

``gradient='interpolated'`` reads ``y`` from the forward dense output and
integrates the adjoint ``[a, g]`` backwards with a stiff method too; it is
checked against a closed form (a stiff linear system, whose solution is a
matrix exponential).  The modes that are refused say so.  The comparison
with central differences of SciPy's Radau at rtol 1e-12 on Robertson and Van
der Pol (mu = 1000), for every method, is ``validation/stiff_gradients.py``
(SciPy's solves take about a minute).
"""
import autograd
import autograd.numpy as anp
import numba as nb
import numpy as np
import pytest
from scipy.linalg import expm, expm_frechet

import nodekit as nk
from tests.problems import LINEAR, linear_rhs, linear_vjp

#: One method of each family here (and rodas4, the default backward method of
#: rodas5); every method, on longer horizons, in validation/stiff_gradients.py.
QUICK = ["rodas5", "rodas4", "kvaerno5"]


def robertson(t, y, k):
    return anp.array([-k[0] * y[0] + k[2] * y[1] * y[2],
                      k[0] * y[0] - k[2] * y[1] * y[2] - k[1] * y[1] ** 2,
                      k[1] * y[1] ** 2])


def linear(t, y, a):
    return anp.dot(anp.reshape(a, (2, 2)), y)


def _loss(fun, ts, method, **kw):
    def loss(y0, theta):
        return anp.sum(nk.odeint(fun, y0, ts, theta, method=method,
                                 gradient="interpolated", **kw) ** 2)
    return loss


ROB_Y0 = np.array([1.0, 0.0, 0.0])
ROB_K = np.array([0.04, 3e7, 1e4])
ROB_T = np.array([0.0, 0.1, 1.0])


#: The relative error allowed in every gradient component at rtol 1e-9.
TOL = {"rodas5": 1e-5, "rodas4": 1e-5, "kvaerno5": 1e-5}


@pytest.mark.parametrize("method", QUICK)
def test_stiff_linear_gradient_matches_the_matrix_exponential(method):
    # L = sum(expm(A T) y0): dL/dy0 = expm(A T)^T 1, dL/dA_ij = 1^T L(A T, T E_ij) y0
    A = np.array([[-1.0, 0.5], [100.0, -1e4]])
    y0 = np.array([1.0, 2.0])
    T = 1.0

    def loss(y0, a):
        return anp.sum(nk.odeint(linear, y0, [0.0, T], a, method=method,
                                 gradient="interpolated", rtol=1e-9, atol=1e-12)[-1])

    gy, ga = autograd.grad(loss, (0, 1))(y0, A.ravel())
    assert np.allclose(gy, expm(A * T).T @ np.ones(2), rtol=TOL[method] / 10, atol=0)
    exact = np.array([np.sum(expm_frechet(A * T, T * np.eye(4)[k].reshape(2, 2),
                                          compute_expm=False) @ y0) for k in range(4)])
    assert np.allclose(ga, exact, rtol=TOL[method], atol=TOL[method] * 1e-3 * abs(exact).max())


def test_stiff_backward_pass_of_an_explicit_forward_pass():
    # adjoint_method names a stiff method: the backsolve ("adjoint") integrates
    # [y, a, g] with it (x columns of J by differences, a columns exact)
    def loss(y0, k, mode, method):
        return anp.sum(nk.odeint(lambda t, y, k: -k * y, y0, [0.0, 0.5, 1.0], k,
                                 gradient=mode, adjoint_method=method, rtol=1e-10,
                                 atol=1e-12) ** 2)
    y0, k = np.array([1.5]), np.array([0.7])
    e = np.exp(-k * np.array([0.5, 1.0]))
    gy_exact = 2 * y0 * (1.0 + np.sum(e ** 2))  # the row at t0 counts too
    gk_exact = -2 * y0 ** 2 * np.sum(np.array([0.5, 1.0]) * e ** 2)
    for mode in ("adjoint", "interpolated"):
        for method in ("rodas4", "kvaerno5"):
            gy, gk = autograd.grad(loss, (0, 1))(y0, k, mode, method)
            assert np.allclose(gy, gy_exact, rtol=1e-7) and np.allclose(gk, gk_exact,
                                                                         rtol=1e-7)


@pytest.mark.parametrize("method", ["kvaerno5", "trbdf2"])
def test_esdirk_discrete_gradient(method):
    # the closed form, and central differences of the forward computation itself
    # with its steps frozen (max_step = first_step = h, tolerances that accept
    # every step; on a linear problem Newton's one iteration is exact)
    A = np.array([[-1.0, 0.5], [100.0, -1e4]])
    y0 = np.array([1.0, 2.0])
    ts = [0.0, 0.5, 1.0]

    def loss(y0, a, **kw):
        return anp.sum(nk.odeint(linear, y0, ts, a, method=method, gradient="discrete",
                                 **kw)[-1])

    gy, ga = autograd.grad(loss, (0, 1))(y0, A.ravel(), rtol=1e-9, atol=1e-12)
    exact = np.array([np.sum(expm_frechet(A, np.eye(4)[k].reshape(2, 2),
                                          compute_expm=False) @ y0) for k in range(4)])
    tol = 1e-7 if method == "kvaerno5" else 1e-5
    assert np.allclose(gy, expm(A).T @ np.ones(2), rtol=tol, atol=0)
    assert np.allclose(ga, exact, rtol=tol, atol=tol * 1e-3 * abs(exact).max())

    frozen = dict(rtol=1e3, atol=1e3, max_step=0.0625, first_step=0.0625)  # exact in binary
    st = {}
    gy, ga = autograd.grad(loss, (0, 1))(y0, A.ravel(), stats=st, **frozen)
    assert st["nsteps_forward"] == st["naccept_forward"] == 16
    p = np.concatenate([y0, A.ravel()])
    fd = np.empty(6)
    for i in range(6):
        d = np.zeros(6)
        d[i] = 1e-6 * max(1.0, abs(p[i]))
        fd[i] = (loss((p + d)[:2], (p + d)[2:], **frozen)
                 - loss((p - d)[:2], (p - d)[2:], **frozen)) / (2 * d[i])
    # (atol: the differences' rounding, 1e-16 / 1e-6 on a loss of order 1)
    np.testing.assert_allclose(np.concatenate([gy, ga]), fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("mode", ["adjoint", "discrete"])
def test_unavailable_modes_are_refused_clearly(mode):
    loss = _loss(robertson, ROB_T, "rodas5")

    def loss_mode(k):
        return anp.sum(nk.odeint(robertson, ROB_Y0, ROB_T, k, method="rodas5",
                                 gradient=mode))
    with pytest.raises(ValueError, match=f"gradient='{mode}' is not available .*'rodas5'"
                                         ".*gradient='interpolated'"):
        autograd.grad(loss_mode)(ROB_K)
    # without a gradient the forward solve runs in every mode
    ys = nk.odeint(robertson, ROB_Y0, ROB_T, ROB_K, method="rodas5", gradient=mode)
    assert np.allclose(ys[-1].sum(), 1.0)
    assert loss(ROB_Y0, ROB_K) > 0


@pytest.mark.parametrize("method", ["kvaerno5", "trbdf2"])
def test_compiled_esdirk_discrete_sweep_equals_the_interpreted_one(method):
    # nk.ODE kernels run the compiled sweep, a Python fun its interpreted twin:
    # the same algorithm on the same recorded steps, so the same numbers
    A = np.array([[-1.0, 0.5], [100.0, -1e4]])
    y0 = np.array([1.0, 2.0])
    ts = np.array([0.0, 0.3, 1.0])
    W = np.array([[0.5, -1.0], [2.0, 1.0], [1.5, 0.25]])

    def loss(fun):
        def f(y0, a):
            ys = nk.odeint(fun, y0, ts, a, method=method, gradient="discrete",
                           rtol=1e-8, atol=1e-11)
            return anp.sum(W * ys)
        return f

    gc = autograd.grad(loss(LINEAR), (0, 1))(y0, A.ravel())
    gp = autograd.grad(loss(linear), (0, 1))(y0, A.ravel())
    for c, p in zip(gc, gp):
        np.testing.assert_allclose(c, p, rtol=1e-11, atol=1e-14 * abs(p).max())
    # and the closed form: sum_j W_j . expm(A t_j) y0
    exact_y0 = sum(expm(A * t).T @ w for t, w in zip(ts, W))
    np.testing.assert_allclose(gc[0], exact_y0, rtol=1e-5)


def test_compiled_esdirk_discrete_sweep_reports_a_failing_vjp():
    @nb.njit(cache=True)
    def bad_vjp(t, y, th, a, out_y, out_th):
        if t > 0.5:
            raise ValueError("vjp exploded")
        linear_vjp(t, y, th, a, out_y, out_th)

    ode = nk.ODE(linear_rhs, bad_vjp)
    A = np.array([[-1.0, 0.5], [1.0, -3.0]])

    def loss(a):
        return anp.sum(nk.odeint(ode, np.ones(2), [0.0, 1.0], a, method="kvaerno5",
                                 gradient="discrete"))

    with pytest.raises(nk.GradientError, match="vjp exploded.*discrete backward pass"):
        autograd.grad(loss)(A.ravel())
