"""The package's Numba decorators, with every flag a caller could hand down set.

Numba compiles a function the first time a caller needs one of its
signatures, and a flag the function does not set itself (``_nrt``,
``error_model``, ``fastmath``) is taken from *that caller*.  The compiled
overload then serves every later caller of the same signature, and Numba's
disk cache stores it under the signature alone, so whichever caller came
first in some earlier process decides the code every later process runs
(numba/numba#7168).

For nodekit this was a heap corruption: the explicit loop's body is compiled
without reference counting (``_nrt=False``, see :mod:`nodekit._kernels`); a
helper that returns one of its array arguments, first compiled from inside
that body, was cached without the reference it owes its caller, and a
reference-counting caller (the stiff loop, the compiled backsolve) then
released the array twice.  Which caller came first depended on what a process
had run before, so the fault appeared in some caches and not others.

Every compiled function of the package is therefore decorated with one of the
presets below, which set each inheritable flag explicitly: the code of a
function no longer depends on who called it first.
"""
import numba as nb

#: Flags every compiled function of the package sets itself (never inherited).
FLAGS = dict(cache=True, nogil=True, _nrt=True, error_model="python", fastmath=False)

#: An ordinary compiled function (reference counting on, Python error model).
jit = nb.njit(**FLAGS)

#: A function inlined into its callers at Numba IR level.
inline = nb.njit(inline="always", **FLAGS)

#: A loop body: no reference counting (it allocates nothing and runs on
#: borrowed arrays, see :func:`nodekit._kernels.borrowed`), and no Python or
#: C wrapper (only compiled code calls it).  Anything it calls is compiled with
#: its own preset, so reference counting stays correct in the callee.
body = nb.njit(**dict(FLAGS, _nrt=False), no_cpython_wrapper=True, no_cfunc_wrapper=True)
