"""One regression test per silently-wrong or unclear behaviour of the forward
solver and the compiled-kernel entry that a fault review found."""
import numpy as np
import pytest
import fault_kernels as fk
from fault_kernels import decay, decay_vjp_raises, raises_late

import nodekit as nk
from nodekit import _kernels
from nodekit.integrate import replay_fault_message

T = np.linspace(0.0, 1.0, 5)


# -- item 1: an exception inside a compiled kernel ends the solve -------------
def test_kernel_exception_fails_the_solve_with_its_message():
    sol = nk.solve(nk.ODE(raises_late), [1.0], T, [1.0])
    assert sol.status == _kernels.FAILED_KERNEL == -4 and not sol.success
    assert "`rhs` kernel 'raises_late'" in sol.message
    assert "ValueError: kernel refuses t > 0.5" in sol.message
    assert 0.25 <= sol.t_reached <= 0.5  # the last accepted time
    np.testing.assert_allclose(sol.y[1, 0], np.exp(-0.25), rtol=1e-5)  # before: fine
    assert np.isnan(sol.y[3:]).all()                                    # after: NaN


@pytest.mark.parametrize("method, step_size", [("rk4", 0.01), ("dop853", None)])
def test_kernel_exception_fails_fixed_step_and_dense(method, step_size):
    sol = nk.solve(nk.ODE(raises_late), [1.0], T, [1.0], method=method,
                   step_size=step_size, dense=True)
    assert sol.status == -4 and "ValueError" in sol.message


@pytest.mark.parametrize("jac", [None, fk.decay_jac_raises_late])
def test_kernel_exception_fails_a_stiff_solve(jac):
    # the Rosenbrock loop evaluates the kernel in its stages, its difference
    # Jacobian and its step ends: each must stop the solve, not carry on
    sol = nk.solve(nk.ODE(raises_late, jac=jac), [1.0], T, [1.0], method="rodas5")
    assert sol.status == -4 and not sol.success
    assert "`rhs` kernel 'raises_late'" in sol.message and "ValueError" in sol.message
    assert np.isnan(sol.y[-1]).all()


def test_jacobian_exception_fails_a_stiff_solve():
    sol = nk.solve(nk.ODE(decay, jac=fk.decay_jac_raises_late), [1.0], T, [1.0],
                   method="rodas4")
    assert sol.status == -4
    assert "`jac` kernel 'decay_jac_raises_late' raised ValueError: jacobian refuses" \
        in sol.message
    np.testing.assert_allclose(sol.y[2, 0], np.exp(-0.5), rtol=1e-5)
    assert np.isnan(sol.y[3:]).all()


def test_stiff_solve_checks_sizes_and_arity_like_the_explicit_one():
    with pytest.raises(ValueError, match="`theta` must have 4 values"):
        nk.solve(nk.ODE(fk.lv, n_states=2, n_theta=4), [1.0, 1.0], T, [1.0],
                 method="rodas5")
    with pytest.raises(TypeError, match="fun\\(t, y, theta\\)"):
        nk.solve(lambda t, y: -y, [1.0], T, method="rodas5")


def test_boundscheck_index_error_fails_the_solve():
    sol = nk.solve(nk.ODE(fk.writes_past_end_late), [1.0, 2.0], T)
    assert sol.status == -4
    assert "IndexError" in sol.message and "writes_past_end_late" in sol.message


def test_kernel_exception_in_odeint_forward_raises():
    with pytest.raises(nk.SolveError, match="ValueError: kernel refuses"):
        nk.odeint(nk.ODE(raises_late), [1.0], T, [1.0])


@pytest.mark.parametrize("gradient", ["adjoint", "interpolated"])
def test_vjp_exception_fails_the_continuous_backward_pass(gradient):
    import autograd
    ode = nk.ODE(decay, decay_vjp_raises)

    def loss(th):
        return nk.odeint(ode, [1.0], T, th, gradient=gradient)[-1, 0]
    with pytest.raises(nk.GradientError, match="`vjp` kernel 'decay_vjp_raises' "
                       "raised RuntimeError: vjp is broken"):
        autograd.grad(loss)(np.array([1.0]))


def test_vjp_exception_fails_the_discrete_reverse_sweep():
    ode = nk.ODE(decay, decay_vjp_raises)
    tab = nk.get_tableau("dopri5")
    sol = nk.solve(ode, [1.0], T, [1.0], dense=True)
    d = sol.dense
    args = (ode.vjp_cfunc, np.array([1.0]), T, np.ones((5, 1)), tab.A, tab.C, tab.B,
            tab.P, d.t_grid, d.h_grid, d.y_grid, d.K_grid, d.t_grid.size,
            np.empty(1), np.empty(1))
    assert _kernels.reverse_steps(*args) == _kernels.FAILED_KERNEL
    msg = replay_fault_message(_kernels.reverse_steps_py, args, "the discrete backward pass")
    assert "`vjp` kernel 'decay_vjp_raises' raised RuntimeError: vjp is broken" in msg


