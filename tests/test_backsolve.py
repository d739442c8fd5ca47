"""The compiled backsolve (``nodekit.adjoint.backsolve``, one nopython call per
gradient) against the loop's Python driver it replaces for an ``nk.ODE``:
the same gradients, statistics, drift, warnings and failure messages."""
import warnings

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

import nodekit as nk
from nodekit import adjoint
from nodekit.nn import Dense, Power, Sequential
from nodekit.symbolic import ODESystem

from problems import LINEAR, LV, LV_THETA, LV_Y0
from fault_kernels import decay, decay_vjp_raises

TS = np.linspace(0.0, 10.0, 40)


def _both_paths(loss, args, argnums, monkeypatch):
    """``(gradients, stats)`` of ``loss(*args, stats)`` through the compiled
    backsolve and through the Python driver (forced)."""
    out = []
    for compiled in (True, False):
        monkeypatch.setattr(adjoint.Backsolve, "compiled_path", compiled)
        st = {}
        g = autograd.grad(lambda *a: loss(*a, st), argnums)(*args)
        out.append((g, st))
    return out


def _assert_same(fast, slow, rtol=1e-12):
    (g_fast, st_fast), (g_slow, st_slow) = fast, slow
    for a, b in zip(g_fast, g_slow):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-300)
    assert st_fast.keys() == st_slow.keys()
    for key in st_fast:
        np.testing.assert_array_equal(st_fast[key], st_slow[key], err_msg=key)


@pytest.mark.parametrize("options", [
    dict(),
    dict(seminorm=True),
    dict(adjoint_rtol=1e-6, adjoint_atol=1e-8, adjoint_method="bosh3"),
    dict(controller=nk.PIController(safety=0.8, pcoeff=0.08), max_step=0.3),
    dict(method="rk4", step_size=0.01),
], ids=["default", "seminorm", "adjoint-method-tols", "controller", "fixed-step"])
def test_lv_gradient_equals_the_python_driver(options, monkeypatch):
    W = np.random.default_rng(1).normal(size=(TS.size, 2))
    W[3] = 0.0  # a row the loss does not read: no stop there, NaN drift

    def loss(y0, t, th, st):
        return anp.sum(W * nk.odeint(LV, y0, t, th, rtol=1e-8, atol=1e-10, stats=st,
                                     **options) ** 2)
    fast, slow = _both_paths(loss, (LV_Y0, TS, LV_THETA), (0, 1, 2), monkeypatch)
    _assert_same(fast, slow)
    st = fast[1]
    assert st["nfev_backward"] > st["nsteps_backward"] > 0
    assert np.isnan(st["drift"][3]) and np.all(np.isfinite(np.delete(st["drift"], 3)))


def test_only_theta_or_only_y0_or_no_stop(monkeypatch):
    def loss(y0, th, st, rows=slice(None)):
        return anp.sum(nk.odeint(LV, y0, TS, th, stats=st)[rows] ** 2)
    for argnums in (0, 1):
        _assert_same(*_both_paths(loss, (LV_Y0, LV_THETA), argnums, monkeypatch))
    # the loss reads y(t_0) only: no backward solve at all
    fast, slow = _both_paths(lambda y0, th, st: loss(y0, th, st, 0), (LV_Y0, LV_THETA),
                             (0, 1), monkeypatch)
    _assert_same(fast, slow)
    np.testing.assert_array_equal(fast[0][0], 2 * LV_Y0)
    assert fast[1]["nfev_backward"] == 0 and np.all(np.isnan(fast[1]["drift"]))


def test_nn_model_and_symbolic_system_equal_the_python_driver(monkeypatch, tmp_path):
    model = Sequential(Power(3), Dense(2, 16), "tanh", Dense(16, 2))
    theta = np.random.default_rng(0).normal(scale=0.3, size=model.n_params)
    y0 = np.random.default_rng(1).normal(size=(5, 2))

    def nn_loss(y0, th, st):
        return anp.mean(anp.abs(nk.odeint(model.ode, y0, TS[:10], th, rtol=1e-7,
                                          atol=1e-9, stats=st) - 0.5))
    _assert_same(*_both_paths(nn_loss, (y0, theta), (0, 1), monkeypatch))

    vdp = ODESystem.from_strings({"x": "v", "v": "mu*(1 - x**2)*v - x"}, params=["mu"],
                                 t="t", name="vdp_backsolve").compile(cache_dir=str(tmp_path))

    def sym_loss(y0, th, st):
        return anp.sum(nk.odeint(vdp, y0, TS, th, rtol=1e-9, atol=1e-11, stats=st) ** 2)
    _assert_same(*_both_paths(sym_loss, (np.array([2.0, 0.0]), np.array([0.7])), (0, 1),
                              monkeypatch))


def _failure(loss, arg, monkeypatch):
    messages = []
    for compiled in (True, False):
        monkeypatch.setattr(adjoint.Backsolve, "compiled_path", compiled)
        with pytest.raises(nk.GradientError) as info:
            autograd.grad(loss)(arg)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    return messages[0]


