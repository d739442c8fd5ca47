"""``nk.ODE``: a right-hand side given as compiled Numba kernels."""
import hashlib
import importlib
import inspect
import math
import numbers
import os
import sys
import types
from functools import cached_property

import numba as nb
import numpy as np
from numba import types as nbt
from numba.core.caching import FunctionCache
from numba.core.ccallback import CFunc
from numba.core.errors import TypingError
from numba.core.registry import CPUDispatcher
from numba.extending import intrinsic, overload

from . import _cachelock
from ._kernel_type import as_kernel

_V = nbt.float64[::1]
#: Signature of a user's ``rhs(t, y, theta, out)`` kernel given as a prebuilt cfunc.
RHS_SIG = nbt.void(nbt.float64, _V, _V, _V)
#: Signature of a user's ``vjp(t, y, theta, a, out_y, out_theta) -> a.df/dt``.
VJP_SIG = nbt.float64(nbt.float64, _V, _V, _V, _V, _V)
#: Signatures of the guarded kernels the loop calls: they return a fault code.
RHS_GUARDED_SIG = nbt.int64(nbt.float64, _V, _V, _V)
VJP_GUARDED_SIG = nbt.int64(nbt.float64, _V, _V, _V, _V, _V)
#: Signature of the guarded ``jac(t, y, theta, out)``, ``out`` of shape (n, n).
JAC_GUARDED_SIG = nbt.int64(nbt.float64, _V, _V, nbt.float64[:, ::1])

#: Fault codes a guarded kernel returns when the kernel raised: which kernel.
RHS_FAULT = 1
VJP_FAULT = 2
JAC_FAULT = 3
EVENT_FAULT = 4


def _arity(fn):
    try:
        return len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return None


def _check_kernel(fn, name, arity, signature_text, sig):
    if isinstance(fn, CFunc):
        got = fn._sig
        if len(got.args) != len(sig.args) or any(
                a != b for a, b in zip(got.args, sig.args)):
            raise TypeError(
                f"`{name}` is a prebuilt numba.cfunc of signature {got}; nk.ODE needs "
                f"{signature_text} with the signature {sig} (float64 time, 1-D "
                "contiguous float64 arrays). Pass the @numba.njit function instead and "
                "nk.ODE compiles it.")
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


def _raised(typingctx, kernel, args):
    """Typing and code of :func:`_raised4`/:func:`_raised6`: call the jitted
    ``kernel`` on ``args`` through Numba's native calling convention and
    return 1 when it raised, 0 otherwise."""
    if not isinstance(kernel, nbt.Dispatcher):
        return None
    inner = typingctx.resolve_function_type(kernel, args, {})
    if inner is None:
        return None

    def codegen(context, builder, sig, llargs):
        cres = kernel.dispatcher.get_compile_result(inner)
        context.add_linking_libs([cres.library])
        status, _ = context.call_internal_no_propagate(
            builder, cres.fndesc, cres.signature, llargs[1:])
        one = context.get_constant(nbt.int64, 1)
        zero = context.get_constant(nbt.int64, 0)
        return builder.select(status.is_error, one, zero)
    return nbt.int64(kernel, *args), codegen


@intrinsic
def _native_raised4(typingctx, kernel, a, b, c, d):
    return _raised(typingctx, kernel, (a, b, c, d))


@intrinsic
def _native_raised6(typingctx, kernel, a, b, c, d, e, f):
    return _raised(typingctx, kernel, (a, b, c, d, e, f))


def _raised4(kernel, a, b, c, d):
    """1 when ``kernel(a, b, c, d)`` raised, else 0 (compiled: see :func:`_raised`)."""
    try:
        kernel(a, b, c, d)
    except Exception:  # noqa: BLE001 - any exception fails the solve
        return 1
    return 0


def _raised6(kernel, a, b, c, d, e, f):
    """1 when ``kernel(a, ..., f)`` raised, else 0 (compiled: see :func:`_raised`)."""
    try:
        kernel(a, b, c, d, e, f)
    except Exception:  # noqa: BLE001 - any exception fails the solve
        return 1
    return 0


@overload(_raised4)
def _overload_raised4(kernel, a, b, c, d):
    return lambda kernel, a, b, c, d: _native_raised4(kernel, a, b, c, d)