def test_rhs_exception_is_reported_by_rhs_at_points():
    ode = nk.ODE(raises_late)
    ys = np.ones((5, 1))
    args = (ode.rhs_cfunc, T, ys, np.array([1.0]), np.empty((5, 1)))
    assert _kernels.rhs_at_points(*args) == 1
    msg = replay_fault_message(_kernels.rhs_at_points_py, args, "the time gradient")
    assert "ValueError: kernel refuses t > 0.5" in msg


# -- item 3: sizes are checked against what a kernel reads and writes ----------
LV_TH = [1.5, 1.0, 3.0, 1.0]


def test_declared_sizes_are_checked_on_entry():
    ode = nk.ODE(fk.lv, n_states=2, n_theta=4)
    assert nk.solve(ode, [1.0, 1.0], T, LV_TH).success
    with pytest.raises(ValueError, match=r"`theta` must have 4 values .* got 2"):
        nk.solve(ode, [1.0, 1.0], T, [1.5, 1.0])
    with pytest.raises(ValueError, match=r"`theta` must have 4 values .* got 0"):
        nk.solve(ode, [1.0, 1.0], T)
    with pytest.raises(ValueError, match=r"`y0` must have 2 values .* \(3 values\)"):
        nk.solve(ode, [1.0, 1.0, 1.0], T, LV_TH)
    with pytest.raises(ValueError, match="does not declare batch support"):
        nk.solve(ode, np.ones((5, 2)), T, LV_TH)
    with pytest.raises(ValueError, match="n_states"):
        nk.ODE(fk.lv, n_states=0)


def test_first_call_catches_short_theta_and_missing_theta():
    ode = nk.ODE(fk.lv)
    with pytest.raises(ValueError, match=r"indexes past the end .* theta of 2 values"):
        nk.solve(ode, [1.0, 1.0], T, [1.5, 1.0])
    with pytest.raises(ValueError, match=r"theta of 0 values"):
        nk.solve(ode, [1.0, 1.0], T)


def test_first_call_catches_a_batch_for_a_fixed_size_kernel():
    with pytest.raises(ValueError, match=r"never writes out\[2, 3, .*8 of 10"):
        nk.solve(nk.ODE(fk.lv), np.ones((5, 2)), T, LV_TH)
    # a kernel looping over y.size handles the batch
    sol = nk.solve(nk.ODE(decay), np.ones((5, 2)), T, [1.0])
    np.testing.assert_allclose(sol.y[-1], np.exp(-1.0), rtol=1e-6)


def test_first_call_catches_out_of_bounds_writes_and_unwritten_entries():
    with pytest.raises(ValueError, match="indexes past the end"):
        nk.solve(nk.ODE(fk.writes_past_end), [1.0, 2.0], T)
    with pytest.raises(ValueError, match=r"never writes out\[1\]"):
        nk.solve(nk.ODE(fk.writes_first_only), [1.0, 2.0], T)
    with pytest.raises(ValueError, match="writes into its input `y`"):
        nk.solve(nk.ODE(fk.modifies_y), [1.0], T)


def test_jac_is_validated_and_stored():
    ode = nk.ODE(fk.lv, jac=fk.lv)
    assert ode.jac is fk.lv
    with pytest.raises(TypeError, match="`jac` must be a Numba-jitted"):
        nk.ODE(fk.lv, jac=lambda t, y, th, out: None)


def test_prebuilt_cfunc_of_the_wrong_signature_is_named():
    import numba
    from numba import types as nbt
    bad = numba.cfunc(nbt.void(nbt.float64, nbt.float64[::1], nbt.float64[::1]))(
        lambda t, y, out: None)
    with pytest.raises(TypeError, match="prebuilt numba.cfunc .* needs"):
        nk.ODE(bad)


def test_debug_build_bounds_checks_the_compiled_kernel():
    # the same kernel without boundscheck, made bounds-checked by debug=True
    sol = nk.solve(nk.ODE(fk.raises_late, debug=True), [1.0], [0.0, 0.4], [1.0])
    assert sol.success and nk.ODE(fk.raises_late, debug=True).debug


# -- item 5: fixed steps below the resolution of t -----------------------------
def test_step_below_the_resolution_of_t_is_an_error():
    with pytest.raises(ValueError, match=r"`step_size`=0.1 is below the resolution of `t`"):
        nk.solve(nk.ODE(decay), [1.0], [1e16, 1e16 + 10], [1.0], method="rk4",
                 step_size=0.1)
    with pytest.raises(ValueError, match=r"`max_step`=1e-12 is below the resolution"):
        nk.solve(nk.ODE(decay), [1.0], [1e6, 1e6 + 1], [1.0], max_step=1e-12)


