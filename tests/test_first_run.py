"""What a first run compiles: the checked first calls of a kernel compile its
helpers for the arrays the compiled loop passes (no read-only twin), and
still report a kernel, or a helper it calls, that writes into its inputs."""
import numba
import numpy as np
import pytest

import nodekit as nk
from nodekit.check import check_vjp_first_call


@numba.njit(cache=False)
def _decay_into(y, theta, out):
    for i in range(y.size):
        out[i] = -theta[0] * y[i]


@numba.njit(cache=False)
def _clobber(y, out):
    for i in range(y.size):
        y[i] = 0.0
        out[i] = 0.0


@numba.njit(cache=False)
def rhs_with_helper(t, y, theta, out):
    _decay_into(y, theta, out)


@numba.njit(cache=False)
def vjp_with_helper(t, y, theta, a, out_y, out_theta):
    _decay_into(a, theta, out_y)
    out_theta[0] = 0.0
    for i in range(y.size):
        out_theta[0] -= a[i] * y[i]
    return 0.0


@numba.njit(cache=False)
def rhs_helper_writes_y(t, y, theta, out):
    _clobber(y, out)


@numba.njit(cache=False)
def vjp_helper_writes_y(t, y, theta, a, out_y, out_theta):
    _clobber(y, out_y)
    out_theta[0] = 0.0
    return 0.0


def _only_writable_signatures(dispatcher):
    return all(not (isinstance(a, numba.types.Array) and not a.mutable)
               for sig in dispatcher.signatures for a in sig)


def test_checked_calls_compile_no_read_only_twin_of_a_helper():
    ode = nk.ODE(rhs_with_helper, vjp_with_helper)
    y, theta = np.array([1.0, 2.0]), np.array([0.5])
    ode.check_first_call(0.0, y, theta)
    check_vjp_first_call(ode, 0.0, y, theta)
    assert _decay_into.signatures, "the helper ran compiled"
    assert _only_writable_signatures(_decay_into)
    # the check ran the kernel: values are untouched and the check is silent
    np.testing.assert_array_equal(y, [1.0, 2.0])


def test_a_helper_writing_into_y_is_reported():
    y, theta = np.array([1.0, 2.0]), np.array([0.5])
    with pytest.raises(ValueError, match="writes into its input `y`"):
        nk.ODE(rhs_helper_writes_y).check_first_call(0.0, y, theta)
    with pytest.raises(ValueError, match="writes into one of its inputs"):
        check_vjp_first_call(nk.ODE(rhs_with_helper, vjp_helper_writes_y), 0.0, y, theta)
    np.testing.assert_array_equal(y, [1.0, 2.0])  # the caller's arrays are never touched
    assert _only_writable_signatures(_clobber)


def test_backsolve_signature_is_that_of_every_call(monkeypatch):
    # the second process of a first run compiles the backward solve from
    # these types alone: they must be those of a real call, for any kernel
    import autograd
    import autograd.numpy as anp

    from nodekit import _precompile, adjoint
    from problems import LV, LV_THETA, LV_Y0
    seen = []
    run = adjoint.run_backsolve
    monkeypatch.setattr(adjoint, "run_backsolve",
                        lambda args: seen.append(tuple(map(numba.typeof, args))) or run(args))
    ts = np.linspace(0.0, 1.0, 3)
    autograd.grad(lambda th: anp.sum(nk.odeint(LV, LV_Y0, ts, th, gradient="adjoint")))(
        LV_THETA)
    sig = _precompile.backsolve_signature()
    assert seen == [sig]
    # compiled (and cached) now: no second process is started
    assert _precompile.is_cached(adjoint.backsolve, sig)
    assert _precompile.start_backsolve_compile() is None
    assert not _precompile.is_cached(adjoint.backward_stops, sig)


def test_demo_prepares_the_backward_solve_only_for_adjoint_demos(monkeypatch):
    from nodekit import _precompile, cli
    started = []
    monkeypatch.setattr(_precompile, "start_backsolve_compile", lambda: started.append(1))
    for which in cli.DEMOS:
        cli.prepare_demo(which)
    assert len(started) == len(cli.ADJOINT_DEMOS) and set(cli.ADJOINT_DEMOS) <= set(cli.DEMOS)