@overload(_raised6)
def _overload_raised6(kernel, a, b, c, d, e, f):
    return lambda kernel, a, b, c, d, e, f: _native_raised6(kernel, a, b, c, d, e, f)


# The guarded kernels: compiled wrappers that report whatever the kernel
# raises (a ``numba.cfunc`` cannot pass an exception to its caller: Numba
# prints it as "Exception ignored" and returns garbage) as a fault code,
# which the loop turns into a failed solve.  The wrapper reads the status of
# Numba's native call directly (:func:`_raised4`) instead of a try/except
# block: Numba keeps the reference-count updates of the arrays inside a try
# block (six atomic operations, about 50 ns a call), while a plain call lets
# them be pruned, so the guard costs nothing on the normal path.  ``kernel``
# is a global of each wrapper's own copy of the function; ``key`` (in the
# closure, so in Numba's cache index) identifies the kernel's source, so that
# each kernel gets its own cache entry and an edited kernel is recompiled.
def _rhs_template(key):
    def guarded_rhs(t, y, theta, out):
        if key == 0:
            return 0
        return _raised4(kernel, t, y, theta, out)  # noqa: F821 - a global of the copy
    return guarded_rhs


def _vjp_template(key):
    def guarded_vjp(t, y, theta, a, out_y, out_theta):
        if key == 0:
            return 0
        return 2 * _raised6(kernel, t, y, theta, a, out_y, out_theta)  # noqa: F821
    return guarded_vjp


def _jac_template(key):
    def guarded_jac(t, y, theta, out):
        if key == 0:
            return 0
        return 3 * _raised4(kernel, t, y, theta, out)  # noqa: F821 - a global of the copy
    return guarded_jac


# A prebuilt ``numba.cfunc`` kernel cannot raise to its caller (Numba prints
# and drops its exceptions): it is called as is.
def _cfunc_template(key):
    def guarded_cfunc(t, y, theta, out):
        if key == 0:
            return 0
        kernel(t, y, theta, out)  # noqa: F821 - a global of the copy
        return 0
    return guarded_cfunc


def _cfunc_vjp_template(key):
    def guarded_cfunc_vjp(t, y, theta, a, out_y, out_theta):
        if key == 0:
            return 0
        kernel(t, y, theta, a, out_y, out_theta)  # noqa: F821 - a global of the copy
        return 0
    return guarded_cfunc_vjp


def _event_template(key):
    def guarded_event(t, y, theta, out):
        if key == 0:
            return 0
        return 4 * _raised4(kernel, t, y, theta, out)  # noqa: F821 - a global of the copy
    return guarded_event


_TEMPLATES = {"rhs": (_rhs_template, RHS_GUARDED_SIG),
              "vjp": (_vjp_template, VJP_GUARDED_SIG),
              "jac": (_jac_template, JAC_GUARDED_SIG),
              "event": (_event_template, RHS_GUARDED_SIG)}


def _source_key(py_func, options):
    """A stable integer naming a kernel's source as Numba's own cache does
    (file, its size and modification time, the function's name and line),
    or ``None`` when the kernel has no source file to key on."""
    code = py_func.__code__
    try:
        st = os.stat(code.co_filename)
    except OSError:
        return None
    text = repr((code.co_filename, st.st_mtime_ns, st.st_size, py_func.__qualname__,
                 code.co_firstlineno, sorted(options.items(), key=str)))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:7], "little") | 1


def _kernel_options(fn):
    """The options of jitted ``fn`` that its wrappers keep: ``fastmath`` and
    ``boundscheck``."""
    return {k: v for k, v in fn.targetoptions.items() if k in ("fastmath", "boundscheck")}


def _inner_kernel(fn, debug):
    """The kernel as the guarded wrapper calls it: Numba-compiled with NumPy's
    error model (``1/0`` gives ``inf``, which fails the solve with status -1),
    keeping the kernel's ``fastmath`` and ``boundscheck`` (forced on by
    ``debug``)."""
    if isinstance(fn, CFunc):
        return fn, {}
    opts = _kernel_options(fn)
    if debug:
        opts["boundscheck"] = True
    opts["error_model"] = "numpy"
    return nb.njit(**opts)(fn.py_func), opts


