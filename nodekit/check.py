"""``nk.check_ode``: test an ``nk.ODE``'s kernels before trusting a solve.

A hand-written ``vjp`` with a sign error, or one that forgets an entry of
``out_theta``, gives gradients that look plausible and are wrong; a kernel
that reads more parameters than it is given reads whatever lies past the
array.  :func:`check_ode` calls the kernels once at a given point and
compares what they return with central differences of ``rhs``, and reports
every finding in words.
"""
import threading
import weakref
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import _checks
from .ode import _MARK, ODE, _check_call, _python_kernel, changed_inputs

#: Machine epsilon of float64.
_EPS = float(np.finfo(float).eps)
#: The checks :func:`check_ode` runs, in order.
CHECKS = ("sizes", "rhs", "vjp", "vjp values", "jac", "jac values",
          "jac_theta", "jac_theta values")


class Check(NamedTuple):
    """One finding of :func:`check_ode`.

    Attributes
    ----------
    name : str
        Which check (one of :data:`CHECKS`).
    passed : bool or None
        ``True`` passed, ``False`` failed, ``None`` not run (the kernel is
        absent, or an earlier failure makes calling it unsafe).
    message : str
        One or two sentences saying what was found.
    """
    name: str
    passed: object
    message: str


@dataclass(frozen=True)
class CheckReport:
    """What :func:`check_ode` found, one :class:`Check` per check.

    ``report.ok`` is true when no check failed; ``str(report)`` reads as a
    list; ``report.failures`` holds the failed checks.
    """
    name: str
    checks: tuple

    @property
    def ok(self):
        """``True`` when no check failed (checks not run do not count)."""
        return not self.failures

    @property
    def failures(self):
        """The failed checks."""
        return tuple(c for c in self.checks if c.passed is False)

    def __getitem__(self, name):
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check named {name!r}; the checks are {list(CHECKS)}.")

    def __str__(self):
        mark = {True: "ok    ", False: "FAILED", None: "skip  "}
        head = (f"check_ode({self.name}): "
                + ("all checks passed." if self.ok else f"{len(self.failures)} check(s) failed."))
        return "\n".join([head] + [f"  {mark[c.passed]} {c.name}: {c.message}"
                                   for c in self.checks])


class KernelCheckError(ValueError):
    """Raised by ``check_ode(..., raise_on_failure=True)``; ``.report`` is the
    :class:`CheckReport`."""

    def __init__(self, report):
        super().__init__(str(report))
        self.report = report


class _Point(NamedTuple):
    """Where the kernels are checked: flat float64 arrays."""
    t: float
    y: np.ndarray
    theta: np.ndarray
    a: np.ndarray
    shape: tuple


#: The time :func:`check_ode` checks at unless told: not 0, where a term such
#: as ``theta[1] * sin(t)`` and its derivatives vanish.
DEFAULT_T = 0.37


