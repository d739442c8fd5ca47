"""Issue 16, "Unclear errors": the items that still misled after the first
fixes, each with the message it gets now."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest

import nodekit as nk
from problems import LV, LV_THETA, LV_Y0, lv_py
from test_check_ode import lv_rhs, vjp_no_theta

T = np.linspace(0.0, 1.0, 5)


@pytest.mark.parametrize("fun", [LV, lv_py], ids=["compiled", "python"])
def test_fixed_step_method_without_step_size_names_the_method_not_an_adjoint(fun):
    for run in (lambda: nk.odeint(fun, LV_Y0, T, LV_THETA, method="euler"),
                lambda: autograd.grad(lambda th: anp.sum(
                    nk.odeint(fun, LV_Y0, T, th, method="rk4")))(LV_THETA)):
        with pytest.raises(ValueError, match=r"`step_size` is required for the fixed-step "
                                             r"method '(euler|rk4)'; pass step_size=h") as e:
            run()
        assert "adjoint" not in str(e.value)


def test_fixed_step_adjoint_method_without_step_size_says_so():
    with pytest.raises(ValueError, match=r"`step_size` is required for the fixed-step "
                                         r"adjoint_method 'rk4'.*adaptive adjoint_method"):
        nk.odeint(LV, LV_Y0, T, LV_THETA, adjoint_method="rk4")


@pytest.mark.parametrize("mode", ["adjoint", "interpolated", "discrete"])
def test_vjp_never_writing_out_theta_is_an_error_not_a_tiny_gradient(mode):
    ode = nk.ODE(lv_rhs, vjp_no_theta)
    loss = lambda th: anp.sum(nk.odeint(ode, LV_Y0, T, th, gradient=mode))
    with pytest.raises(ValueError, match=r"never writes out_theta \[0\], \[1\], \[2\], \[3\] "
                                         r"\(4 of 4 entries\).*nk.check_ode"):
        autograd.grad(loss)(LV_THETA)
    nk.odeint(ode, LV_Y0, T, LV_THETA, gradient=mode)  # forward only: no vjp called


@pytest.mark.parametrize("mode", ["adjoint", "discrete"])
def test_gradient_at_an_overflowing_state_is_a_solve_error(mode):
    loss = lambda y0: anp.sum(nk.odeint(LV, y0, T, LV_THETA, gradient=mode))
    with pytest.raises(nk.SolveError, match="Non-finite derivative or solution at t=0"):
        autograd.grad(loss)(np.array([1e300, 1e300]))


def test_odeint_entry_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"`max_steps` must be at most 2\*\*63 - 1"):
        nk.odeint(LV, LV_Y0, T, LV_THETA, max_steps=2 ** 63)
    with pytest.raises(TypeError, match=r"nodekit calls fun\(t, y, theta\)"):
        nk.odeint(lambda t, y: -y, LV_Y0, T)


def test_a_nan_loss_is_not_blamed_on_the_right_hand_side():
    res = nk.train.fit(lambda x: (np.nan, np.zeros(1)), np.zeros(1), iters=3, progress=False,
                       optimizer=nk.train.SGD(), value_and_grad=True)
    assert not res.success and "loss nan" in res.message
    assert "overflow" not in res.message and "right-hand side" not in res.message