#: The guarded wrappers built in this process, by (kernel, role, debug): a new
#: ``nk.ODE`` of the same kernels (one unpickled in every Dask task, say)
#: reuses them instead of loading them from the disk cache again (~15 ms each).
_GUARDED = {}


def _cfunc(fn, role, debug=False):
    """The guarded first-class compiled function (cached on disk, and per
    process per kernel) for kernel ``fn``.

    ``role`` is ``"rhs"``, ``"vjp"`` or ``"jac"``.  The result carries
    ``nodekit_source = (role, name, inner)``: ``inner`` is the compiled kernel
    it calls, which :func:`nodekit.integrate.kernel_fault_message` re-runs to
    recover the exception of a failed solve.
    """
    key = (fn, role, bool(debug))
    cf = _GUARDED.get(key)
    if cf is None:
        cf = _GUARDED[key] = _build_cfunc(fn, role, debug)
    return cf


def _build_cfunc(fn, role, debug):
    template, sig = _TEMPLATES[role]
    inner, opts = _inner_kernel(fn, debug)
    if isinstance(fn, CFunc):
        template = _cfunc_vjp_template if role == "vjp" else _cfunc_template
    py_func = fn._pyfunc if isinstance(fn, CFunc) else fn.py_func
    return _guard(template, sig, inner, py_func, _source_key(py_func, opts), role)


def _guard(template, sig, inner, py_func, key, role):
    """Compile ``template``'s wrapper around ``inner`` as a cfunc of ``sig``,
    cached on disk under ``key`` (``None``: not cached)."""
    proto = template(key or 1)
    wrapper = types.FunctionType(proto.__code__, {"kernel": inner, "_raised4": _raised4,
                                                  "_raised6": _raised6}, proto.__name__,
                                 None, proto.__closure__)
    wrapper.__qualname__ = proto.__qualname__
    wrapper.__module__ = proto.__module__
    try:
        with _compile_lock(wrapper, key):
            cf = nb.cfunc(sig, cache=key is not None)(wrapper)
    except TypingError as exc:  # numba typing errors are long; lead with ours
        raise TypeError(
            f"`{role}` kernel {py_func.__name__} could not be compiled for the "
            f"arguments {sig.args} (float64 time, 1-D contiguous float64 arrays). "
            f"Numba said:\n{exc}") from exc
    except Exception:  # noqa: BLE001
        # globals that cannot be pickled for the cache index: no disk cache
        cf = nb.cfunc(sig, cache=False)(wrapper)
    cf.nodekit_source = (role, py_func.__name__, inner)
    return as_kernel(cf)


def _events_adapter(gs):
    """One function evaluating every event of ``gs`` (jitted ``g(t, y,
    theta) -> float``): ``out[i] = gs[i](t, y, theta)``.  Built by nesting,
    one event per level, so that it is a plain Numba function for any
    number of events."""
    last, i = gs[-1], len(gs) - 1
    if i == 0:
        def event_values(t, y, theta, out):
            out[0] = last(t, y, theta)
        return event_values
    head = nb.njit(error_model="numpy")(_events_adapter(gs[:-1]))

    def event_values(t, y, theta, out):
        head(t, y, theta, out)
        out[i] = last(t, y, theta)
    return event_values


_EVENT_KERNELS = {}


def _compile_event(g):
    """Compile the jitted event function ``g`` for the loop's arguments."""
    try:
        g.compile((nbt.float64, _V, _V))
    except TypingError as exc:
        raise TypeError(
            f"event function {g.py_func.__name__} could not be compiled for the arguments "
            "(t, y, theta) = (float64, 1-D contiguous float64 array, 1-D contiguous float64 "
            f"array). Numba said:\n{exc}") from exc


