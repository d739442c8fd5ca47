"""Validators for the public entry points: one small function per concern.

Each raises ``ValueError`` or ``TypeError`` naming the argument, what was
expected and what was received.
"""
import math
import numbers

import numpy as np
from autograd.tracer import isbox

from . import _scipy_compat
from ._kernels import all_finite, strictly_monotone


def _describe(x):
    if isinstance(x, np.ndarray):
        return f"array of shape {x.shape} and dtype {x.dtype}"
    return repr(x) if len(repr(x)) < 80 else type(x).__name__


def as_float_array(x, name):
    """``x`` as a float64 ndarray, or a TypeError naming ``name``.

    Complex input is rejected (converting it would drop the imaginary part).
    """
    if np.iscomplexobj(x):
        raise TypeError(f"`{name}` must be real; got complex values ({_describe(x)}). "
                        "nodekit integrates real systems: split a complex state into "
                        "its real and imaginary parts.")
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        if _holds_traced(x):
            raise TypeError(
                f"`{name}` is a list or tuple holding values that autograd is tracing; "
                f"build it with autograd.numpy instead (`{name}=anp.array([...])`, with "
                "`import autograd.numpy as anp`), so that the gradient flows through "
                "it.") from None
        raise TypeError(f"`{name}` must be an array of real numbers; got {_describe(x)}.") from None
    return a


def _holds_traced(x):
    """``x`` is a (nested) list or tuple with an autograd box in it."""
    if isbox(x):
        return True
    return isinstance(x, (list, tuple)) and any(map(_holds_traced, x))


def check_finite(a, name):
    if a.size <= 16:  # a compiled call costs more than a Python loop here
        if all(map(math.isfinite, a.reshape(-1).tolist())):
            return
    elif all_finite(np.ascontiguousarray(a).reshape(-1)):
        return
    bad = np.argwhere(~np.isfinite(a))[0]
    where = tuple(int(i) for i in bad) if a.ndim else ()
    raise ValueError(f"`{name}` must be finite; got {float(a[tuple(bad)])!r} at index {where}.")


def check_y0(y0):
    if type(y0) is np.ndarray and y0.dtype == np.float64:  # already an array: copy it
        a = y0.copy()
    else:
        a = np.array(as_float_array(y0, "y0"), copy=True)
    if a.size == 0:
        raise ValueError(f"`y0` must have at least one element; got shape {a.shape}.")
    check_finite(a, "y0")
    return a


def check_theta(theta, flat):
    """``theta`` as a float array; ``flat`` requires one dimension."""
    if theta is None:
        return np.empty(0)
    if type(theta) is np.ndarray and theta.dtype == np.float64:  # already an array
        a = theta.copy()
    else:
        a = np.array(as_float_array(theta, "theta"), copy=True)
    if flat and a.ndim != 1:
        raise ValueError("`theta` must be a flat (1-D) parameter vector for a compiled "
                         f"`nk.ODE`; got shape {a.shape}. Flatten it (and unpack inside "
                         "the kernel).")
    check_finite(a, "theta")
    return a


def check_t(t):
    a = t if type(t) is np.ndarray and t.dtype == np.float64 else as_float_array(t, "t")
    if a.ndim != 1 or a.size < 2:
        raise ValueError("`t` must be a 1-D array of at least 2 times (the initial time "
                         f"first); got shape {a.shape}.")
    a = np.ascontiguousarray(a)
    check_finite(a, "t")
    if not strictly_monotone(a):
        d = np.diff(a)
        i = int(np.argmax(np.sign(d) != np.sign(d[0]))) if d[0] != 0 else 0
        raise ValueError("`t` must be strictly increasing or strictly decreasing; got "
                         f"t[{i}]={float(a[i])!r}, t[{i + 1}]={float(a[i + 1])!r}.")
    return a


def is_plain_tol(tol, name):
    """``tol`` is a float that :func:`check_tol` takes as it is: finite,
    positive, and for ``rtol`` at least 100 machine epsilons."""
    return (isinstance(tol, float) and math.isfinite(tol) and tol > 0
            and (name != "rtol" or tol >= 100 * 2.220446049250313e-16))


