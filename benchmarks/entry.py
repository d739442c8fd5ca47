"""The fixed cost of ``nk.solve``: what a call costs outside the steps.

A solve of the Lotka-Volterra ``nk.ODE`` between two output times 1e-9
apart takes one step, so its time is the cost of the call itself.  The
table times it layer by layer (``nk.solve`` down to the compiled loop's
entry point), and, in the same process and alternating, the two costs of the
entry point that nodekit avoids against what Numba does by default:

* a kernel passed as Numba's ``FunctionType`` (unboxed by calling back into
  Python, twice per kernel) against nodekit's ``KernelType`` (unboxed from
  the address the kernel carries, :mod:`nodekit._kernel_type`);
* the result boxed as the ``LoopResult`` record with its five arrays against
  ``integrate_entry``'s plain tuple, with no arrays unless the run recorded
  steps or events.

Run: ``python -m nodekit.benchmarks.entry``.
"""
import timeit

import numba as nb
import numpy as np
from numba.core.types.function_type import WrapperAddressProtocol

from ._timing import table

THETA = np.array([1.5, 1.0, 3.0, 1.0])
Y0 = np.array([1.0, 1.0])
T_TINY = np.array([0.0, 1e-9])
RTOL, ATOL = 1e-8, 1e-10


class FunctionTypeKernel(WrapperAddressProtocol):
    """A kernel as Numba types it by default: ``FunctionType``, its address
    asked through the wrapper-address protocol at every call."""

    def __init__(self, kernel):
        self.kernel, self.address = kernel, kernel.address

    def __wrapper_address__(self):
        return self.address

    def signature(self):
        return self.kernel._sig


def _entry_point(dispatcher, args):
    sig = tuple(nb.typeof(a) for a in args)
    dispatcher.compile(sig)
    return dispatcher.overloads[sig].entry_point


@nb.njit(cache=True)
def _take(x):
    return 0


def best_of(cases, number, rounds):
    """Per case the best time per call (s), the cases alternating in each round."""
    best = dict.fromkeys(cases, np.inf)
    for _ in range(rounds):
        for name, fn in cases.items():
            best[name] = min(best[name], min(timeit.repeat(fn, number=number, repeat=3)) / number)
    return best


def run(quick=False):
    import nodekit as nk
    from nodekit import _kernels
    from nodekit import integrate as I
    from nodekit.tableaux import get_tableau

    from ._lv_hand import LV
    from .ensemble import cpu_model

    def loop_args(kernel):
        opt = I.loop_options(np.full(2, RTOL), np.full(2, ATOL), nk.PIController())
        return (_kernels.OdeSystem(kernel, THETA.copy()), Y0.copy(), T_TINY,
                I.loop_tableau(get_tableau("dopri5")), opt, np.empty((2, 2)), np.zeros(4))

    nk.solve(LV, Y0, T_TINY, THETA, rtol=RTOL, atol=ATOL)
    new, old = loop_args(LV.rhs_cfunc), loop_args(FunctionTypeKernel(LV.rhs_cfunc))
    new_entry = _entry_point(_kernels.integrate_entry, new)
    old_entry = _entry_point(_kernels.integrate, old)
    system_new, system_old = new[0], old[0]
    take_new, take_old = _entry_point(_take, (system_new,)), _entry_point(_take, (system_old,))
    take_tab, take_opt = _entry_point(_take, (new[3],)), _entry_point(_take, (new[4],))
    cases = {
        "nk.solve, one step": lambda: nk.solve(LV, Y0, T_TINY, THETA, rtol=RTOL, atol=ATOL),
        "integrate.run_loop (checks, Ctrl-C guard, entry point)":
            lambda: I.run_loop(True, new),
        "entry point: KernelType, plain tuple (nodekit)": lambda: new_entry(*new),
        "entry point: FunctionType, LoopResult (Numba's default)": lambda: old_entry(*old),
        "unbox an OdeSystem: KernelType": lambda: take_new(system_new),
        "unbox an OdeSystem: FunctionType": lambda: take_old(system_old),
        "unbox the LoopTableau": lambda: take_tab(new[3]),
        "unbox the LoopOptions": lambda: take_opt(new[4]),
    }
    best = best_of(cases, 200 if quick else 2000, 3 if quick else 10)
    print(f"CPU: {cpu_model()}")
    print("The fixed cost of a call: Lotka-Volterra nk.ODE, dopri5, 2 output times 1e-9 "
          "apart (best of alternating rounds)")
    print(table([(name, f"{1e6 * s:.2f}") for name, s in best.items()], ["part", "us / call"]))
    return best


if __name__ == "__main__":
    run()
