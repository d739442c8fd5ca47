"""Faults of the gradient code (issue: "no silently wrong number"): the
continuous adjoint's drift, forward records kept past their use, second-order
derivatives, and errors that must say what to do."""
import gc
import threading
import warnings

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from problems import LV, LV_THETA, LV_Y0, lv_py

import nodekit as nk
from nodekit.primitive import ForwardRecord
from nodekit.validation.kernels import COMPILED

LORENZ = COMPILED["lorenz"]
LORENZ_THETA = np.array([10.0, 28.0, 8.0 / 3.0])
LORENZ_GRAD = np.array([0.525, 0.428, -16.98])  # discrete, interpolated and FD agree


def _lorenz_grad(mode, **kw):
    loss = lambda th: anp.sum(nk.odeint(LORENZ, [1.0, 1.0, 1.0], [0.0, 2.0], th,
                                        gradient=mode, **kw)[-1])
    return autograd.grad(loss)(LORENZ_THETA)


def _live_records():
    gc.collect()
    return sum(type(o) is ForwardRecord for o in gc.get_objects())  # no proxy lookups


# --- the continuous adjoint warns when its backsolve drifts ------------------------
def test_adjoint_drift_on_a_chaotic_problem_warns_once_and_names_the_cure():
    with pytest.warns(nk.AdjointDriftWarning, match="drift.*interpolated.*discrete") as rec:
        g = _lorenz_grad("adjoint")
    assert len([w for w in rec if issubclass(w.category, nk.AdjointDriftWarning)]) == 1
    assert issubclass(nk.AdjointDriftWarning, UserWarning)
    assert np.max(np.abs(g - LORENZ_GRAD)) > 1.0  # the wrong number it warns about


@pytest.mark.parametrize("mode", ["interpolated", "discrete"])
def test_drift_free_modes_are_right_on_the_chaotic_problem_without_warning(mode):
    with warnings.catch_warnings():
        warnings.simplefilter("error", nk.AdjointDriftWarning)
        g = _lorenz_grad(mode)
    np.testing.assert_allclose(g, LORENZ_GRAD, atol=2e-3)


def test_no_drift_warning_on_a_benign_problem_and_warning_can_be_an_error():
    ts = np.linspace(0.0, 20.0, 50)
    with warnings.catch_warnings():
        warnings.simplefilter("error", nk.AdjointDriftWarning)
        autograd.grad(lambda th: anp.sum(nk.odeint(LV, LV_Y0, ts, th) ** 2))(LV_THETA)
        with pytest.raises(nk.AdjointDriftWarning):
            _lorenz_grad("adjoint")


# --- forward records live only as long as a gradient can be asked for --------------
@pytest.mark.parametrize("mode", ["discrete", "interpolated", "adjoint"])
def test_untraced_outputs_keep_no_forward_record(mode):
    before = _live_records()
    kept = [nk.odeint(LV, LV_Y0, np.linspace(0.0, 5.0, 3), LV_THETA, gradient=mode)
            for _ in range(20)]
    assert _live_records() == before
    assert all(k.shape == (3, 2) for k in kept)


def test_forward_record_dies_with_the_autograd_graph():
    before = _live_records()
    for _ in range(5):
        autograd.grad(lambda th: anp.sum(nk.odeint(LV, LV_Y0, [0.0, 5.0], th,
                                                   gradient="discrete")))(LV_THETA)
    assert _live_records() == before


def test_threads_computing_gradients_agree_with_serial():
    ts = np.linspace(0.0, 5.0, 6)
    thetas = [LV_THETA * (1.0 + 0.05 * k) for k in range(6)]
    grad = autograd.grad(lambda th: anp.sum(nk.odeint(LV, LV_Y0, ts, th,
                                                      gradient="discrete") ** 2))
    serial = [grad(th) for th in thetas]
    out = [None] * len(thetas)

    def work(k):
        for _ in range(5):
            out[k] = grad(thetas[k])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(thetas))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for a, b in zip(out, serial):
        np.testing.assert_array_equal(a, b)


# --- second order ----------------------------------------------------------------------
@pytest.mark.parametrize("fun", [LV, lv_py], ids=["compiled", "python"])
def test_second_order_derivatives_raise_a_clear_error(fun):
    loss = lambda th: anp.sum(nk.odeint(fun, LV_Y0, [0.0, 1.0], th))
    with pytest.raises(NotImplementedError, match="[Ss]econd-order.*nk.odeint"):
        autograd.hessian(loss)(LV_THETA)
    with pytest.raises(NotImplementedError, match="[Ss]econd-order"):
        autograd.grad(lambda th: anp.sum(autograd.grad(loss)(th)))(LV_THETA)


# --- errors and warnings that say what to do ------------------------------------------
def _plain_numpy_lv(t, y, th):
    return np.array([th[0] * y[0] - th[1] * y[0] * y[1], -th[2] * y[1] + th[3] * y[0] * y[1]])


@pytest.mark.parametrize("mode", ["adjoint", "interpolated", "discrete"])
def test_plain_numpy_fun_warns_once_naming_autograd_numpy(mode):
    loss = lambda th: anp.sum(nk.odeint(_plain_numpy_lv, LV_Y0, [0.0, 1.0], th, gradient=mode))
    with pytest.warns(nk.UntracedFunctionWarning, match="autograd.numpy") as rec:
        autograd.grad(loss)(LV_THETA)
    assert len([w for w in rec if issubclass(w.category, nk.UntracedFunctionWarning)]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", nk.UntracedFunctionWarning)
        autograd.grad(lambda th: anp.sum(nk.odeint(lv_py, LV_Y0, [0.0, 1.0], th,
                                                   gradient=mode)))(LV_THETA)


@pytest.mark.parametrize("mode", ["adjoint", "interpolated"])
def test_more_output_times_than_max_steps_still_differentiates(mode):
    """The backward pass stops at every output time read: those stops do not
    count against `max_steps`, which the forward pass (dense output) never
    needed for them."""
    ts = np.linspace(0.0, 5.0, 300)
    loss = lambda th, **kw: anp.sum(nk.odeint(LV, LV_Y0, ts, th, gradient=mode, **kw) ** 2)
    g = autograd.grad(lambda th: loss(th, max_steps=150))(LV_THETA)
    np.testing.assert_allclose(g, autograd.grad(loss)(LV_THETA), rtol=1e-12)


def test_a_failed_backward_pass_is_also_a_solve_error():
    loss = lambda y0: anp.sum(nk.odeint(LV, y0, np.linspace(0.0, 20.0, 5), LV_THETA,
                                        max_steps=600, adjoint_rtol=1e-13, adjoint_atol=1e-13))
    with pytest.raises(nk.SolveError, match="backward.*max_steps"):
        autograd.grad(loss)(LV_Y0)
    assert issubclass(nk.GradientError, nk.SolveError)