def check_ode(ode, y0, theta=None, t=DEFAULT_T, *, a=None, rtol=1e-6, seed=0,
              raise_on_failure=False):
    """Check an ``nk.ODE``'s kernels at one point against central differences.

    Run it once on every hand-written kernel, at a typical state and
    parameter vector, before using it for gradients.  It checks:

    * ``sizes``: ``y0`` and ``theta`` against the ODE's declared
      ``n_states``/``n_theta`` (or its own size check, for symbolic and
      ``nn`` ODEs);
    * ``rhs``: one interpreted call with Python's bounds checks (reads or
      writes past an array), no write into ``y``, entries of ``out`` never
      written (``out`` prefilled with NaN, then with a marker), and then the
      compiled kernel's values are finite;
    * ``vjp``: the same for ``out_y`` and ``out_theta`` (and that ``y``,
      ``theta`` and ``a`` are not written);  ``vjp values``: ``out_y``,
      ``out_theta`` and the returned ``a^T df/dt`` against central
      differences of ``rhs`` in ``y``, ``theta`` and ``t``;
    * ``jac`` (when the ODE has one: ``jac(t, y, theta, out)`` writes
      ``out[i, j] = df_i/dy_j`` into ``out`` of shape (n, n)) and
      ``jac_theta`` (symbolic ODEs: shape (n, p)): the same, against central
      differences.

    Parameters
    ----------
    ode : nk.ODE
        Hand-written (``nk.ODE(rhs, vjp, jac)``), symbolic
        (``ODESystem.compile()``) or an ``nn`` model's ``.ode``.
    y0 : array_like
        The state to check at (any shape the ODE accepts; the kernels see it
        flat).  Use a typical, not a special, point: at ``y = 0`` a missing
        term ``theta[1] * y[0]`` is invisible.
    theta : array_like, shape (p,), optional
        The parameters.
    t : float, default 0.37
        The time to check at.  Not 0 by default: at ``t = 0`` a wrong or
        missing term such as ``theta[1] * sin(t)`` is invisible, as a term in
        ``y`` is at ``y = 0``.
    a : array_like, optional
        The cotangent for ``vjp``, shaped like ``y0``; default random
        (normal, from ``seed``), so that no entry is special.
    rtol : float, default 1e-6
        A derivative passes when it is within ``rtol`` of the central
        difference, relative to that entry's own size (for ``out_y`` and
        ``out_theta``, ``|a|^T |df/dx|``: the size of its terms), plus the
        difference's own error estimate (from a second step size, and the
        rounding of the quotient).  The differences are accurate to about
        1e-9 for smooth kernels.
    seed : int, default 0
        Seed of the random cotangent.
    raise_on_failure : bool, default False
        Raise :class:`KernelCheckError` (a ``ValueError`` whose message is
        the report) when a check fails, instead of returning the report.

    Returns
    -------
    CheckReport
        ``report.ok``, ``report.failures``, ``report["vjp values"]``;
        ``print(report)`` lists every check with a sentence.

    Raises
    ------
    TypeError
        If ``ode`` is not an ``nk.ODE``.
    ValueError
        If ``y0``, ``theta`` or ``t`` are not finite real numbers; or, with
        ``raise_on_failure=True``, if a check fails.

    Examples
    --------
    >>> import numba, nodekit as nk
    >>> @numba.njit
    ... def decay(t, y, theta, out):
    ...     out[0] = -theta[0] * y[0]
    >>> @numba.njit
    ... def decay_vjp(t, y, theta, a, out_y, out_theta):
    ...     out_y[0] = -theta[0] * a[0]
    ...     out_theta[0] = a[0] * y[0]          # wrong sign: should be -a[0] * y[0]
    ...     return 0.0
    >>> report = nk.check_ode(nk.ODE(decay, decay_vjp), [1.0], [0.5], a=[1.0])
    >>> report.ok
    False
    >>> print(report["vjp values"].message)  # doctest: +ELLIPSIS
    out_theta[0] = 1 but central differences of rhs give -1 (opposite sign). Recheck...
    """
    if not isinstance(ode, ODE):
        raise TypeError(f"`ode` must be an nk.ODE (compiled kernels); got "
                        f"{type(ode).__name__} {ode!r}. A Python `fun` needs no check: "
                        "autograd forms its derivatives.")
    y = _checks.check_y0(y0)
    th = _checks.check_theta(theta, flat=True)
    t = float(_checks.as_float_array(t, "t"))
    if not np.isfinite(t):
        raise ValueError(f"`t` must be finite; got t={t!r}.")
    _checks.check_positive(rtol, "rtol")
    if a is None:
        a = np.random.default_rng(seed).standard_normal(y.size)
    else:
        a = _checks.as_float_array(a, "a")
        if a.size != y.size:
            raise ValueError(f"`a` must have the shape of y0, {y.shape}; got {a.shape}.")
        _checks.check_finite(a, "a")
    p = _Point(t, np.ascontiguousarray(y.ravel()), np.ascontiguousarray(th),
               np.ascontiguousarray(np.ravel(a), dtype=np.float64), y.shape)
    checks = _run_checks(ode, y, th, p, rtol)
    report = CheckReport(ode.name, tuple(checks))
    if raise_on_failure and not report.ok:
        raise KernelCheckError(report)
    return report


