"""The fixed cost of ``nk.solve``'s and ``nk.odeint``'s entry: the checks of
plain option values are remembered by key (``nodekit.integrate._VALID_OPTIONS``,
with the loop's options record in ``_LOOP_OPTIONS``, and the backward
options in ``nodekit.primitive._BACKWARD_OPTIONS``).  A remembered key must
never let an invalid value through, and a solve or gradient must return the
same bits whether its options were remembered or checked afresh."""
import math

import numpy as np
import pytest

import nodekit as nk
from nodekit import integrate, options, primitive

from problems import LINEAR, LV, LV_THETA, LV_Y0, lv_py

T = np.linspace(0.0, 1.0, 5)


MEMOS = (integrate._VALID_OPTIONS, integrate._LOOP_OPTIONS, primitive._BACKWARD_OPTIONS)


@pytest.fixture(autouse=True)
def empty_memo():
    for memo in MEMOS:
        memo.clear()
    yield
    for memo in MEMOS:
        memo.clear()


def solve(fun=LV, y0=LV_Y0, t=T, theta=LV_THETA, **kwargs):
    return nk.solve(fun, y0, t, theta, **kwargs)


def bad(match, **kwargs):
    with pytest.raises((ValueError, TypeError), match=match):
        solve(**kwargs)


# (a valid value, an invalid one that compares equal to it or sits next to it)
@pytest.mark.parametrize("valid, invalid, match", [
    (dict(max_steps=1), dict(max_steps=True), "`max_steps` must be a positive integer"),
    (dict(max_steps=1), dict(max_steps=1.0), "`max_steps` must be a positive integer"),
    (dict(max_steps=2 ** 63 - 1), dict(max_steps=2 ** 63), "at most 2\\*\\*63 - 1"),
    (dict(first_step=1), dict(first_step=True), "`first_step` must be a positive number"),
    (dict(first_step=1.0), dict(first_step=True), "`first_step` must be a positive number"),
    (dict(max_step=1), dict(max_step=True), "`max_step` must be a positive number"),
    (dict(max_step=1.0), dict(max_step=-1.0), "`max_step` must be a positive number"),
    (dict(max_step=1.0), dict(max_step=math.nan), "`max_step` must be a positive number"),
    (dict(first_step=0.1), dict(first_step=math.nan), "`first_step` must be a positive"),
    (dict(first_step=0.1), dict(first_step=0.0), "`first_step` must be a positive"),
    (dict(method="rk4", step_size=1), dict(method="rk4", step_size=True),
     "`step_size` must be a positive number"),
    (dict(method="rk4", step_size=0.1), dict(method="rk4"), "`step_size` is required"),
    (dict(method="rk4", step_size=0.1), dict(method="rk4", step_size=-0.1),
     "`step_size` must be a positive number"),
    (dict(method="rodas5"), dict(method="rodas5", step_size=0.1),
     "`step_size` is not supported by the adaptive stiff method"),
    (dict(rtol=1e-6), dict(rtol=math.nan), "`rtol` must be positive and finite"),
    (dict(rtol=1e-6), dict(rtol=math.inf), "`rtol` must be positive and finite"),
    (dict(rtol=1e-6), dict(rtol=1e-20), "machine epsilon"),
    (dict(rtol=1e-6), dict(rtol=-1e-6), "`rtol` must be positive"),
    (dict(atol=1e-9), dict(atol=math.nan), "`atol` must be positive and finite"),
    (dict(atol=1e-9), dict(atol=-1e-9), "`atol` must be positive"),
    (dict(controller=None), dict(controller="pi"), "`controller` must be an nk.PIController"),
    (dict(controller=nk.PIController()), dict(controller=object()),
     "`controller` must be an nk.PIController"),
])
@pytest.mark.parametrize("order", ["valid first", "invalid first"])
def test_a_remembered_valid_value_lets_no_invalid_one_through(valid, invalid, match, order):
    if order == "invalid first":
        bad(match, **invalid)
    solve(**valid)
    assert integrate._VALID_OPTIONS  # the valid options were remembered
    bad(match, **invalid)
    bad(match, **invalid)  # also when asked twice
    solve(**valid)


def test_the_same_nan_object_is_rejected_every_time():
    # a tuple key compares its items by identity first: one NaN object
    # equals itself there, so a NaN must never be stored
    nan = float("nan")
    for _ in range(3):
        bad("`rtol` must be positive and finite", rtol=nan)
        bad("`first_step` must be a positive number", first_step=nan)
        bad("`max_step` must be a positive number", max_step=nan)
    assert not integrate._VALID_OPTIONS