def events_cfunc(gs):
    """The guarded first-class kernel of the jitted event functions ``gs``
    (a sequence of ``g(t, y, theta) -> float``): ``kernel(t, y, theta, out)``
    writes ``g_i`` into ``out[i]`` for every ``i`` and returns
    ``EVENT_FAULT`` when one raised.

    One kernel of the right-hand side's signature for any number of events
    keeps the compiled loop's type independent of that number (a tuple of
    kernels would make every count a new type: a new compile of the whole
    loop).  Cached on disk per sources of ``gs``, and per process per
    ``gs``; ``kernel.nodekit_events`` holds ``gs`` (a fault message re-runs
    them one by one to name the one that raised).
    """
    gs = tuple(gs)
    cf = _EVENT_KERNELS.get(gs)
    if cf is None:
        keys = [_source_key(g.py_func, dict(_kernel_options(g), role="event")) for g in gs]
        key = None
        if None not in keys:
            digest = hashlib.sha256(repr(keys).encode()).digest()
            key = int.from_bytes(digest[:7], "little") | 1
        inner = nb.njit(error_model="numpy")(_events_adapter(gs))
        try:
            cf = _guard(_event_template, RHS_GUARDED_SIG, inner, gs[0].py_func, key, "event")
        except TypeError:
            for g in gs:  # one by one: name the event that does not compile
                _compile_event(g)
            raise
        cf.nodekit_events = gs
        _EVENT_KERNELS[gs] = cf
    return cf