def _run_checks(ode, y, th, p, rtol):
    try:
        ode.check_sizes(y, th)
    except ValueError as exc:
        yield Check("sizes", False, str(exc))
        for name in CHECKS[1:]:
            yield Check(name, None, "not run: the sizes do not match (a kernel called with "
                        "them could read or write past its arrays).")
        return
    if type(ode) is ODE and ode.n_states is None and ode.n_theta is None:
        yield Check("sizes", True, "the ODE declares no sizes: declare them "
                    "(nk.ODE(..., n_states=, n_theta=)) to have every solve check them.")
    else:
        yield Check("sizes", True, f"y0 of shape {p.shape} and theta of {th.size} values "
                    "match what the ODE declares.")
    rhs = _rhs_check(ode, p)
    yield rhs
    for name in ("vjp", "jac", "jac_theta"):
        try:
            kernel = getattr(ode, name, None)
        except ValueError as exc:  # a symbolic derivative that cannot be written
            kernel, why = None, str(exc)
        else:
            why = f"no `{name}` kernel."
        if kernel is None:
            yield Check(name, None, f"not run: {why}")
            yield Check(f"{name} values", None, f"not run: no `{name}` kernel.")
            continue
        structure = _structure_check(name, kernel, p)
        yield structure
        if not (rhs.passed and structure.passed):
            yield Check(f"{name} values", None, "not run: `"
                        + ("rhs" if not rhs.passed else name) + "` failed its check.")
            continue
        yield _values_check(name, kernel, ode.rhs, p, rtol)


_VJP_CHECKED = weakref.WeakKeyDictionary()
_VJP_LOCK = threading.Lock()


def check_vjp_first_call(ode, t, y, theta):
    """Run ``ode.vjp`` once interpreted, in the checked mode of ``check_ode``
    (bounds, writes into its inputs, unwritten entries of ``out_y`` and
    ``out_theta``); once per process for each ODE and pair of sizes.  Called
    by the backward pass of ``nk.odeint`` before the compiled backward solve.

    Raises
    ------
    ValueError
        Naming what the kernel does wrong, and pointing to :func:`check_ode`.
    """
    key = (np.size(y), np.size(theta))
    with _VJP_LOCK:
        if key in _VJP_CHECKED.get(ode, ()):
            return
    y = np.ascontiguousarray(y, dtype=np.float64).ravel()
    theta = np.ascontiguousarray(theta, dtype=np.float64).ravel()
    found = _structure_check("vjp", ode.vjp, _Point(float(t), y, theta, np.ones(y.size),
                                                    y.shape), raised=None)
    if found.passed is False:
        raise ValueError(f"{ode.name}: {found.message} Run nk.check_ode(ode, y0, theta) to "
                         "check every kernel against central differences.")
    with _VJP_LOCK:
        _VJP_CHECKED.setdefault(ode, set()).add(key)


def _rhs_check(ode, p):
    """The checked interpreted call of ``rhs`` (see ``ODE.check_first_call``),
    then one compiled call whose values must be finite."""
    try:
        _check_call(_python_kernel(ode.rhs), "rhs", ode.name, p.t, p.y, p.theta, p.shape)
    except ValueError as exc:
        return Check("rhs", False, str(exc))
    try:
        f = _call_rhs(ode.rhs, p.t, p.y, p.theta)
    except Exception as exc:  # noqa: BLE001 - any exception is a finding
        return Check("rhs", False, f"`rhs` raised {type(exc).__name__}: {exc}.")
    bad = np.flatnonzero(~np.isfinite(f))
    if bad.size:
        return Check("rhs", False, f"`rhs` returns non-finite values at out {_entries(bad)} "
                     f"({f[bad[0]]!r} first): a solve from here fails at once.")
    return Check("rhs", True, f"writes all {p.y.size} entries of out, within bounds, "
                 "finite, and leaves y alone.")


def _call_rhs(rhs, t, y, theta):
    out = np.empty(y.size)
    with np.errstate(all="ignore"):
        rhs(t, y, theta, out)
    return out


# --- the derivative kernels ---------------------------------------------------------
class _Outputs(NamedTuple):
    """How to call one derivative kernel: the shapes of its outputs, their
    names, and a function ``call(kernel, t, y, theta, a, outs)``."""
    shapes: tuple
    names: tuple
    call: object