# -- item 6: complex input is rejected -----------------------------------------
def test_complex_input_is_a_type_error():
    with pytest.raises(TypeError, match="`y0` must be real"):
        nk.solve(nk.ODE(decay), np.array([1 + 5j]), T, [1.0])
    with pytest.raises(TypeError, match="`theta` must be real"):
        nk.solve(nk.ODE(decay), [1.0], T, np.array([1 + 1j]))
    with pytest.raises(TypeError, match="returned complex values"):
        nk.solve(lambda t, y, th: -1j * y, np.array([1.0]), T)


# -- item 7: a Python fun gets a read-only state -------------------------------
def test_python_fun_cannot_modify_the_state():
    def fun(t, y, th):
        y *= 0.5
        return -y
    with pytest.raises(ValueError, match="read-only"):
        nk.solve(fun, [1.0], T)


# -- item 18: nk.ODE pickles after first use -----------------------------------
def test_ode_pickles_after_use():
    import pickle
    ode = nk.ODE(decay, decay_vjp_raises, n_states=1, n_theta=1)
    nk.solve(ode, [1.0], T, [1.0])
    back = pickle.loads(pickle.dumps(ode))
    assert back.rhs is decay and back.vjp is decay_vjp_raises and back.n_theta == 1
    np.testing.assert_allclose(nk.solve(back, [1.0], T, [1.0]).y[-1], np.exp(-1.0),
                               rtol=1e-6)


# -- unclear errors at solve entry ---------------------------------------------
def test_initial_step_does_not_divide_by_zero():
    sol = nk.solve(nk.ODE(fk.lv), [1e150, 1e150], T, LV_TH)
    assert sol.status == -1  # the state overflows: a failure, not ZeroDivisionError
    sol = nk.solve(nk.ODE(decay), [1.0], [0.0, 5e-324], [1.0])
    assert sol.success and sol.y[-1, 0] == 1.0


def test_python_fun_returning_none_is_named():
    with pytest.raises(TypeError, match=r"returned None \(a missing `return`\?\)"):
        nk.solve(lambda t, y, th: None, [1.0], T)


def test_two_argument_fun_is_explained():
    with pytest.raises(TypeError, match=r"nodekit calls fun\(t, y, theta\)"):
        nk.solve(lambda t, y: -y, [1.0], T)


def test_unstable_fixed_step_is_not_blamed_on_a_singularity():
    sol = nk.solve(nk.ODE(decay), [1.0], [0.0, 100.0], [100.0], method="euler",
                   step_size=0.5)
    assert sol.status == -1 and "smaller `step_size`" in sol.message


def test_huge_max_steps_is_a_value_error():
    with pytest.raises(ValueError, match=r"at most 2\*\*63 - 1"):
        nk.solve(nk.ODE(decay), [1.0], T, [1.0], max_steps=2 ** 63)


@pytest.mark.parametrize("checkpoints", [0, 2])
def test_vjp_exception_in_odeint_discrete_raises_naming_the_kernel(checkpoints):
    import autograd
    import autograd.numpy as anp
    ode = nk.ODE(decay, decay_vjp_raises)

    def loss(th):
        return anp.sum(nk.odeint(ode, [1.0], np.linspace(0, 1, 5), th, gradient="discrete",
                                 checkpoints=checkpoints))
    with pytest.raises(nk.GradientError, match="`vjp` kernel 'decay_vjp_raises' raised"):
        autograd.grad(loss)(np.array([1.0]))


_RACE_KERNELS = "import numba\n" + "".join(
    f"@numba.njit(cache=True)\ndef k{k}(t, y, th, out):\n    out[0] = -{k}.0 * y[0]\n"
    for k in (1, 2, 3, 4))
_RACE_CHILD = '''
import sys, nodekit as nk, race_kernels
for name in sys.argv[1:]:
    s = nk.solve(nk.ODE(getattr(race_kernels, name)), [1.0], [0.0, 1.0], [0.0], rtol=1e-10)
    print(name, round(float(s.y[-1, 0]), 8))
'''


@pytest.mark.slow
def test_processes_compiling_different_kernels_at_once_share_the_cache_safely(tmp_path):
    # every guarded wrapper is one function to Numba's cache (one index of many
    # entries); unlocked concurrent saves could point one kernel's entry at
    # another's machine code, which a later process would run silently
    import os
    import subprocess
    import sys
    (tmp_path / "race_kernels.py").write_text(_RACE_KERNELS)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"),
               NODEKIT_CACHE=str(tmp_path / "nk"),
               PYTHONPATH=os.pathsep.join([str(tmp_path), root]))
    procs = [subprocess.Popen([sys.executable, "-c", _RACE_CHILD, a, b], env=env,
                              stdout=subprocess.PIPE, text=True)
             for a, b in (("k1", "k3"), ("k2", "k4"))]
    for p in procs:
        p.communicate(timeout=600)
    out = subprocess.run([sys.executable, "-c", _RACE_CHILD, "k1", "k2", "k3", "k4"],
                         env=env, capture_output=True, text=True, timeout=600).stdout
    got = dict(line.split() for line in out.splitlines())
    for k in (1, 2, 3, 4):
        assert abs(float(got[f"k{k}"]) - np.exp(-k)) < 1e-7, out