def test_failure_messages_equal_the_python_driver(monkeypatch):
    msg = _failure(lambda y0: anp.sum(nk.odeint(
        LV, y0, np.linspace(0.0, 20.0, 5), LV_THETA, max_steps=600, adjoint_rtol=1e-13,
        adjoint_atol=1e-13)), LV_Y0, monkeypatch)
    assert "backward (adjoint) solve failed: it reached max_steps=605" in msg
    assert "at t=" in msg and "Increase `max_steps`" in msg

    ode = nk.ODE(decay, decay_vjp_raises)
    msg = _failure(lambda th: nk.odeint(ode, [1.0], np.linspace(0.0, 1.0, 5), th)[-1, 0],
                   np.array([1.0]), monkeypatch)
    assert "`vjp` kernel 'decay_vjp_raises' raised RuntimeError: vjp is broken" in msg

    # a fixed step too large for stability: non-finite, with the fixed-step advice
    # the adjoint of y' = -25 y grows 1.5-fold per backward Euler step of 0.1 (rk4
    # is stable at that step, Euler is not) until it overflows
    msg = _failure(lambda y0: anp.sum(nk.odeint(
        LINEAR, y0, [0.0, 500.0], np.array([-25.0]), method="rk4",
        step_size=0.1, adjoint_method="euler")), np.array([1.0]), monkeypatch)
    assert "Non-finite" in msg and "smaller `step_size`" in msg


def test_drift_warning_from_the_compiled_path(monkeypatch):
    monkeypatch.setattr(adjoint, "DRIFT_FACTOR", 1e-6)
    with pytest.warns(nk.AdjointDriftWarning, match=r"nk.odeint\(gradient='adjoint'\)"):
        autograd.grad(lambda th: anp.sum(nk.odeint(LV, LV_Y0, TS, th)))(LV_THETA)
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("error", nk.AdjointDriftWarning)
        autograd.grad(lambda th: anp.sum(nk.odeint(LV, LV_Y0, TS, th)))(LV_THETA)


def test_adjoint_atol_scales_only_the_adjoint_components():
    g = np.array([[0.0, 0.0], [3.0, -40.0]])
    rtol = np.full(6, 1e-8)
    atol = np.full(6, 1e-10)
    out = adjoint.adjoint_atol(rtol, atol, g, 2, 2)
    np.testing.assert_array_equal(out, [1e-10, 1e-10, 4e-7, 4e-7, 1e-10, 1e-10])
    # never below the given atol
    np.testing.assert_array_equal(adjoint.adjoint_atol(rtol, atol, g * 0, 0, 2), atol)


def test_final_state_loss_backward_pass_cheaper_than_forward_and_accurate():
    """The paper's Figure 3c setting (loss on the final state): NFE-B < NFE-F,
    with the gradient as accurate as the discrete one (against rtol 1e-12)."""
    t = np.linspace(0.0, 20.0, 200)

    def grad(gradient, rtol=1e-8, atol=1e-10, **kw):
        st = {}
        loss = lambda y0, th: anp.sum(nk.odeint(LV, y0, t, th, rtol=rtol, atol=atol,
                                                gradient=gradient, stats=st, **kw)[-1] ** 2)
        return np.concatenate(autograd.grad(loss, (0, 1))(LV_Y0, LV_THETA)), st

    ref, _ = grad("discrete", 1e-12, 1e-14)
    g, st = grad("adjoint", seminorm=True)
    assert st["nfev_backward"] < st["nfev_forward"]
    scale = np.max(np.abs(ref))
    assert np.max(np.abs(g - ref)) < 1e-5 * scale
    g_discrete, _ = grad("discrete")
    assert np.max(np.abs(g - ref)) < 2 * max(np.max(np.abs(g_discrete - ref)), 1e-7 * scale)


def test_backward_solve_keeps_its_own_arrays_alive():
    # The compiled backsolve builds its initial state and tolerances just for
    # the loop, which it calls inline.  They were released as soon as the loop
    # borrowed them, before it ran: a VJP kernel that allocates was handed
    # their memory and overwrote them (here the adjoint's atol became 1e300,
    # the backward solve took giant steps, and the gradient was wrong with
    # status 0; the digits ODE-Net's parallel kernels sent it into an endless
    # loop).  Closed form of y' = -k y, L = w . y(T).
    from fault_kernels import decay_vjp_scribbling
    ode = nk.ODE(decay, vjp=decay_vjp_scribbling)
    y0, k, w, T = np.array([1.3, -0.4]), 0.7, np.array([0.5, 2.0]), 5.0

    def loss(y0, th):
        return anp.dot(w, nk.odeint(ode, y0, np.array([0.0, T]), th, rtol=1e-10,
                                    atol=1e-12, gradient="adjoint")[-1])

    gy0, gth = autograd.grad(loss, (0, 1))(y0, np.array([k]))
    np.testing.assert_allclose(gy0, np.exp(-k * T) * w, rtol=1e-7)
    np.testing.assert_allclose(gth, [-T * np.exp(-k * T) * np.dot(w, y0)], rtol=1e-7)