def _compile_lock(wrapper, key):
    """One process at a time compiles the guarded wrapper of cache key
    ``key`` (the others wait, then load it from the cache; see
    :func:`nodekit._cachelock.exclusive`).  The wrappers are cfuncs, which
    do not go through ``Dispatcher.compile`` and its package-wide compile
    lock, and every one is the same function of this file to Numba's cache,
    told apart by ``key`` only: the lock is named after ``key``."""
    path = None
    if key is not None and _cachelock.fcntl is not None:
        try:
            path = os.path.join(FunctionCache(wrapper)._cache_path,
                                f"compiling-guarded-{key:x}.lock")
        except RuntimeError:  # no usable cache folder
            pass
    return _cachelock.exclusive(path)


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
    jac : numba-jitted function, optional
        ``jac(t, y, theta, out)`` writes the Jacobian ``df/dy`` into the 2-D
        C-contiguous ``out`` of shape ``(n, n)`` (``out[i, j] = df_i/dy_j``).
        Used by the stiff methods (``method="rodas5"``), which otherwise take
        forward differences of ``rhs``.
    n_states, n_theta : int, optional
        The sizes of ``y`` and ``theta`` the kernels expect.  When given,
        ``nk.solve`` and ``nk.odeint`` reject other sizes on entry with a
        message naming them.  A kernel that loops over ``y.size`` (and
        therefore accepts any batch) leaves ``n_states`` unset; a declared
        ``n_states`` means exactly that many values, so a batch ``(B, d)``
        for a ``d``-state kernel is an error.
    name : str, optional
        Shown in messages and reprs.
    debug : bool, default False
        Compile the kernels with bounds checking: an index past the end of an
        array then fails the solve (status -4, ``IndexError``) instead of
        reading or writing past the array.

    Raises
    ------
    TypeError
        If a kernel is not Numba-jitted or takes the wrong number of arguments.
    ValueError
        If ``n_states`` or ``n_theta`` is not a positive (non-negative)
        integer.

    Notes
    -----
    Each kernel is compiled once more inside a ``numba.cfunc`` wrapper of a
    fixed signature (keeping its ``fastmath`` and ``boundscheck`` options,
    with NumPy's error model so that ``1/0`` gives ``inf`` and fails the
    solve), cached on disk.  The wrapper catches any exception the kernel
    raises and returns a fault code, so that the solve stops with status -4
    and a message naming the kernel and the exception, instead of Numba
    printing "Exception ignored" and the solve carrying on.  The solver loop
    receives the wrappers as first-class functions, so the loop itself is
    compiled once for all ODEs and loaded from Numba's cache by every later
    process.  Define kernels at module level in a file (not in a notebook
    cell or a closure) so that Numba can cache them.

    The first solve with each pair of sizes of ``y`` and ``theta`` runs
    ``rhs`` once interpreted, in a checked mode (:meth:`check_first_call`):
    reads or writes past an array, writes into ``y`` and entries of ``out``
    left unwritten are reported before the compiled solve starts.  An
    ``ODE`` pickles by reference to its kernels' module and name.

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

    def __init__(self, rhs, vjp=None, jac=None, *, n_states=None, n_theta=None,
                 name=None, debug=False):
        _check_kernel(rhs, "rhs", 4, "(t, y, theta, out)", RHS_SIG)
        if vjp is not None:
            _check_kernel(vjp, "vjp", 6, "(t, y, theta, a, out_y, out_theta)", VJP_SIG)
        if jac is not None:
            _check_kernel(jac, "jac", 4, "(t, y, theta, out)", RHS_SIG)
        self.rhs = rhs
        self.vjp = vjp
        self.jac = jac
        self.n_states = _size_or_none(n_states, "n_states")
        self.n_theta = _size_or_none(n_theta, "n_theta", allow_zero=True)
        self.debug = bool(debug)
        self.name = name or _python_kernel(rhs).__name__
        self._checked = set()

    @cached_property
    def rhs_cfunc(self):
        """The ``rhs`` kernel as a cached first-class compiled function."""
        return _cfunc(self.rhs, "rhs", self.debug)

    @cached_property
    def vjp_cfunc(self):
        """The ``vjp`` kernel as a first-class function (a stub if absent)."""
        if self.vjp is None:
            return _no_vjp()
        return _cfunc(self.vjp, "vjp", self.debug)

    @cached_property
    def jac_cfunc(self):
        """The ``jac`` kernel as a first-class function, or ``None`` if absent."""
        if self.jac is None:
            return None
        return _cfunc(self.jac, "jac", self.debug)

    def check_sizes(self, y0, theta):
        """Check the validated ``y0`` and flat ``theta`` against the declared
        ``n_states`` and ``n_theta``; called by ``nk.solve`` and ``nk.odeint``
        before any kernel runs (ODEs that know their sizes otherwise override
        it).

        Raises
        ------
        ValueError
            Naming the argument, the declared size and the size received.
        """
        shape, n_theta = y0.shape, theta.size
        n = math.prod(shape)
        if self.n_states is not None and n != self.n_states:
            batch = (" A batch of states must be one flat state of the declared "
                     "size: this kernel does not declare batch support.") \
                if n % self.n_states == 0 else ""
            raise ValueError(
                f"`y0` must have {self.n_states} values for {self.name} (n_states="
                f"{self.n_states}); got shape {tuple(shape)} ({n} values).{batch}")
        if self.n_theta is not None and n_theta != self.n_theta:
            raise ValueError(
                f"`theta` must have {self.n_theta} values for {self.name} (n_theta="
                f"{self.n_theta}); got {n_theta} values."
                + (" Pass theta=..." if n_theta == 0 else ""))

    def check_first_call(self, t, y, theta, shape=None):
        """Run ``rhs`` once, interpreted, on ``(t, y, theta)`` (flat float64
        arrays) and check what it reads and writes; once per process for each
        pair of sizes.

        The interpreted run indexes its arrays with Python's bounds checks
        (reading ``theta`` or ``y`` past the end, or writing ``out`` past the
        end, raises ``IndexError`` instead of touching memory), gets a copy
        of ``y`` compared afterwards (a kernel must not modify its state),
        and starts from an ``out`` filled with NaN and then with another
        marker value, so that entries the kernel never writes are found.

        Raises
        ------
        ValueError
            Describing the mismatch and what to try.
        """
        key = (y.size, theta.size)
        if key in self._checked:
            return
        _check_call(_python_kernel(self.rhs), "rhs", self.name, t, y, theta,
                    y.shape if shape is None else shape)
        self._checked.add(key)

    def __getstate__(self):
        # compiled wrappers do not pickle: keep the kernels (by module and
        # name where they can be imported again) and rebuild on first use
        state = {k: v for k, v in self.__dict__.items()
                 if k not in ("rhs_cfunc", "vjp_cfunc", "jac_cfunc", "_checked")}
        for k in ("rhs", "vjp", "jac"):
            state[k] = _KernelRef.of(state.get(k))
        return state

    def __setstate__(self, state):
        for k in ("rhs", "vjp", "jac"):
            ref = state.get(k)
            if isinstance(ref, _KernelRef):
                state[k] = ref.resolve()
        self.__dict__.update(state)
        self._checked = set()

    def __repr__(self):
        return f"nk.ODE({self.name}, vjp={'yes' if self.vjp is not None else 'no'})"


