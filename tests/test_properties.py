"""Property-based tests (hypothesis): random linear systems against
``scipy.linalg.expm`` for every method in both time directions, random
``nn`` models' VJPs against autograd, random size mismatches always
rejected, ``nk.train.save``/``load`` round trips.

The kernels and models are built once at module level (Numba caches them),
and each property runs a few examples, so the file stays fast.
"""
import math
import pathlib

import autograd
import autograd.numpy as anp
import numba
import numpy as np
import pytest
import scipy.linalg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nodekit as nk
from nodekit.nn import ELU, Dense, Power, Sequential, Sigmoid, Sin, Softplus, Tanh, TimeDense
from problems import linear_jac, linear_rhs, linear_vjp

FAST = settings(max_examples=8, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


LINEAR = nk.ODE(linear_rhs, linear_vjp, linear_jac)


# --- random linear systems against expm -------------------------------------------------
@st.composite
def linear_systems(draw):
    """``(A, y0, t1)``: ``A`` with entries in [-1, 1] shifted by ``s I``,
    ``s`` in [-1.5, 0.5] (stable and unstable), ``t1 = +-1``."""
    n = draw(st.integers(1, 3))
    unit = st.floats(-1.0, 1.0, allow_nan=False)
    A = np.array(draw(st.lists(unit, min_size=n * n, max_size=n * n))).reshape(n, n)
    A += draw(st.floats(-1.5, 0.5)) * np.eye(n)
    y0 = np.array(draw(st.lists(unit, min_size=n, max_size=n))) + 0.1
    return A, y0, draw(st.sampled_from([1.0, -1.0]))


def taylor_bound(A, y0, t1, h, order):
    """A rigorous bound on the global error of an explicit method with as
    many stages as its order (``euler`` ... ``rk4``, ``rk38``): on ``y' = A y``
    one step multiplies by the degree-``order`` Taylor polynomial ``R`` of
    ``exp(hA)``, so ``|R^N - E^N| <= N e^{(N-1)|hA|} (e^{|hA|} - T(|hA|))``
    with ``|.|`` the spectral norm."""
    z = h * np.linalg.norm(A, 2)
    steps = math.ceil(abs(t1) / h) + 1
    local = math.exp(z) - sum(z ** k / math.factorial(k) for k in range(order + 1))
    return steps * math.exp(steps * z) * local * np.linalg.norm(y0) + 1e-13


FIXED = [m for m, tab in nk.EXPLICIT_METHODS.items() if not tab.is_adaptive]
ADAPTIVE = [m for m, tab in nk.EXPLICIT_METHODS.items() if tab.is_adaptive]
#: Bound on the global error / (rtol * max |y(t)|) at rtol = 1e-8, atol = 1e-12 on
#: these systems: ten times the worst ratio measured over 300 random draws
#: (heun_euler 1.7, bosh3 9.7, rkf45 35, cash_karp 3.5, dopri5 1.3, tsit5 0.23,
#: dop853 2.2, rodas4 0.66, rodas5 0.38, ros3p 2.8, kvaerno5 3.7, trbdf2 441 (second
#: order: thousands of steps); rkf45 propagates its 4th-order solution).
ADAPTIVE_FACTOR = {"heun_euler": 20, "bosh3": 100, "rkf45": 400, "cash_karp": 40,
                   "dopri5": 20, "tsit5": 10, "dop853": 30, "rodas4": 10, "rodas5": 10,
                   "ros3p": 30, "kvaerno5": 40, "trbdf2": 5000}


def test_every_method_is_covered():
    assert set(FIXED) | set(ADAPTIVE) == set(nk.EXPLICIT_METHODS)
    assert set(nk.METHODS) == set(nk.EXPLICIT_METHODS) | set(nk.STIFF_METHODS)
    assert set(ADAPTIVE_FACTOR) == set(ADAPTIVE) | set(nk.STIFF_METHODS)
    assert all(len(nk.get_tableau(m).b) == nk.get_tableau(m).order for m in FIXED)


@pytest.mark.parametrize("method", FIXED)
@FAST
@given(system=linear_systems(), h=st.sampled_from([0.1, 0.05, 0.02]))
def test_fixed_step_linear_against_expm(method, system, h):
    A, y0, t1 = system
    sol = nk.solve(LINEAR, y0, [0.0, t1], A.ravel(), method=method, step_size=h)
    assert sol.success
    exact = scipy.linalg.expm(A * t1) @ y0
    bound = taylor_bound(A, y0, t1, h, nk.get_tableau(method).order)
    assert np.linalg.norm(sol.y[-1] - exact) <= bound


@pytest.mark.parametrize("method", ADAPTIVE + list(nk.STIFF_METHODS))
@FAST
@given(system=linear_systems())
def test_adaptive_linear_against_expm(method, system):
    A, y0, t1 = system
    ts = np.linspace(0.0, t1, 4)
    sol = nk.solve(LINEAR, y0, ts, A.ravel(), method=method, rtol=1e-8, atol=1e-12)
    assert sol.success
    exact = np.array([scipy.linalg.expm(A * t) @ y0 for t in ts])
    err = np.max(np.abs(sol.y - exact))
    assert err <= ADAPTIVE_FACTOR[method] * 1e-8 * np.max(np.abs(exact))


# --- nn models' VJPs against autograd -----------------------------------------------------
#: Architectures that tests/test_nn.py also builds (their generated kernels are
#: compiled once per cache); hypothesis draws the model, parameters and inputs.
MODELS = [Sequential(TimeDense(3, 6), act, Dense(6, 3))
          for act in (Tanh(), Softplus(), ELU(), Sigmoid(), Sin())]
MODELS += [Sequential(Power(3), Dense(2, 5), Tanh(), Dense(5, 2)),
           Sequential(Power(2), TimeDense(2, 3), Sin(), TimeDense(3, 2)),
           Sequential(Dense(2, 7), Softplus(), Dense(7, 6), Tanh(), Dense(6, 2))]


@pytest.mark.filterwarnings("ignore:Output seems independent of input")
@FAST
@given(which=st.integers(0, len(MODELS) - 1), rows=st.integers(1, 3),
       seed=st.integers(0, 2 ** 16), t=st.floats(-2.0, 2.0))
def test_nn_vjp_matches_autograd(which, rows, seed, t):
    model = MODELS[which]
    rng = np.random.default_rng(seed)
    theta = model.init(seed=rng, scheme="normal", std=0.7)
    y = rng.uniform(-1.5, 1.5, (rows, model.dim))
    a = rng.standard_normal((rows, model.dim))
    a_y, a_theta, a_t = model.vjp(t, y, theta, a)
    inner = lambda tt, yy, th: anp.sum(a * model.apply(tt, yy, th))
    np.testing.assert_allclose(model.rhs(t, y, theta), model.apply(t, y, theta),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a_y, autograd.grad(inner, 1)(t, y, theta), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(a_theta, autograd.grad(inner, 2)(t, y, theta),
                               rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(a_t, autograd.grad(inner, 0)(t, y, theta), rtol=1e-9,
                               atol=1e-11)


# --- size mismatches are always rejected --------------------------------------------------
@numba.njit(cache=True)
def reads_two_and_three(t, y, th, out):
    """A kernel of exactly 2 states and 3 parameters."""
    out[0] = th[0] * y[0] + th[2] * y[1]
    out[1] = -th[1] * y[1]


SIZED = nk.ODE(reads_two_and_three, n_states=2, n_theta=3)
NET = Sequential(Dense(2, 3), "tanh", Dense(3, 2))  # as in test_faults_train
ENTRIES = {"solve": lambda ode, y0, th: nk.solve(ode, y0, [0.0, 0.1], th),
           "odeint": lambda ode, y0, th: nk.odeint(ode, y0, [0.0, 0.1], th)}


@st.composite
def mismatched_sizes(draw, n, p):
    """Sizes ``(n_given, p_given)`` of which at least one differs from ``(n, p)``."""
    sizes = st.tuples(st.integers(1, 6), st.integers(0, 6))
    return draw(sizes.filter(lambda s: s != (n, p)))


@pytest.mark.parametrize("entry", sorted(ENTRIES))
@FAST
@given(sizes=mismatched_sizes(2, 3))
def test_declared_sizes_reject_every_mismatch(entry, sizes):
    n, p = sizes
    with pytest.raises(ValueError, match="`y0` must have 2 values" if n != 2 else
                       "`theta` must have 3 values"):
        ENTRIES[entry](SIZED, np.ones(n), np.ones(p))


@pytest.mark.parametrize("entry", sorted(ENTRIES))
@FAST
@given(rows=st.integers(1, 3), width=st.integers(1, 4), p=st.integers(0, 40))
def test_nn_ode_rejects_every_mismatch(entry, rows, width, p):
    if (width, p) == (NET.dim, NET.n_params):
        width += 1
    with pytest.raises(ValueError, match="`y0` must have last axis of width 2" if width != 2
                       else "`theta` must be a flat vector of length 17"):
        ENTRIES[entry](NET.ode, np.ones((rows, width)), np.ones(p))


# --- save / load round trips --------------------------------------------------------------
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@FAST
@given(theta=st.lists(finite, min_size=1, max_size=30), with_model=st.booleans(),
       extension=st.booleans(), extra=st.dictionaries(
           st.sampled_from(["loss", "nfe", "y_ab"]),
           st.lists(finite, max_size=5).map(np.array), max_size=2))
def test_save_load_round_trip(tmp_path, theta, with_model, extension, extra):
    model = NET if with_model else None
    theta = np.array(theta)
    if with_model:  # a theta of the model's size, from the drawn values
        theta = np.resize(theta, NET.n_params)
    path = tmp_path / ("run.npz" if extension else "run")
    written = nk.train.save(path, theta, model, **extra)
    assert pathlib.Path(written).exists()
    for where in (path, written):
        th, back, arrays = nk.train.load(where)
        np.testing.assert_array_equal(th, theta)
        assert (back is None) if model is None else back.spec() == model.spec()
        assert sorted(arrays) == sorted(extra)
        for k, v in extra.items():
            np.testing.assert_array_equal(arrays[k], v)
