"""Hairer's stiffness test in the explicit methods: it fires on a stiff
problem (the solve goes on and says so) and stays quiet on a long non-stiff
one."""
import warnings

import numpy as np
import pytest

import nodekit as nk
from nodekit.integrate import _stiffness_test
from nodekit.tableaux import get_tableau
from nodekit.validation.kernels import lotka_volterra_rhs
from nodekit.validation.stiff_kernels import robertson_rhs

ROBERTSON = np.array([0.04, 3e7, 1e4])


def test_the_test_reads_the_last_stage_at_c_1_with_hairers_bounds():
    assert _stiffness_test(get_tableau("dopri5")) == (5, 3.25)
    assert _stiffness_test(get_tableau("dop853")) == (11, 6.1)
    assert _stiffness_test(get_tableau("rk4")) == (-1, 0.0)


@pytest.mark.parametrize("method", ["dopri5", "dop853"])
def test_robertson_is_found_stiff_early_and_the_message_names_a_stiff_method(method):
    with pytest.warns(nk.StiffnessWarning, match="looks stiff from t="):
        sol = nk.solve(nk.ODE(robertson_rhs), [1.0, 0.0, 0.0], [0.0, 1e3], ROBERTSON,
                       method=method, rtol=1e-6, atol=1e-10, max_steps=30000)
    assert sol.status == -3  # still grinding at max_steps, as before
    assert "max_steps=30000" in sol.message and "method='rodas5'" in sol.message
    # the fast transient is over by t ~ 1e-2; the test fires within a few time units
    t_from = float(sol.message.split("looks stiff from t=")[1].split(":")[0])
    assert 0.0 < t_from < 5.0 < sol.t_reached


def test_a_long_non_stiff_solve_is_not_flagged():
    with warnings.catch_warnings():
        warnings.simplefilter("error", nk.StiffnessWarning)
        sol = nk.solve(nk.ODE(lotka_volterra_rhs), [1.0, 1.0], [0.0, 3000.0],
                       [1.5, 1.0, 3.0, 1.0], rtol=1e-8, atol=1e-10)
    assert sol.success and sol.nsteps > 50000 and "stiff" not in sol.message


def test_the_interpreted_loop_runs_the_same_test():
    def robertson(t, y, k):
        return np.array([-k[0] * y[0] + k[2] * y[1] * y[2],
                         k[0] * y[0] - k[2] * y[1] * y[2] - k[1] * y[1] ** 2,
                         k[1] * y[1] ** 2])
    opts = dict(rtol=1e-6, atol=1e-10, max_steps=3000)
    with pytest.warns(nk.StiffnessWarning):
        slow = nk.solve(robertson, [1.0, 0.0, 0.0], [0.0, 1e3], ROBERTSON, **opts)
    with pytest.warns(nk.StiffnessWarning):
        fast = nk.solve(nk.ODE(robertson_rhs), [1.0, 0.0, 0.0], [0.0, 1e3], ROBERTSON, **opts)
    assert slow.status == fast.status == -3 and slow.message == fast.message
