"""Events in nk.solve (against SciPy) and differentiable event times (against
closed forms and central differences)."""
import autograd
import autograd.numpy as anp
import numba
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import nodekit as nk
from nodekit.validation.events import FLOOR, check_bounces, fall
from nodekit.validation.kernels import lotka_volterra_rhs

TIGHT = {"rtol": 1e-12, "atol": 1e-12}


def pendulum(t, y, th):
    return anp.array([y[1], -th[0] * anp.sin(y[0])])


def angle(t, y, th):
    return y[0]


@numba.njit(cache=True)
def prey_threshold(t, y, th):
    return y[0] - 2.0


def _scipy_events(fun, theta, span, y0, event, direction=0, terminal=False):
    def ev(t, y):
        return event(t, y, theta)
    ev.direction, ev.terminal = direction, terminal
    return solve_ivp(lambda t, y: fun(t, y, theta), span, y0, events=[ev], method="DOP853",
                     rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("direction", [-1, 0, 1])
@pytest.mark.parametrize("backwards", [False, True])
def test_pendulum_crossings_match_scipy(direction, backwards):
    t = np.linspace(0.0, 12.0, 7)
    if backwards:
        t = t[::-1]
    ev = nk.Event(angle, direction=direction)
    sol = nk.solve(pendulum, [1.0, 0.2], t, [1.3], events=ev, method="dop853", **TIGHT)
    ref = _scipy_events(pendulum, [1.3], (t[0], t[-1]), [1.0, 0.2], angle, direction)
    assert sol.success and sol.status == 0
    assert sol.t_events[0].size == ref.t_events[0].size > 0
    np.testing.assert_allclose(sol.t_events[0], ref.t_events[0], rtol=0, atol=1e-10)
    np.testing.assert_allclose(sol.y_events[0], ref.y_events[0], atol=1e-9)
    np.testing.assert_allclose(sol.y_events[0][:, 0], 0.0, atol=1e-12)


def test_compiled_threshold_matches_scipy_and_costs_no_evaluations():
    lv = nk.ODE(lotka_volterra_rhs)
    th = np.array([1.5, 1.0, 3.0, 1.0])
    t = np.linspace(0.0, 15.0, 31)
    plain = nk.solve(lv, [1.0, 1.0], t, th, **TIGHT)
    sol = nk.solve(lv, [1.0, 1.0], t, th, events=[prey_threshold], **TIGHT)
    ref = _scipy_events(lambda t, y, p: np.array([p[0] * y[0] - p[1] * y[0] * y[1],
                                                  -p[2] * y[1] + p[3] * y[0] * y[1]]),
                        th, (0.0, 15.0), [1.0, 1.0], lambda t, y, p: y[0] - 2.0)
    np.testing.assert_allclose(sol.t_events[0], ref.t_events[0], atol=1e-10)
    assert sol.nfev == plain.nfev and sol.nsteps == plain.nsteps
    np.testing.assert_array_equal(sol.y, plain.y)
    assert sol.dense is None  # kept only when asked for


def test_terminal_event_stops_with_status_1_and_nan_rows():
    t = np.linspace(0.0, 10.0, 11)
    zero = nk.Event(angle, terminal=True)
    sol = nk.solve(pendulum, [1.0, 0.0], t, [1.0], events=zero, **TIGHT)
    assert sol.status == 1 and sol.success
    assert "angle" in sol.message and "t=1.67499" in sol.message
    assert sol.t_reached == pytest.approx(1.674993916, abs=1e-8)
    assert np.all(np.isfinite(sol.y[:2])) and np.all(np.isnan(sol.y[2:]))
    two = nk.solve(pendulum, [1.0, 0.0], t, [1.0], events=nk.Event(angle, terminal=2),
                   **TIGHT)
    assert two.t_events[0].size == 2 and two.t_reached == pytest.approx(5.02498175, 1e-8)


def test_scipy_style_attributes_and_several_events():
    def up(t, y, th):
        return y[1]
    up.direction = 1

    def down(t, y, th):
        return y[0] - 0.5
    down.terminal = True
    sol = nk.solve(pendulum, [1.0, 0.0], np.linspace(0, 20, 3), [1.0], events=[up, down],
                   **TIGHT)
    assert sol.status == 1 and sol.t_events[1].size == 1
    assert np.all(sol.t_events[0] < sol.t_events[1][0])


def test_zero_at_initial_time_is_not_reported():
    sol = nk.solve(pendulum, [0.0, 1.0], np.linspace(0, 5, 4), [1.0],
                   events=nk.Event(angle, terminal=True), **TIGHT)
    assert sol.t_events[0].size == 1 and sol.t_events[0][0] > 3.0


def test_fixed_step_and_batched_states():
    def batch_angle(t, y, th):
        return y[1, 0]  # the second pendulum of the batch

    def batch(t, y, th):
        return anp.stack([y[:, 1], -th[0] * anp.sin(y[:, 0])], axis=1)
    y0 = np.array([[1.0, 0.0], [0.5, 0.0]])
    sol = nk.solve(batch, y0, np.linspace(0, 4, 5), [1.0], events=batch_angle,
                   method="rk4", step_size=4e-3)
    ref = _scipy_events(pendulum, [1.0], (0, 4), [0.5, 0.0], angle)
    np.testing.assert_allclose(sol.t_events[0], ref.t_events[0], atol=1e-8)
    assert sol.y_events[0].shape == (ref.t_events[0].size, 2, 2)


def test_bad_events_are_named():
    with pytest.raises(ValueError, match="`direction` of event"):
        nk.Event(angle, direction=2)
    with pytest.raises(ValueError, match="`terminal` of event"):
        nk.Event(angle, terminal=-1)
    with pytest.raises(TypeError, match="`events` must be"):
        nk.solve(pendulum, [1.0, 0.0], [0, 1], [1.0], events=[3.0])


# ---------------------------------------------------------------------------
# Differentiable event times
# ---------------------------------------------------------------------------
def test_bouncing_ball_times_and_gradients_match_sympy():
    err_times, err_derivatives = check_bounces((10.0, 1.5, 9.8, 0.8), k=3)
    assert err_times < 1e-8 and err_derivatives < 1e-8


def test_odeint_event_gradient_matches_central_differences():
    th = np.array([1.3])

    def t_cross(y0, t0, th):
        return nk.odeint_event(pendulum, y0, t0, th, nk.Event(angle, direction=-1),
                               t_max=20.0, rtol=1e-10, atol=1e-10)[0]
    y0, t0 = np.array([1.0, 0.3]), 0.25
    g = autograd.grad(t_cross, (0, 1, 2))(y0, t0, th)
    eps = 1e-6
    fd_y0 = [(t_cross(y0 + eps * d, t0, th) - t_cross(y0 - eps * d, t0, th)) / (2 * eps)
             for d in np.eye(2)]
    fd_t0 = (t_cross(y0, t0 + eps, th) - t_cross(y0, t0 - eps, th)) / (2 * eps)
    fd_th = (t_cross(y0, t0, th + eps) - t_cross(y0, t0, th - eps)) / (2 * eps)
    np.testing.assert_allclose(g[0], fd_y0, rtol=1e-5)
    assert g[1] == pytest.approx(fd_t0, rel=1e-5)
    np.testing.assert_allclose(g[2], [fd_th], rtol=1e-5)


def test_grazing_event_raises_instead_of_a_huge_gradient():
    # y' = 1 chases the line g = y - c t with c = 1 + 1e-9: the two cross at
    # t = 1 with a relative speed of 1e-9 (nearly tangent)
    climb = lambda t, y, p: anp.ones_like(y)  # noqa: E731
    line = nk.Event(lambda t, y, p: y[0] - (1.0 + 1e-9) * t, name="line")
    t_ev = lambda y0: nk.odeint_event(climb, y0, 0.0, None, line, t_max=5.0,  # noqa: E731
                                      rtol=1e-12, atol=1e-14)[0]
    assert t_ev(np.array([1e-9])) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(nk.GradientError, match="grazes the event line"):
        autograd.grad(t_ev)(np.array([1e-9]))


def test_no_event_before_t_max_is_an_error():
    with pytest.raises(nk.NoEventError, match="no root between"):
        nk.odeint_event(fall, [10.0, 0.0], 0.0, [9.8], FLOOR, t_max=0.5)


def test_compiled_and_interpreted_scans_agree():
    # the same scan source, compiled for a jitted event and interpreted for a
    # Python one: identical crossings over many steps, terminal count honoured
    lv = nk.ODE(lotka_volterra_rhs)
    th = np.array([1.5, 1.0, 3.0, 1.0])
    t = np.linspace(0.0, 60.0, 4)
    fast = nk.solve(lv, [1.0, 1.0], t, th, events=nk.Event(prey_threshold, terminal=7))
    slow = nk.solve(lv, [1.0, 1.0], t, th,
                    events=nk.Event(lambda t, y, p: y[0] - 2.0, terminal=7))
    assert fast.status == slow.status == 1
    assert fast.t_events[0].size == 7
    np.testing.assert_array_equal(fast.t_events[0], slow.t_events[0])
    np.testing.assert_allclose(fast.y_events[0][:, 0], 2.0, atol=1e-9)
    # the loop stopped at the 7th crossing instead of running to t = 60
    assert fast.t_reached == slow.t_reached and fast.nfev < slow.nfev / 3
    np.testing.assert_array_equal(fast.y, slow.y)


@numba.njit(cache=True)
def pendulum_rhs(t, y, th, out):
    out[0] = y[1]
    out[1] = -th[0] * np.sin(y[0])


@numba.njit(cache=True)
def angle_jit(t, y, th):
    return y[0]


@numba.njit(cache=True)
def speed_jit(t, y, th):
    return y[1] - 0.3


@pytest.mark.parametrize("method, step_size", [("dopri5", None), ("dop853", None),
                                               ("rk4", 1e-2)])
@pytest.mark.parametrize("backwards", [False, True])
def test_events_in_the_loop_equal_the_scan_after_the_solve(method, step_size, backwards):
    # jitted events on an nk.ODE are located inside the compiled loop; the same
    # events as Python functions are scanned after the solve on the dense
    # output: the same crossing test and Brent iteration on the same
    # interpolants, so the same times to the last bit, in every direction,
    # with an interpolant that needs extra stages (dop853) and fixed steps
    ode = nk.ODE(pendulum_rhs)
    t = np.linspace(0.0, 14.0, 8)
    if backwards:
        t = t[::-1]
    opts = dict(method=method, step_size=step_size, rtol=1e-10, atol=1e-10)
    fast = nk.solve(ode, [1.0, 0.2], t, [1.3], events=[
        nk.Event(angle_jit, direction=-1), nk.Event(speed_jit, terminal=3)], **opts)
    slow = nk.solve(ode, [1.0, 0.2], t, [1.3], events=[
        nk.Event(lambda t, y, th: y[0], direction=-1),
        nk.Event(lambda t, y, th: y[1] - 0.3, terminal=3)], **opts)
    assert fast.status == slow.status == 1 and fast.t_events[1].size == 3
    assert fast.t_events[0].size >= 1
    for a, b, ya, yb in zip(fast.t_events, slow.t_events, fast.y_events, slow.y_events):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(ya, yb, rtol=0, atol=1e-14)
    assert fast.t_reached == slow.t_reached == fast.t_events[1][-1]
    np.testing.assert_array_equal(np.isnan(fast.y), np.isnan(slow.y))
    assert fast.nfev < slow.nfev  # stopped early
    assert "speed_jit" in fast.message


@numba.njit
def raising_event(t, y, th):
    if t > 0.5:
        raise ValueError("event out of range")
    return y[0] - 10.0


def test_an_event_that_raises_fails_the_solve_and_is_named():
    sol = nk.solve(nk.ODE(pendulum_rhs), [1.0, 0.2], np.linspace(0, 2, 5), [1.3],
                   events=[raising_event])
    assert sol.status == -4 and not sol.success
    assert "raising_event" in sol.message and "event out of range" in sol.message
    # the second of three is named, and the run compiled no loop of its own
    from nodekit import _kernels
    loops = set(_kernels.integrate_entry.overloads)
    sol = nk.solve(nk.ODE(pendulum_rhs), [1.0, 0.2], np.linspace(0, 2, 5), [1.3],
                   events=[angle_jit, raising_event, speed_jit])
    assert sol.status == -4
    assert "'raising_event'" in sol.message and "event out of range" in sol.message
    assert set(_kernels.integrate_entry.overloads) == loops


def test_any_number_of_events_shares_one_compiled_loop():
    # the events reach the loop as one kernel that evaluates them all, so the
    # loop's type does not depend on how many there are
    from nodekit import _kernels
    ode = nk.ODE(pendulum_rhs)
    t = np.linspace(0.0, 14.0, 8)
    nk.solve(ode, [1.0, 0.2], t, [1.3], events=[angle_jit])
    nk.solve(ode, [1.0, 0.2], t, [1.3], dense=True)
    loops = set(_kernels.integrate_entry.overloads)
    jitted = [nk.Event(angle_jit, direction=1), nk.Event(speed_jit),
              nk.Event(prey_threshold, direction=-1)]
    python = [nk.Event(lambda t, y, th: y[0], direction=1),
              nk.Event(lambda t, y, th: y[1] - 0.3),
              nk.Event(lambda t, y, th: y[0] - 2.0, direction=-1)]
    fast = nk.solve(ode, [1.0, 0.2], t, [1.3], events=jitted, rtol=1e-10, atol=1e-10)
    slow = nk.solve(ode, [1.0, 0.2], t, [1.3], events=python, rtol=1e-10, atol=1e-10)
    assert set(_kernels.integrate_entry.overloads) == loops
    assert [e.size for e in fast.t_events] == [e.size for e in slow.t_events]
    assert fast.t_events[0].size > 0 and fast.t_events[1].size > 0
    for a, b in zip(fast.t_events, slow.t_events):
        np.testing.assert_array_equal(a, b)


@numba.njit
def mistyped_event(t, y, th):
    return y.no_such_attribute


def test_an_event_that_does_not_compile_is_named():
    with pytest.raises(TypeError, match="event function mistyped_event could not be compiled"):
        nk.solve(nk.ODE(pendulum_rhs), [1.0, 0.2], [0.0, 1.0], [1.3],
                 events=[angle_jit, mistyped_event])


@pytest.mark.parametrize("method", ["rodas5", "dopri5"])
def test_dense_solution_ends_at_a_terminal_event(method):
    # events located after the solve (stiff methods, Python functions) left the
    # dense solution's span at t[-1]: sol(t) answered past the event
    k, y0 = 3.0, 2.0
    t_event = np.log(y0 / 0.5) / k
    sol = nk.solve(lambda t, y, th: -th[0] * y, [y0], np.linspace(0.0, 2.0, 5), [k],
                   method=method, rtol=1e-10, atol=1e-12, dense=True,
                   events=nk.Event(lambda t, y, th: y[0] - 0.5, terminal=True))
    assert sol.status == 1 and sol.t_reached == pytest.approx(t_event, rel=1e-7)
    assert sol.dense.t_reached == sol.t_reached
    np.testing.assert_allclose(sol([0.0, 0.3]).ravel(), y0 * np.exp(-k * np.array([0.0, 0.3])),
                               rtol=1e-7)
    with pytest.raises(ValueError, match="integrated span"):
        sol(1.0)


@pytest.mark.parametrize("method", ["kvaerno5", "trbdf2"])
@pytest.mark.parametrize("backwards", [False, True], ids=["forwards", "backwards"])
def test_esdirk_events_are_as_accurate_as_the_solution(method, backwards):
    # the ESDIRK methods' dense output is a Hermite cubic: roots found on it
    # were off by about 100 rtol over long steps (kvaerno5 here: 1.2e-7 in t at
    # rtol 1e-8); they are now located again by Brent's method on re-solved
    # states (events._refine), so the event time is as good as the solution
    k, y0, level, rtol = 3.0, 2.0, 0.5, 1e-8
    t_event = np.log(y0 / level) / k
    t = np.array([0.0, 2.0]) if not backwards else np.array([2.0, 0.0])
    start = y0 if not backwards else y0 * np.exp(-2.0 * k)
    decay = lambda t, y, th: -th[0] * y  # noqa: E731
    sol = nk.solve(decay, [start], t, [k], method=method, rtol=rtol, atol=1e-14,
                   events=nk.Event(lambda t, y, th: y[0] - level))
    assert sol.success and sol.t_events[0].size == 1
    # the method's own error at the event time, from a solve that ends there
    plain = nk.solve(decay, [start], [t[0], t_event], [k], method=method, rtol=rtol, atol=1e-14)
    slope = k * level  # |dy/dt| at the event
    err_t = abs(plain.y[-1, 0] - level) / slope
    assert abs(sol.t_events[0][0] - t_event) <= 3.0 * err_t + 1e-14
    assert abs(sol.y_events[0][0, 0] - level) <= 1e-12
