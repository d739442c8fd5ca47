"""``nk.check_ode``: correct kernels pass, and each kind of faulty kernel is
caught with a message naming the problem (faulty kernels at module level, so
Numba caches them)."""
import numba
import numpy as np
import pytest

import nodekit as nk
from problems import LV, LV_THETA, LV_Y0
from nodekit.validation.kernels import lotka_volterra_rhs as lv_rhs
from nodekit.validation.kernels import lotka_volterra_vjp as lv_vjp

Y = np.array([1.3, 0.7])  # a point where no term of LV vanishes


@numba.njit(cache=True)
def lv_out_y(y, th, a, out_y):
    """The right ``out_y`` of LV's VJP."""
    out_y[0] = a[0] * (th[0] - th[1] * y[1]) + a[1] * th[3] * y[1]
    out_y[1] = -a[0] * th[1] * y[0] + a[1] * (-th[2] + th[3] * y[0])


@numba.njit(cache=True)
def vjp_sign_error(t, y, th, a, out_y, out_th):
    """LV's VJP with the sign of d f0/d theta1 flipped."""
    lv_out_y(y, th, a, out_y)
    out_th[0] = a[0] * y[0]
    out_th[1] = a[0] * y[0] * y[1]
    out_th[2] = -a[1] * y[1]
    out_th[3] = a[1] * y[0] * y[1]
    return 0.0


@numba.njit(cache=True)
def vjp_no_theta(t, y, th, a, out_y, out_th):
    """LV's VJP that never writes ``out_theta``."""
    lv_out_y(y, th, a, out_y)
    return 0.0


@numba.njit(cache=True)
def lv_jac(t, y, th, out):
    out[0, 0] = th[0] - th[1] * y[1]
    out[0, 1] = -th[1] * y[0]
    out[1, 0] = th[3] * y[1]
    out[1, 1] = -th[2] + th[3] * y[0]


@numba.njit(cache=True)
def lv_jac_wrong(t, y, th, out):
    """``out[1, 0]`` uses ``y[0]`` instead of ``y[1]``."""
    out[0, 0] = th[0] - th[1] * y[1]
    out[0, 1] = -th[1] * y[0]
    out[1, 0] = th[3] * y[0]
    out[1, 1] = -th[2] + th[3] * y[0]


@numba.njit(cache=True)
def writes_past_state(t, y, th, out):
    out[0] = -th[0] * y[0]
    out[1] = -th[0] * y[1]
    out[2] = 0.0


@numba.njit(cache=True)
def writes_short_of_state(t, y, th, out):
    out[0] = -th[0] * y[0]


@numba.njit(cache=True)
def decay_rhs(t, y, th, out):
    for i in range(y.size):
        out[i] = -th[0] * np.cos(t) * y[i]


@numba.njit(cache=True)
def decay_vjp_forgets_t(t, y, th, a, out_y, out_th):
    """Right ``out_y`` and ``out_theta``, but returns 0 for ``a^T df/dt``."""
    out_th[0] = 0.0
    for i in range(y.size):
        out_y[i] = -th[0] * np.cos(t) * a[i]
        out_th[0] -= np.cos(t) * y[i] * a[i]
    return 0.0


@numba.njit(cache=True)
def vjp_writes_y(t, y, th, a, out_y, out_th):
    y[0] = 0.0
    out_y[0] = 0.0
    out_th[0] = 0.0
    return 0.0


def test_correct_lv_passes():
    report = nk.check_ode(nk.ODE(lv_rhs, lv_vjp, lv_jac, n_states=2, n_theta=4),
                          Y, LV_THETA)
    assert report.ok, str(report)
    assert [c.passed for c in report.checks] == [True] * 6 + [None, None]
    assert "agree with central differences" in report["vjp values"].message
    assert "check_ode(" in str(report) and "all checks passed" in str(report)
    assert nk.check_ode(LV, Y, LV_THETA, t=2.0, raise_on_failure=True).ok


def test_vjp_sign_error_is_caught():
    report = nk.check_ode(nk.ODE(lv_rhs, vjp_sign_error), Y, LV_THETA)
    assert not report.ok
    assert [c.name for c in report.failures] == ["vjp values"]
    msg = report["vjp values"].message
    assert "out_theta[1]" in msg and "opposite sign" in msg
    assert "out_y" not in msg and "out_theta[0]" not in msg
    with pytest.raises(nk.KernelCheckError, match=r"out_theta\[1\].*opposite sign") as e:
        nk.check_ode(nk.ODE(lv_rhs, vjp_sign_error), Y, LV_THETA, raise_on_failure=True)
    assert e.value.report.failures == report.failures
    assert isinstance(e.value, ValueError)


def test_vjp_never_writing_out_theta_is_caught():
    report = nk.check_ode(nk.ODE(lv_rhs, vjp_no_theta), Y, LV_THETA)
    assert [c.name for c in report.failures] == ["vjp"]
    msg = report["vjp"].message
    assert "never writes out_theta" in msg and "4 of 4 entries" in msg
    assert report["vjp values"].passed is None  # not compared: garbage in out_theta