@pytest.mark.parametrize("name", ["rtol", "atol"])
def test_array_tolerances_are_checked_every_call(name):
    tol = np.array([1e-6, 1e-7])
    a = solve(**{name: tol})
    assert not integrate._VALID_OPTIONS  # arrays are never remembered
    bad("broadcasts to y0.shape", **{name: np.array([1e-6, 1e-6, 1e-6])})
    tol[1] = -1.0  # changed in place after a valid call
    bad(f"`{name}` must be positive", **{name: tol})
    tol[1] = 1e-3  # other values: another solution
    b = solve(**{name: tol})
    assert not np.array_equal(a.y, b.y)
    np.testing.assert_array_equal(b.y, solve(**{name: np.array([1e-6, 1e-3])}).y)


def test_atol_zero_is_checked_against_each_calls_state():
    # atol = 0 is valid for a state without zeros only, and becomes the
    # smallest normal float: never a plain value to remember
    a = solve(atol=0.0, rtol=1e-8)
    bad("pure relative test", atol=0.0, rtol=1e-8, y0=np.array([1.0, 0.0]))
    b = solve(atol=0.0, rtol=1e-8)
    np.testing.assert_array_equal(a.y, b.y)
    c = solve(atol=np.finfo(float).tiny, rtol=1e-8)
    np.testing.assert_array_equal(a.y, c.y)


def test_a_list_tolerance_changed_in_place_is_checked_again():
    rtol = [1e-6, 1e-6]
    solve(rtol=rtol)
    rtol[0] = 0.0
    bad("`rtol` must be positive", rtol=rtol)


def test_a_state_changed_in_place_is_checked_again():
    y0 = LV_Y0.copy()
    solve(y0=y0, rtol=1e-6)
    y0[0] = np.nan
    bad("`y0` must be finite", y0=y0, rtol=1e-6)


def test_checks_that_depend_on_t_run_on_a_remembered_key():
    solve(max_step=1e-3)
    bad("below the resolution of `t`", t=1e16 + np.array([0.0, 1e3]), max_step=1e-3)
    solve(method="rk4", step_size=1e-3)
    bad("below the resolution of `t`", t=1e16 + np.array([0.0, 1e3]), method="rk4",
        step_size=1e-3)


def test_the_tolerance_arrays_follow_each_calls_state_size():
    theta2 = np.array([-1.0, 0.5, -0.5, -1.0])
    theta3 = np.array([-1.0, 0.2, 0.0, 0.0, -2.0, 0.1, 0.3, 0.0, -0.5])
    for y0, theta in [([1.0, 2.0], theta2), ([1.0, 2.0, 3.0], theta3), ([1.0, 2.0], theta2)]:
        sol = nk.solve(LINEAR, y0, T, theta, rtol=1e-10, atol=1e-12)
        assert sol.success and sol.y.shape == (T.size, len(y0))
        m = theta.reshape(len(y0), len(y0))
        w, v = np.linalg.eig(m)
        exact = (v @ np.diag(np.exp(w * T[-1])) @ np.linalg.solve(v, y0)).real
        np.testing.assert_allclose(sol.y[-1], exact, rtol=1e-7)


def test_the_controller_of_each_call_is_used():
    gustafsson = nk.PIController(icoeff=0.3, pcoeff=0.4)
    a = solve(controller=gustafsson, rtol=1e-8)
    b = solve(controller=nk.PIController(icoeff=0.3, pcoeff=0.4), rtol=1e-8)
    c = solve(rtol=1e-8)
    np.testing.assert_array_equal(a.y, b.y)
    assert (a.nsteps, a.nfev) == (b.nsteps, b.nfev)
    assert (a.nsteps, a.nfev, a.nreject) != (c.nsteps, c.nfev, c.nreject)


def test_dense_and_events_are_not_part_of_the_key():
    a = solve(rtol=1e-8)
    assert a.dense is None
    b = solve(rtol=1e-8, dense=True)
    np.testing.assert_array_equal(b(T), b.y)
    np.testing.assert_array_equal(a.y, b.y)
    ev = nk.Event(lambda t, y, th: y[0] - 1.2)
    c = solve(fun=lv_py, rtol=1e-8, events=ev)
    assert len(c.t_events[0]) >= 1


def test_the_memos_stay_bounded():
    for i in range(options.MEMO_SIZE + 10):
        rtol = 1e-6 * (1 + i)
        solve(t=np.array([0.0, 0.1]), rtol=rtol)
        nk.odeint(LV, LV_Y0, np.array([0.0, 0.1]), LV_THETA, rtol=rtol)
    for memo in MEMOS:
        assert 0 < len(memo) <= options.MEMO_SIZE


# every kind of solve the memo serves: the same bits with the memo as without
CASES = [
    dict(),
    dict(rtol=1e-10, atol=1e-12),
    dict(method="tsit5", rtol=1e-7, first_step=1e-3, max_step=0.05),
    dict(method="dop853", rtol=1e-9, dense=True),
    dict(method="rk4", step_size=0.01),
    dict(method="rk4", step_size=1),
    dict(method="bosh3", max_steps=7),  # fails with status -3
    dict(method="rodas5", rtol=1e-7),
    dict(controller=nk.PIController(icoeff=0.3, pcoeff=0.4)),
    dict(fun=lv_py, rtol=1e-8),
]


