"""Bad input gets a clear error; failed solves report status and advice."""
import numba
import numpy as np
import pytest

import nodekit as nk

from problems import BLOWUP, LV, LV_THETA, LV_Y0, lv_py

T = np.linspace(0.0, 1.0, 5)


@pytest.mark.parametrize("fun", [LV, lv_py], ids=["compiled", "python"])
@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(y0=[1.0, np.nan]), ValueError, r"`y0` must be finite; got nan at index \(1,\)"),
    (dict(y0=[1.0, "a"]), TypeError, "`y0` must be an array of real numbers"),
    (dict(theta=[1.5, np.inf, 3.0, 1.0]), ValueError, "`theta` must be finite"),
    (dict(t=[0.0, np.nan]), ValueError, "`t` must be finite"),
    (dict(t=[0.0, 1.0, 1.0]), ValueError, "strictly increasing or strictly decreasing"),
    (dict(t=[0.0, 1.0, 0.5]), ValueError, r"t\[1\]=1.0, t\[2\]=0.5"),
    (dict(t=[0.0]), ValueError, "at least 2 times"),
    (dict(t=[[0.0, 1.0]]), ValueError, "1-D array"),
    (dict(rtol=0.0), ValueError, "`rtol` must be positive"),
    (dict(atol=-1.0), ValueError, "`atol` must be positive"),
    (dict(rtol=1e-20), ValueError, "machine epsilon"),
    (dict(atol=[1e-6, 1e-6, 1e-6]), ValueError, r"broadcasts to y0.shape=\(2,\); got shape \(3,\)"),
    (dict(method="rk99"), ValueError, "'dopri5'"),
    (dict(method="rk4"), ValueError, "`step_size` is required"),
    (dict(step_size=-0.1), ValueError, "`step_size` must be a positive number"),
    (dict(max_steps=0), ValueError, "`max_steps` must be a positive integer"),
    (dict(max_steps=1.5), ValueError, "`max_steps` must be a positive integer"),
    (dict(first_step=0.0), ValueError, "`first_step`"),
    (dict(max_step=-1), ValueError, "`max_step`"),
    (dict(rtoll=1e-3), TypeError, "unexpected keyword argument.*'rtoll'"),
    (dict(controller="pi"), TypeError, "`controller` must be an nk.PIController"),
])
def test_bad_input(fun, kwargs, exc, match):
    args = dict(y0=LV_Y0, t=T, theta=LV_THETA)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        nk.solve(fun, args.pop("y0"), args.pop("t"), args.pop("theta"), **args)


def test_wrong_output_shape_of_python_fun():
    with pytest.raises(ValueError, match=r"shape y0.shape=\(2,\); it returned shape \(3,\)"):
        nk.solve(lambda t, y, th: np.ones(3), [1.0, 2.0], T)


def test_fun_not_callable():
    with pytest.raises(TypeError, match="`fun` must be a callable"):
        nk.solve(3.0, [1.0], T)


def test_compiled_theta_must_be_flat():
    with pytest.raises(ValueError, match="flat"):
        nk.solve(LV, LV_Y0, T, LV_THETA.reshape(2, 2))


def test_ode_kernels_must_be_jitted_with_right_arity():
    def plain(t, y, th, out):
        out[:] = -y
    with pytest.raises(TypeError, match="must be a Numba-jitted function"):
        nk.ODE(plain)

    @numba.njit
    def three(t, y, out):
        out[:] = -y
    with pytest.raises(TypeError, match=r"must take 4 arguments"):
        nk.ODE(three)

    @numba.njit
    def rhs(t, y, th, out):
        out[:] = -y

    @numba.njit
    def bad_vjp(t, y, th, a):
        return 0.0
    with pytest.raises(TypeError, match=r"`vjp` must take 6 arguments"):
        nk.ODE(rhs, bad_vjp)


def test_unknown_tableau_name_lists_valid():
    with pytest.raises(ValueError) as info:
        nk.get_tableau("rk99")
    for name in ("dopri5", "tsit5", "dop853", "rk4"):
        assert name in str(info.value)


def test_pi_controller_validates():
    with pytest.raises(ValueError, match="`safety`"):
        nk.PIController(safety=1.5)
    with pytest.raises(ValueError, match="`min_factor`"):
        nk.PIController(min_factor=0.0)


# --- failures mid-solve --------------------------------------------------------
@pytest.mark.parametrize("fun", [BLOWUP, lambda t, y, th: y ** 2], ids=["compiled", "python"])
def test_blowup_reports_time_reached(fun):
    # y' = y^2, y(0) = 1 blows up at t = 1
    sol = nk.solve(fun, [1.0], [0.0, 0.5, 2.0])
    assert not sol.success and sol.status in (-1, -2)
    assert 0.99 < sol.t_reached < 1.0 + 1e-5
    assert f"t={sol.t_reached:.6g}" in sol.message
    np.testing.assert_allclose(sol.y[1, 0], 2.0, rtol=1e-5)  # before the failure: fine
    assert np.isnan(sol.y[2]).all()                           # after: NaN, not garbage


def test_max_steps_exceeded():
    sol = nk.solve(LV, LV_Y0, [0.0, 20.0], LV_THETA, max_steps=10)
    assert sol.status == -3 and not sol.success
    assert "max_steps=10" in sol.message and "Increase `max_steps`" in sol.message
    assert sol.nsteps == 10


def test_nonfinite_derivative():
    with np.errstate(invalid="ignore", divide="ignore"):
        sol = nk.solve(lambda t, y, th: y * np.log(1.0 - t), [1.0], [0.0, 2.0])
    assert sol.status == -1
    assert "Non-finite" in sol.message


def test_fixed_step_method_reports_nonfinite():
    with np.errstate(over="ignore", invalid="ignore"):
        sol = nk.solve(lambda t, y, th: y ** 2, [1.0], [0.0, 2.0], method="rk4", step_size=0.1)
    assert sol.status == -1 and "Non-finite" in sol.message


def test_step_size_underflow_on_a_very_stiff_problem():
    # explicit stability needs h ~ 1e-18, below the smallest increment near t = 1
    sol = nk.solve(lambda t, y, th: -1e18 * (y - np.cos(t)), [np.cos(1.0)], [1.0, 2.0])
    assert sol.status == -2 and not sol.success
    assert "Step size underflow" in sol.message and "stiff" in sol.message
    assert 1.0 <= sol.t_reached < 2.0


@numba.njit(cache=True)
def _inverse(t, y, th, out):
    out[0] = 1.0 / y[0]


def test_division_by_zero_in_a_compiled_kernel_is_a_failure_not_success():
    # Python's error model would print and swallow the ZeroDivisionError
    sol = nk.solve(nk.ODE(_inverse), [0.0], [0.0, 1.0])
    assert sol.status == -1 and "Non-finite" in sol.message


@pytest.mark.parametrize("name", ["y0", "t", "theta"])
def test_a_list_of_traced_values_asks_for_an_autograd_array(name):
    import autograd
    import autograd.numpy as anp

    def loss(k):
        args = dict(y0=[1.0], t=[0.0, 1.0], theta=[1.0, 2.0])
        args[name] = {"y0": [k], "t": [0.0, k], "theta": [k, 2.0]}[name]
        return anp.sum(nk.odeint(lambda t, y, th: -th[0] * th[1] * y, **args))

    with pytest.raises(TypeError, match=rf"`{name}` is a list or tuple holding values that "
                                        rf"autograd is tracing.*{name}=anp.array"):
        autograd.grad(loss)(0.5)