class _KernelRef:
    """A kernel pickled by reference: its module and qualified name."""

    def __init__(self, module, qualname):
        self.module, self.qualname = module, qualname

    @classmethod
    def of(cls, kernel):
        if kernel is None:
            return None
        py = _python_kernel(kernel)
        mod = sys.modules.get(getattr(py, "__module__", None) or "")
        obj = mod
        for part in py.__qualname__.split("."):
            obj = getattr(obj, part, None)
        if obj is kernel:
            return cls(py.__module__, py.__qualname__)
        return kernel  # not reachable by name: Numba's own pickling (by value)

    def resolve(self):
        obj = importlib.import_module(self.module)
        for part in self.qualname.split("."):
            obj = getattr(obj, part)
        return obj


def _python_kernel(fn):
    return fn._pyfunc if isinstance(fn, CFunc) else fn.py_func


def _size_or_none(x, name, allow_zero=False):
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, numbers.Integral) or x < (0 if allow_zero else 1):
        what = "a non-negative" if allow_zero else "a positive"
        raise ValueError(f"`{name}` must be None or {what} integer; got {name}={x!r}.")
    return int(x)


_MARK = -7.7e307  # a value no kernel writes by chance


def changed_inputs(originals, passed):
    """Whether a kernel wrote into any of the arrays ``passed`` (copies of
    ``originals``, compared byte for byte, NaN included).

    The checked calls hand kernels writable copies of their inputs and
    compare afterwards, rather than read-only arrays: a compiled helper the
    kernel calls would be compiled again for read-only arrays (a second
    machine-code copy, a second or more on a first run), and a write in it
    would fail to compile instead of being reported.
    """
    return any(a.tobytes() != b.tobytes() for a, b in zip(originals, passed))


def _check_call(py_kernel, role, name, t, y, theta, shape):
    """One interpreted call of ``py_kernel(t, y, theta, out)``: see
    :meth:`ODE.check_first_call`."""
    n, p = y.size, theta.size
    sizes = (f"y of {n} values (y0.shape={tuple(shape)}) and theta of {p} values")
    y_in = y.copy()
    written = None
    for fill in (np.nan, _MARK):
        out = np.full(n, fill)
        try:
            with np.errstate(all="ignore"):
                py_kernel(t, y_in, theta.copy(), out)
        except IndexError as exc:
            raise ValueError(
                f"The `{role}` kernel {name!r} indexes past the end of an array when "
                f"called with {sizes} (IndexError: {exc}): it reads more parameters or "
                "states than given, or writes more derivatives than the state has. "
                "Pass y0 and theta of the sizes the kernel expects (declare them with "
                "nk.ODE(..., n_states=, n_theta=) to have them checked by name).") from None
        except Exception:  # noqa: BLE001
            return  # the compiled solve reports the kernel's exception
        if changed_inputs((y,), (y_in,)):
            raise ValueError(
                f"The `{role}` kernel {name!r} writes into its input `y`; it must "
                "only write `out` (the solver's state would be corrupted).")
        unwritten = np.isnan(out) if written is None else (out == _MARK) & written
        written = unwritten
        if not unwritten.any():
            return
    idx = np.flatnonzero(written)
    shown = ", ".join(map(str, idx[:8])) + (", ..." if idx.size > 8 else "")
    raise ValueError(
        f"The `{role}` kernel {name!r} never writes out[{shown}] ({idx.size} of {n} "
        f"entries) when called with {sizes}; those derivatives would keep stale "
        "values. A compiled kernel sees the state flat: give y0 with as many values "
        "as the kernel writes (declare n_states in nk.ODE), or write every entry.")


_NO_VJP = []


def _no_vjp():
    """A placeholder VJP of the right signature for forward-only solves."""
    if not _NO_VJP:
        _NO_VJP.append(as_kernel(nb.cfunc(VJP_GUARDED_SIG, cache=True)(_no_vjp_kernel)))
    return _NO_VJP[0]


def _no_vjp_kernel(t, y, theta, a, out_y, out_theta):  # pragma: no cover - compiled
    return 0