def _fingerprint(sol):
    return (sol.y.tobytes(), sol.status, sol.message, sol.nfev, sol.nsteps, sol.naccept,
            sol.nreject, sol.t_reached, sol.h_last,
            None if sol.dense is None else sol.dense(np.linspace(0.0, 1.0, 7)).tobytes())


@pytest.mark.parametrize("kwargs", CASES, ids=lambda k: ",".join(
    f"{a}={getattr(b, '__name__', b)}" for a, b in k.items()) or "defaults")
def test_results_are_bit_identical_with_and_without_the_memo(kwargs, monkeypatch):
    first = _fingerprint(solve(**kwargs))  # checked, then remembered
    if "fun" not in kwargs or kwargs["fun"] is LV:
        assert integrate._VALID_OPTIONS
    remembered = _fingerprint(solve(**kwargs))
    monkeypatch.setattr(integrate, "_options_key", lambda opts, plain: None)
    unmemoised = _fingerprint(solve(**kwargs))
    assert first == remembered == unmemoised


def test_the_loop_options_follow_dense_and_the_state_size():
    a = solve(rtol=1e-8)
    b = solve(rtol=1e-8, dense=True)
    assert a.dense is None and b.dense is not None
    keys = {(k[1], k[3]) for k in integrate._LOOP_OPTIONS}
    assert keys == {(2, False), (2, True)}  # (state size, dense)
    for opt in integrate._LOOP_OPTIONS.values():
        assert opt.rtol.size == opt.atol.size == 2 and opt.rtol[0] == 1e-8


GRADIENT_CASES = [
    dict(),
    dict(gradient="discrete", rtol=1e-8),
    dict(gradient="interpolated", seminorm=True),
    dict(adjoint_method="tsit5", adjoint_rtol=1e-7, adjoint_atol=1e-9),
    dict(method="rk4", step_size=0.01),
    dict(max_steps=500, max_step=0.1),
]


@pytest.mark.parametrize("kwargs", GRADIENT_CASES, ids=lambda k: ",".join(
    f"{a}={b}" for a, b in k.items()) or "defaults")
def test_gradients_are_bit_identical_with_and_without_the_backward_memo(kwargs,
                                                                        monkeypatch):
    from autograd import grad

    def loss(theta):
        return (nk.odeint(LV, LV_Y0, T, theta, **kwargs) ** 2).sum()

    first = grad(loss)(LV_THETA)
    assert primitive._BACKWARD_OPTIONS
    remembered = grad(loss)(LV_THETA)
    # no argument has a remembered type: nothing is remembered
    monkeypatch.setattr(primitive, "_BACKWARD_KEY_TYPES", ((),) * 11)
    primitive._BACKWARD_OPTIONS.clear()
    unmemoised = grad(loss)(LV_THETA)
    assert not primitive._BACKWARD_OPTIONS
    np.testing.assert_array_equal(first, remembered)
    np.testing.assert_array_equal(first, unmemoised)


@pytest.mark.parametrize("valid, invalid, match", [
    (dict(max_steps=10), dict(max_steps=True), "`max_steps` must be a positive integer"),
    (dict(adjoint_rtol=1e-6), dict(adjoint_rtol=-1e-6), "`adjoint_rtol` must be a positive"),
    (dict(adjoint_atol=1e-9), dict(adjoint_atol=math.nan), "`adjoint_atol` must be a positive"),
    (dict(adjoint_method="dopri5"), dict(adjoint_method="nope"), "nope"),
    (dict(), dict(gradient="adjoint", atol=0.0), "pure relative test"),
])
def test_a_remembered_backward_option_lets_no_invalid_one_through(valid, invalid, match):
    nk.odeint(LV, LV_Y0, T, LV_THETA, **valid)
    assert primitive._BACKWARD_OPTIONS
    with pytest.raises((ValueError, TypeError), match=match):
        nk.odeint(LV, LV_Y0, T, LV_THETA, **invalid)


def test_the_remembered_backward_options_are_read_only():
    adj = primitive.backward_options(nk.adjoint.strategy("adjoint"), "dopri5", 1e-6, 1e-9,
                                     None, None, None, False, 100, math.inf, None,
                                     nk.PIController())
    with pytest.raises(TypeError):
        adj["rtol"] = 1.0


def test_odeint_forward_after_a_remembered_solve():
    from autograd import grad

    def loss(theta):
        return nk.odeint(lv_py, LV_Y0, T, theta, rtol=1e-8, atol=1e-10)[-1].sum()

    solve(fun=lv_py, rtol=1e-8, atol=1e-10)
    g1 = grad(loss)(LV_THETA)
    integrate._VALID_OPTIONS.clear()
    g2 = grad(loss)(LV_THETA)
    np.testing.assert_array_equal(g1, g2)