def tol_array(tol, n):
    """The per-component array of ``n`` copies of the plain tolerance ``tol``
    (:func:`is_plain_tol`), as :func:`check_tol` returns it."""
    a = np.empty(n)
    a.fill(tol)  # (np.full costs a few microseconds more)
    return a


def check_tol(tol, name, n_shape, y0=None):
    """``rtol``/``atol``: positive scalars or arrays broadcastable to the state."""
    if is_plain_tol(tol, name):
        return tol_array(tol, math.prod(n_shape))
    a = as_float_array(tol, name)
    if name == "atol" and np.all(np.isfinite(a)) and np.all(a >= 0):
        # atol = 0 is a pure relative test, as in SciPy (rtol is always positive);
        # the smallest normal float keeps the error scale of a nonzero state nonzero
        a = np.maximum(a, np.finfo(float).tiny)
    elif not np.all(np.isfinite(a)) or not np.all(a > 0):
        raise ValueError(f"`{name}` must be positive and finite; got {name}={_describe(tol)}.")
    try:
        b = np.broadcast_to(a, n_shape)
    except ValueError:
        raise ValueError(f"`{name}` must be a scalar or have a shape that broadcasts to "
                         f"y0.shape={n_shape}; got shape {a.shape}.") from None
    if name == "atol" and y0 is not None and np.any((b == np.finfo(float).tiny) & (y0 == 0)):
        raise ValueError("`atol`=0 is a pure relative test, undefined for a state that "
                         "starts at exactly 0 (y0 has zeros): give atol > 0.")
    if name == "rtol" and np.any(b < 100 * np.finfo(float).eps):
        raise ValueError(f"`rtol` must be at least 100 * machine epsilon "
                         f"({100 * np.finfo(float).eps:.3g}) for float64; got "
                         f"{float(b.min())!r}.")
    return np.ascontiguousarray(b.ravel(), dtype=np.float64)


INT64_MAX = 2 ** 63 - 1


def check_positive(x, name, allow=(), integer=False):
    """A positive real (or integer, at most ``2**63 - 1``) scalar; values in
    ``allow`` pass as is."""
    if (type(x) is float and not integer and 0.0 < x <= math.inf
            or type(x) is int and 0 < x <= INT64_MAX):
        return x  # the common case, without the checks below (a few us each call)
    if any(x is v for v in allow):
        return x
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(x, bool) or not isinstance(x, kind) or not x > 0 or x != x:
        what = "a positive integer" if integer else "a positive number"
        raise ValueError(f"`{name}` must be {what}; got {name}={x!r}.")
    if integer and x > INT64_MAX:
        raise ValueError(f"`{name}` must be at most 2**63 - 1 (a 64-bit integer); got "
                         f"{name}={x!r}.")
    return x


def check_resolved_step(h, name, ts):
    """A step size (``step_size``, ``max_step``) the times ``ts`` can resolve.

    Far from ``t = 0`` consecutive floats are far apart (``spacing(1e16) =
    2``): a step below about a hundred of them would be rounded away.
    """
    if h == math.inf:
        return
    ulp = float(np.spacing(max(abs(float(ts[0])), abs(float(ts[-1])))))
    if h < 100.0 * ulp:
        raise ValueError(
            f"`{name}`={h!r} is below the resolution of `t` near "
            f"{max(abs(float(ts[0])), abs(float(ts[-1]))):.6g}, where consecutive "
            f"float64 times are {ulp:.3g} apart: the steps would be rounded away. "
            f"Use a `{name}` of at least {100.0 * ulp:.3g}, or shift the time origin "
            "(solve in s = t - t[0]; a non-autonomous `fun` then adds t[0] itself).")


def options_message(options, allowed, where):
    """The message for the keyword arguments ``options`` of ``where()`` that
    are not in ``allowed``: the valid options, and what to use instead of a
    SciPy option; ``None`` when all are valid."""
    unknown = sorted(set(options) - set(allowed))
    if not unknown:
        return None
    return (f"{where}() got unexpected keyword argument(s) "
            f"{', '.join(map(repr, unknown))}; valid options are "
            f"{', '.join(map(repr, sorted(allowed)))}." + _scipy_compat.option_hints(unknown))


def check_options(options, allowed, where):
    """Unknown keyword arguments are errors, never silently ignored."""
    message = options_message(options, allowed, where)
    if message:
        raise TypeError(message)