def _outputs(name, p):
    n, k = p.y.size, p.theta.size
    if name == "vjp":
        return _Outputs(((n,), (k,)), ("out_y", "out_theta"),
                        lambda f, t, y, th, a, outs: f(t, y, th, a, *outs))
    shape = (n, n) if name == "jac" else (n, k)
    return _Outputs((shape,), ("out",), lambda f, t, y, th, a, outs: f(t, y, th, *outs))


def _structure_check(name, kernel, p, raised=False):
    """One interpreted call on copies of the inputs (compared afterwards) and
    outputs prefilled with NaN, then with a marker: bounds, writes into
    inputs, unwritten entries.
    Another exception of the kernel gives ``passed=raised``."""
    spec = _outputs(name, p)
    py = _python_kernel(kernel)
    originals = (p.y, p.theta, p.a)
    ins = [x.copy() for x in originals]
    unwritten = None
    for first, fill in ((True, np.nan), (False, _MARK)):
        outs = [np.full(s, fill) for s in spec.shapes]
        try:
            with np.errstate(all="ignore"):
                spec.call(py, p.t, *ins, outs)
        except IndexError as exc:
            return Check(name, False, _index_message(name, spec, p, exc))
        except Exception as exc:  # noqa: BLE001 - any exception is a finding
            return Check(name, raised, f"`{name}` raised {type(exc).__name__}: {exc}.")
        if changed_inputs(originals, ins):
            return Check(name, False, f"`{name}` writes into one of its inputs (y, theta"
                         + (", a" if name == "vjp" else "") + "); it must only write "
                         f"{' and '.join(spec.names)}.")
        now = [np.isnan(o) if first else o == _MARK for o in outs]
        unwritten = now if unwritten is None else [u & w for u, w in zip(unwritten, now)]
    parts = [f"{nm} {_entries(u)} ({int(u.sum())} of {u.size} entries)"
             for nm, u in zip(spec.names, unwritten) if u.any()]
    if parts:
        return Check(name, False, f"`{name}` never writes {' and '.join(parts)}: those "
                     "entries keep whatever the array held before the call (stale values, "
                     "or garbage), so every gradient built on them is wrong. Write every "
                     "entry, zeros included.")
    sizes = " and ".join(f"{nm} {s}" for nm, s in zip(spec.names, spec.shapes))
    return Check(name, True, f"writes every entry of {sizes}, within bounds, and leaves "
                 "its inputs alone.")


def _index_message(name, spec, p, exc):
    return (f"`{name}` indexes past the end of an array (IndexError: {exc}) when called "
            f"with y of {p.y.size} values, theta of {p.theta.size} values and "
            + " and ".join(f"{nm} of shape {s}" for nm, s in zip(spec.names, spec.shapes))
            + ": it reads more states or parameters than given, or writes more entries "
            "than its outputs have.")


def _values_check(name, kernel, rhs, p, rtol):
    """The compiled kernel's outputs against central differences of ``rhs``."""
    spec = _outputs(name, p)
    outs = [np.empty(s) for s in spec.shapes]
    try:
        with np.errstate(all="ignore"):
            ret = spec.call(kernel, p.t, p.y.copy(), p.theta.copy(), p.a.copy(), outs)
    except Exception as exc:  # noqa: BLE001 - any exception is a finding
        return Check(f"{name} values", False, f"`{name}` raised {type(exc).__name__}: {exc}.")
    if name == "vjp":
        got = {"out_y": outs[0], "out_theta": outs[1],
               "the return value a^T df/dt": np.array([ret], dtype=float)}
        want = {"out_y": _fd_vjp(rhs, p, "y"), "out_theta": _fd_vjp(rhs, p, "theta"),
                "the return value a^T df/dt": _fd_vjp(rhs, p, "t")}
    else:
        got = {"out": outs[0]}
        want = {"out": _fd_jacobian(rhs, p, "y" if name == "jac" else "theta")}
    problems = []
    for key in got:
        problems += _compare(key, np.asarray(got[key], dtype=float), want[key], rtol)
    if problems:
        return Check(f"{name} values", False, " ".join(problems[:4])
                     + (f" ({len(problems) - 4} more.)" if len(problems) > 4 else "")
                     + f" Recheck the derivatives in `{name}`.")
    what = ("out_y, out_theta and a^T df/dt" if name == "vjp" else
            "df/dy" if name == "jac" else "df/dtheta")
    return Check(f"{name} values", True, f"{what} agree with central differences of rhs "
                 f"(rtol={rtol:g}).")


