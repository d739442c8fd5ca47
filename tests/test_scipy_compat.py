"""SciPy's names in nodekit: method aliases, option hints, atol=0."""
import autograd
import numpy as np
import pytest

import nodekit as nk


def decay(t, y, k):
    return -k[0] * y


@pytest.mark.parametrize("scipy_name, ours", [("RK45", "dopri5"), ("RK23", "bosh3"),
                                              ("DOP853", "dop853"), ("rk45", "dopri5")])
def test_scipy_method_names_are_aliases(scipy_name, ours):
    assert nk.get_tableau(scipy_name) is nk.get_tableau(ours)
    a = nk.solve(decay, [1.0], [0.0, 1.0], [1.0], method=scipy_name, rtol=1e-8)
    b = nk.solve(decay, [1.0], [0.0, 1.0], [1.0], method=ours, rtol=1e-8)
    assert np.array_equal(a.y, b.y) and abs(a.y[-1, 0] - np.exp(-1)) < 1e-7


@pytest.mark.parametrize("name", ["Radau", "BDF", "LSODA"])
def test_scipy_stiff_methods_say_what_to_use(name):
    with pytest.raises(ValueError, match=f"'{name}' is SciPy's .*rodas4"):
        nk.solve(decay, [1.0], [0.0, 1.0], [1.0], method=name)


@pytest.mark.parametrize("option, hint", [
    ("t_eval", "`t` is the output times"), ("t_span", "array of output times"),
    ("args", "go in `theta`"), ("dense_output", "dense=True"),
    ("vectorized", "y0 of shape"),
    ("jac", "vector-Jacobian product")])
@pytest.mark.parametrize("entry", [nk.solve, nk.odeint])
def test_scipy_options_name_their_equivalent(entry, option, hint):
    with pytest.raises(TypeError, match="valid options are") as err:
        entry(decay, [1.0], [0.0, 1.0], [1.0], **{option: None})
    assert f"`{option}`: " in str(err.value) and hint in str(err.value)


def test_events_in_odeint_point_to_odeint_event():
    with pytest.raises(TypeError, match="`events`: .*nk.odeint_event"):
        nk.odeint(decay, [1.0], [0.0, 1.0], [1.0], events=None)


def test_atol_zero_is_a_pure_relative_test():
    sol = nk.solve(decay, [1.0, 2.0], [0.0, 1.0], [1.0], rtol=1e-8, atol=0)
    assert sol.success and np.allclose(sol.y[-1], [np.exp(-1), 2 * np.exp(-1)], rtol=1e-7)
    with pytest.raises(ValueError, match="starts at exactly 0"):
        nk.solve(decay, [0.0, 1.0], [0.0, 1.0], [1.0], atol=0)
    with pytest.raises(ValueError, match="`atol` must be positive"):
        nk.solve(decay, [1.0], [0.0, 1.0], [1.0], atol=-1e-9)


def test_atol_zero_gradients():
    def grad(mode, **kw):
        return autograd.grad(lambda k: nk.odeint(decay, [1.0], [0.0, 1.0], k, rtol=1e-8,
                                                 atol=0, gradient=mode, **kw)[-1, 0])(
            np.array([1.0]))
    assert abs(grad("discrete")[0] + np.exp(-1)) < 1e-6
    assert abs(grad("adjoint", adjoint_atol=1e-12)[0] + np.exp(-1)) < 1e-6
    with pytest.raises(ValueError, match="adjoint_atol"):
        grad("adjoint")
