"""``nk.ODE``: a right-hand side given as compiled Numba kernels."""
import inspect
from functools import cached_property

import numba as nb
from numba import types as nbt
from numba.core.ccallback import CFunc
from numba.core.errors import TypingError
from numba.core.registry import CPUDispatcher

_V = nbt.float64[::1]
#: Signature of a compiled right-hand side ``rhs(t, y, theta, out)``.
RHS_SIG = nbt.void(nbt.float64, _V, _V, _V)
#: Signature of a compiled VJP ``vjp(t, y, theta, a, out_y, out_theta) -> a.df/dt``.
VJP_SIG = nbt.float64(nbt.float64, _V, _V, _V, _V, _V)


def _arity(fn):
    try:
        return len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return None


def _check_kernel(fn, name, arity, signature_text):
    if isinstance(fn, CFunc):
        return
    if not isinstance(fn, CPUDispatcher):
        raise TypeError(
            f"`{name}` must be a Numba-jitted function (decorate it with "
            f"@numba.njit) with signature {signature_text}; got "
            f"{type(fn).__name__} {fn!r}. For a Python function, pass it to "
            "nk.solve directly instead of wrapping it in nk.ODE.")
    n = _arity(fn.py_func)
    if n != arity:
        raise TypeError(f"`{name}` must take {arity} arguments {signature_text}; "
                        f"{fn.py_func.__name__} takes {n}.")


def _cfunc(fn, sig, name):
    """A first-class compiled function (cached on disk) for kernel ``fn``.

    Compiled with NumPy's error model: ``1/0`` gives ``inf`` (and the solve
    stops with status -1), where Python's would raise a ``ZeroDivisionError``
    that cannot propagate out of the compiled loop (it would be printed and
    ignored, and the solve would report success).
    """
    if isinstance(fn, CFunc):
        return fn
    # keep the kernel's own code-generation options (fastmath, boundscheck)
    opts = {k: v for k, v in fn.targetoptions.items() if k in ("fastmath", "boundscheck")}
    opts["error_model"] = "numpy"
    try:
        return nb.cfunc(sig, cache=True, **opts)(fn.py_func)
    except TypingError as exc:  # numba typing errors are long; lead with ours
        raise TypeError(
            f"`{name}` kernel {fn.py_func.__name__} could not be compiled for the "
            f"signature {sig} (1-D contiguous float64 arrays). Numba said:\n{exc}") from exc
    except Exception:
        # no source file to key a disk cache on (exec'd code, some REPLs), or
        # globals that cannot be pickled: compile without the disk cache
        return nb.cfunc(sig, cache=False, **opts)(fn.py_func)


class ODE:
    """A right-hand side given as Numba-jitted, non-allocating kernels.

    With an ``ODE``, the whole solve (and the whole adjoint solve) runs in
    nopython mode: no Python is executed per step.

    Parameters
    ----------
    rhs : numba-jitted function
        ``rhs(t, y, theta, out)`` writes ``dy/dt`` into ``out``.  ``y``,
        ``theta`` and ``out`` are 1-D contiguous float64 arrays; a model with
        matrix or batched state reshapes inside the kernel.
    vjp : numba-jitted function, optional
        ``vjp(t, y, theta, a, out_y, out_theta) -> float`` overwrites
        ``out_y = a^T df/dy`` and ``out_theta = a^T df/dtheta`` and returns
        ``a^T df/dt``.  Needed only to differentiate through a solve.
    name : str, optional
        Shown in messages and reprs.

    Raises
    ------
    TypeError
        If a kernel is not Numba-jitted or takes the wrong number of arguments.

    Notes
    -----
    Each kernel is compiled once more as a ``numba.cfunc`` with the fixed
    signature above (keeping its ``fastmath`` and ``boundscheck`` options,
    with NumPy's error model so that ``1/0`` gives ``inf`` and fails the
    solve instead of an exception that could not leave the compiled loop)
    and cached on disk; the solver loop receives it as a
    first-class function, so the loop itself is compiled once for all ODEs
    and loaded from Numba's cache by every later process.  Define kernels at
    module level in a file (not in a notebook cell or a closure) so that
    Numba can cache them.

    Examples
    --------
    >>> import numba, numpy as np, nodekit as nk
    >>> @numba.njit
    ... def decay(t, y, theta, out):
    ...     for i in range(y.size):
    ...         out[i] = -theta[0] * y[i]
    >>> sol = nk.solve(nk.ODE(decay), [1.0], [0.0, 1.0], theta=[2.0])
    >>> bool(abs(sol.y[-1, 0] - np.exp(-2.0)) < 1e-6)
    True
    """

    def __init__(self, rhs, vjp=None, *, name=None):
        _check_kernel(rhs, "rhs", 4, "(t, y, theta, out)")
        if vjp is not None:
            _check_kernel(vjp, "vjp", 6, "(t, y, theta, a, out_y, out_theta)")
        self.rhs = rhs
        self.vjp = vjp
        self.name = name or getattr(getattr(rhs, "py_func", rhs), "__name__", "ode")

    @cached_property
    def rhs_cfunc(self):
        """The ``rhs`` kernel as a cached first-class compiled function."""
        return _cfunc(self.rhs, RHS_SIG, "rhs")

    @cached_property
    def vjp_cfunc(self):
        """The ``vjp`` kernel as a first-class function (a stub if absent)."""
        if self.vjp is None:
            return _no_vjp()
        return _cfunc(self.vjp, VJP_SIG, "vjp")

    def check_sizes(self, y0, theta):
        """Called by ``nk.solve`` and ``nk.odeint`` with the validated ``y0`` and
        flat ``theta`` before any kernel runs; raises a ValueError if their
        sizes cannot be the kernels'.  Does nothing here (a plain ``nk.ODE``
        does not know its sizes); ODEs that know them override it."""

    def __repr__(self):
        return f"nk.ODE({self.name}, vjp={'yes' if self.vjp is not None else 'no'})"


_NO_VJP = []


def _no_vjp():
    """A placeholder VJP of the right signature for forward-only solves."""
    if not _NO_VJP:
        _NO_VJP.append(nb.cfunc(VJP_SIG, cache=True)(_no_vjp_kernel))
    return _NO_VJP[0]


def _no_vjp_kernel(t, y, theta, a, out_y, out_theta):  # pragma: no cover - compiled
    return 0.0