def _fd_jacobian(rhs, p, wrt):
    """Central differences of ``rhs`` in ``wrt`` ('y', 'theta' or 't'):
    ``(J, err)``, ``J[i, j] = df_i/dx_j`` and ``err`` an estimate of its
    error (the difference from a step twice as long, plus the rounding of
    the difference quotient), shape of ``J``."""
    x = {"y": p.y, "theta": p.theta, "t": np.array([p.t])}[wrt]
    J = np.empty((p.y.size, x.size))
    err = np.empty_like(J)

    def f(xx):
        args = {"y": p.y, "theta": p.theta, "t": p.t}
        args[wrt] = xx[0] if wrt == "t" else xx
        return _call_rhs(rhs, args["t"], args["y"], args["theta"])

    for j in range(x.size):
        h = np.finfo(float).eps ** (1 / 3) * max(1.0, abs(x[j]))
        d = []
        for step in (h, 2 * h):
            xp, xm = x.copy(), x.copy()
            xp[j] += step
            xm[j] -= step
            fp, fm = f(xp), f(xm)
            d.append((fp - fm) / (xp[j] - xm[j]))
            if step == h:
                rounding = _EPS * np.maximum(np.abs(fp), np.abs(fm)) / (xp[j] - xm[j])
        J[:, j] = d[0]
        err[:, j] = np.abs(d[1] - d[0]) + 4.0 * rounding
    return J, err


def _fd_vjp(rhs, p, wrt):
    """``a^T df/dx`` by central differences, its error estimate, and the
    size of each entry before cancellation, ``|a|^T |df/dx|``."""
    J, err = _fd_jacobian(rhs, p, wrt)
    return p.a @ J, np.abs(p.a) @ err, np.abs(p.a) @ np.abs(J)


def _compare(name, got, want_err, rtol):
    """Sentences for the entries of ``got`` that differ from the differences
    ``want_err = (want, err[, size])`` by more than ``rtol`` of the entry's
    own size plus ten times the differences' error estimate.

    Each entry is judged on its own scale: ``|want|``, or for a VJP the sum
    ``|a|^T |df/dx|`` its terms would give without cancelling.  (Scaled by
    the largest entry of the output, an entry a million times smaller, such
    as a rate constant's derivative next to another's, could have any sign.)"""
    want, err = (np.reshape(x, got.shape) for x in want_err[:2])
    size = np.reshape(want_err[2], got.shape) if len(want_err) > 2 else np.abs(want)
    finite = np.isfinite(got)
    tol = rtol * np.maximum(size, np.abs(want)) + 10.0 * err
    out = []
    for idx in np.argwhere(~finite | (np.abs(got - want) > tol)):
        i = tuple(int(k) for k in idx)
        at = name if name.startswith("the return") else f"{name}[{', '.join(map(str, i))}]"
        g, w = float(got[i]), float(want[i])
        note = ""
        if abs(g + w) <= tol[i] < abs(w):
            note = " (opposite sign)"
        elif abs(g) < 1e-200 < abs(w) or abs(g) > 1e100 * max(abs(w), 1.0):
            note = " (an uninitialised value?)"
        out.append(f"{at} = {g:.6g} but central differences of rhs give {w:.6g}{note}.")
    return out


def _entries(mask_or_idx, shown=6):
    """``'[0], [2]'`` or ``'[0, 1], [1, 1]'``: the entries of a boolean mask
    (or of a list of flat indices), the first ``shown`` of them."""
    a = np.asarray(mask_or_idx)
    idx = np.argwhere(a) if a.dtype == bool else a.reshape(-1, 1)
    text = ", ".join("[" + ", ".join(str(int(k)) for k in i) + "]" for i in idx[:shown])
    return text + (", ..." if len(idx) > shown else "")
