"""The compiled loop's interface: named records whose Numba types are exactly
those the loop was compiled for, and a cheap check of what its entry point
would otherwise unbox without looking."""
import numba
import numpy as np
import pytest
from numba import types as nbt

import nodekit as nk
from nodekit import _kernels
from nodekit import integrate as I
from nodekit.tableaux import get_tableau

from problems import LV

TH = np.array([1.5, 1.0, 3.0, 1.0])
T = np.linspace(0.0, 2.0, 5)

_V = nbt.float64[::1]
_M = nbt.float64[:, ::1]
LOOP_TABLEAU_TYPES = (_M, _V, _V, _V, _V, _M, nbt.boolean, nbt.int64, nbt.int64,
                      nbt.boolean, nbt.int64)
LOOP_OPTIONS_TYPES = (_V, _V, nbt.int64, _V, nbt.float64, nbt.float64, nbt.int64,
                      nbt.float64, nbt.boolean, nbt.boolean)


def _args(**options):
    """The loop's arguments exactly as ``nk.solve`` builds them."""
    y0 = np.ones(2)
    system = _kernels.ode_system(LV.rhs_cfunc, TH)
    opt = I.loop_options(np.full(2, 1e-6), np.full(2, 1e-9), nk.PIController(), **options)
    return (system, y0, T, I.loop_tableau(get_tableau("dopri5")), opt,
            np.full((T.size, 2), np.nan), np.zeros(4))


@pytest.mark.parametrize("options", [{}, {"dense": True, "first_step": 1e-3},
                                     {"step_size": 0.1, "max_steps": 10, "n_err": 1}])
def test_argument_types_match_the_compiled_signature(options):
    args = _args(**options)
    tab, opt = args[3], args[4]
    assert tuple(numba.typeof(tab)) == LOOP_TABLEAU_TYPES
    assert tuple(numba.typeof(opt)) == LOOP_OPTIONS_TYPES
    assert tab._fields == ("A", "C", "B", "E", "E2", "P", "has_e2", "n_stages",
                           "f1_index", "fsal", "error_order")
    nk.solve(LV, [1.0, 1.0], T, TH)  # compiles (or loads) the loop for ODE systems
    sig = tuple(numba.typeof(a) for a in args)
    assert sig in _kernels.integrate.overloads, (
        f"the loop has no compiled signature {sig}; it has "
        f"{list(_kernels.integrate.overloads)}")


def test_results_are_named_and_equal_the_solution():
    args = _args()
    res = I.run_loop(True, args)
    assert isinstance(res, _kernels.LoopResult)
    sol = nk.solve(LV, [1.0, 1.0], T, TH)
    assert res.status == sol.status == 0
    assert (res.nfev, res.nsteps, res.naccept, res.nreject) == (
        sol.nfev, sol.nsteps, sol.naccept, sol.nreject)
    assert res.n_out == T.size
    np.testing.assert_array_equal(args[5], sol.y)


@pytest.mark.parametrize("index, bad, what", [
    (1, np.ones(2, dtype=np.float32), "`y0`"),
    (2, np.linspace(0.0, 2.0, 10)[::2], "`ts`"),
    (5, np.zeros(T.size * 2), "`out`"),
])
def test_arrays_of_another_type_are_refused_before_the_entry_point(index, bad, what):
    args = list(_args())
    args[index] = bad
    with pytest.raises(TypeError, match=what):
        I.run_loop(True, tuple(args))


def test_options_must_be_the_record():
    args = list(_args())
    args[4] = tuple(args[4])  # positional values: exactly what the record prevents
    with pytest.raises(TypeError, match="loop_options"):
        I.run_loop(True, tuple(args))