@numba.njit(cache=True)
def two_rates_rhs(t, y, th, out):
    """``y0' = -k0 y0 + k1 y1**2``, ``y1' = k0 y0 - k1 y1**2``: with ``y1``
    near 1e-5, ``d/dk1`` is about 1e-10 where ``d/dk0`` is about 1."""
    r = th[0] * y[0] - th[1] * y[1] ** 2
    out[0] = -r
    out[1] = r


@numba.njit(cache=True)
def two_rates_vjp_small_sign_error(t, y, th, a, out_y, out_th):
    """The right VJP but for the sign of ``out_theta[1]``."""
    d = a[1] - a[0]
    out_y[0] = d * th[0]
    out_y[1] = -2.0 * d * th[1] * y[1]
    out_th[0] = d * y[0]
    out_th[1] = d * y[1] ** 2  # right: -d * y[1] ** 2
    return 0.0


def test_a_sign_error_in_a_small_entry_is_caught():
    # each entry is judged on its own size: scaled by the largest entry of
    # out_theta (about 1), this 1e-10 entry passed with either sign
    ode = nk.ODE(two_rates_rhs, two_rates_vjp_small_sign_error)
    for seed in range(3):
        report = nk.check_ode(ode, [0.7, 1e-5], [0.04, 3e7], seed=seed)
        assert [c.name for c in report.failures] == ["vjp values"]
        assert "out_theta[1]" in report["vjp values"].message
        assert "opposite sign" in report["vjp values"].message
        assert "out_theta[0]" not in report["vjp values"].message


def test_vjp_wrong_time_derivative_and_writes_into_y():
    ode = nk.ODE(decay_rhs, decay_vjp_forgets_t)
    report = nk.check_ode(ode, [0.5, 2.0], [0.7], t=1.0)
    assert [c.name for c in report.failures] == ["vjp values"]
    assert "the return value a^T df/dt = 0" in report["vjp values"].message
    assert "out_y" not in report["vjp values"].message
    assert nk.check_ode(ode, [0.5, 2.0], [0.7], t=0.0).ok  # df/dt = 0 at t = 0
    assert not nk.check_ode(ode, [0.5, 2.0], [0.7]).ok  # so the default time is not 0
    report = nk.check_ode(nk.ODE(writes_short_of_state, vjp_writes_y), [1.0], [0.5])
    assert "writes into one of its inputs" in report["vjp"].message


def test_wrong_jac_is_caught():
    report = nk.check_ode(nk.ODE(lv_rhs, lv_vjp, lv_jac_wrong), Y, LV_THETA)
    assert [c.name for c in report.failures] == ["jac values"]
    msg = report["jac values"].message
    assert "out[1, 0]" in msg and "out[0, 0]" not in msg


def test_kernel_writing_past_the_state_is_caught():
    report = nk.check_ode(nk.ODE(writes_past_state), [1.0, 2.0], [0.5])
    assert [c.name for c in report.failures] == ["rhs"]
    assert "indexes past the end" in report["rhs"].message
    assert report["vjp"].passed is None


def test_kernel_writing_short_of_the_state_is_caught():
    report = nk.check_ode(nk.ODE(writes_short_of_state), [1.0, 2.0], [0.5])
    assert [c.name for c in report.failures] == ["rhs"]
    assert "never writes out[1]" in report["rhs"].message


def test_theta_too_short_is_caught():
    # undeclared sizes: the checked call finds the read past theta
    report = nk.check_ode(nk.ODE(lv_rhs, lv_vjp), Y, LV_THETA[:3])
    assert report["rhs"].passed is False
    assert "indexes past the end" in report["rhs"].message
    # declared sizes: named before any kernel runs
    report = nk.check_ode(nk.ODE(lv_rhs, lv_vjp, n_states=2, n_theta=4), Y, LV_THETA[:3])
    assert [c.name for c in report.failures] == ["sizes"]
    assert "`theta` must have 4 values" in report["sizes"].message
    assert all(c.passed is None for c in report.checks[1:])


def test_symbolic_and_nn_odes():
    from nodekit.nn import Dense, Sequential
    from nodekit.symbolic import ODESystem
    lv = ODESystem.from_strings({"x": "a*x - b*x*y", "y": "-c*y + d*x*y"},
                                params=["a", "b", "c", "d"]).compile()
    report = nk.check_ode(lv, Y, LV_THETA)
    assert report.ok and all(c.passed for c in report.checks), str(report)
    assert not nk.check_ode(lv, [1.0, 2.0, 3.0], LV_THETA).ok
    model = Sequential(Dense(2, 4), "tanh", Dense(4, 2))
    theta = model.init(seed=1)
    report = nk.check_ode(model.ode, np.array([[0.3, -0.2], [1.0, 0.5]]), theta)
    assert report.ok and report["vjp values"].passed, str(report)
    report = nk.check_ode(model.ode, LV_Y0, theta[:5])
    assert [c.name for c in report.failures] == ["sizes"]


def test_bad_arguments():
    with pytest.raises(TypeError, match="nk.ODE"):
        nk.check_ode(lambda t, y, th: -y, [1.0])
    with pytest.raises(ValueError, match="`y0` must be finite"):
        nk.check_ode(LV, [np.nan, 1.0], LV_THETA)
    with pytest.raises(ValueError, match="`a` must have the shape"):
        nk.check_ode(LV, Y, LV_THETA, a=[1.0])
