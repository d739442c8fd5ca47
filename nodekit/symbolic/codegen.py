"""Kernel generation for :class:`ODESystem`: SymPy -> Python source -> Numba.

The generated module holds four ``@numba.njit(cache=True)`` kernels, ``rhs``,
``vjp``, ``jac_y`` and ``jac_theta``, written as straight-line scalar code
(``out[0] = theta[0]*y[0] - ...``) after common-subexpression elimination.
It lives in a cache folder under a name derived from a hash of the system, so
a later process imports it (and Numba's cached machine code) without
differentiating or compiling anything.
"""
import hashlib
import importlib.util
import json
import os
import sys
import tempfile

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from ..ode import ODE

#: Bump when the generated source (or how it is compiled) changes for the same system.
GENERATOR_VERSION = "2"

_END = "# end of nodekit.symbolic module "


def default_cache_dir():
    """The folder for generated modules.

    Returns
    -------
    str
        ``$NODEKIT_CACHE`` if set, else ``$XDG_CACHE_HOME/nodekit/symbolic``,
        else ``~/.cache/nodekit/symbolic``.
    """
    env = os.environ.get("NODEKIT_CACHE")
    if env:
        return os.path.abspath(os.path.expanduser(env))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "nodekit", "symbolic")


def system_key(system):
    """Hex digest naming the generated module of ``system``.

    A hash of the expressions (``srepr``, which includes symbol names and
    assumptions), the order of time, states and parameters, the generator
    version and the SymPy version (whose printer and ``cse`` shape the code).
    """
    payload = json.dumps({
        "generator": GENERATOR_VERSION, "sympy": sp.__version__,
        "t": sp.srepr(system.t), "states": [sp.srepr(s) for s in system.states],
        "params": [sp.srepr(s) for s in system.params],
        "rhs": [sp.srepr(e) for e in system.rhs]}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


# --- printing -------------------------------------------------------------------
class KernelPrinter(PythonCodePrinter):
    """``PythonCodePrinter`` (``math.*`` calls, which Numba compiles) that
    prints the system's symbols as array entries (``y[0]``, ``theta[1]``)."""

    def __init__(self, names):
        settings = {"fully_qualified_modules": True}
        if "strict" in PythonCodePrinter._default_settings:
            settings["strict"] = True
        super().__init__(settings)
        self._names = names

    def _print_Symbol(self, expr):
        name = self._names.get(expr)
        return name if name is not None else super()._print_Symbol(expr)

    _print_Dummy = _print_Symbol


def _doprint(printer, expr, what):
    try:
        text = printer.doprint(expr)
    except Exception as exc:  # PrintMethodNotImplementedError (SymPy >= 1.13) and friends
        raise ValueError(f"{what}: {expr} cannot be written as Numba-compatible Python "
                         f"code ({exc}). Use functions of the `math` module (sin, exp, "
                         "sqrt, Abs, Piecewise, ...).") from None
    missing = getattr(printer, "_not_supported", None)
    if missing:
        raise ValueError(f"{what}: {expr} uses {', '.join(map(str, missing))}, which the "
                         "code printer cannot write as Numba-compatible Python code.")
    return text


def _prepare(expr):
    """Make ``expr`` printable as float code: Dirac deltas (derivatives of
    Heaviside/sign) are 0, an incomplete Piecewise is NaN outside its cases."""
    expr = expr.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.S.Zero)
    return expr.replace(
        lambda e: isinstance(e, sp.Piecewise) and e.args[-1].cond != sp.true,
        lambda e: sp.Piecewise(*e.args, (sp.S.NaN, True)))


def _block(targets, exprs, printer, what, indent="    "):
    """Straight-line code assigning ``exprs`` to ``targets`` after CSE."""
    exprs = [_prepare(sp.sympify(e)) for e in exprs]
    repl, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("_c"), order="canonical")
    lines = [f"{indent}{printer.doprint(s)} = {_doprint(printer, e, what)}" for s, e in repl]
    for target, e in zip(targets, reduced):
        text = _doprint(printer, e, what)
        if e.is_Number and e.is_finite:
            text = repr(float(e))
        lines.append(f"{indent}{target} = {text}" if target else f"{indent}return {text}")
    return lines


def generate_source(system, key):
    """The Python source of the kernel module of ``system``.

    Parameters
    ----------
    system : ODESystem
    key : str
        From :func:`system_key`; recorded in the module.

    Returns
    -------
    str
    """
    n, p = system.n_states, system.n_params
    # Differentiate with real symbols: d|x|/dx = sign(x), not re/im terms.
    t = sp.Dummy("t", real=True)
    ys = [sp.Dummy(f"y{i}", real=True) for i in range(n)]
    ths = [sp.Dummy(f"theta{k}", real=True) for k in range(p)]
    adj = [sp.Dummy(f"a{i}", real=True) for i in range(n)]
    sub = dict(zip((system.t,) + system.states + system.params, [t] + ys + ths))
    f = sp.Matrix([e.xreplace(sub) for e in system.rhs])
    names = {t: "t"}
    names.update({s: f"y[{i}]" for i, s in enumerate(ys)})
    names.update({s: f"theta[{k}]" for k, s in enumerate(ths)})
    names.update({s: f"a[{i}]" for i, s in enumerate(adj)})
    printer = KernelPrinter(names)

    J = f.jacobian(ys)
    Jth = f.jacobian(ths) if p else sp.zeros(n, 0)
    ft = f.diff(t)
    a = sp.Matrix(adj)
    aJ = [(a.T * J[:, j])[0] for j in range(n)]
    aJth = [(a.T * Jth[:, k])[0] for k in range(p)]
    aft = (a.T * ft)[0]

    def sym_list(prefix, syms):
        return ", ".join(f"{prefix}[{i}] = {s}" for i, s in enumerate(syms)) or "(none)"

    head = [
        '"""Kernels generated by nodekit.symbolic; do not edit (regenerated on change)."""',
        f"# generator version {GENERATOR_VERSION}, sympy {sp.__version__}, key {key}",
        f"# time: t = {system.t}",
        f"# states: {sym_list('y', system.states)}",
        f"# params: {sym_list('theta', system.params)}",
    ]
    head += [f"# d{s}/dt = {e}" for s, e in zip(system.states, system.rhs)]
    head += ["import math", "", "import numba", "", ""]
    deco = '@numba.njit(cache=True, error_model="numpy")'
    body = [deco, "def rhs(t, y, theta, out):",
            '    """dy/dt into out, shape (n,)."""']
    body += _block([f"out[{i}]" for i in range(n)], list(f), printer, "rhs")
    body += ["", "", deco, "def vjp(t, y, theta, a, out_y, out_theta):",
             '    """out_y = a^T df/dy, out_theta = a^T df/dtheta; returns a^T df/dt."""']
    body += _block([f"out_y[{j}]" for j in range(n)] + [f"out_theta[{k}]" for k in range(p)]
                   + [None], aJ + aJth + [aft], printer, "vjp")
    body += ["", "", deco, "def jac_y(t, y, theta, out):",
             '    """df/dy into out, shape (n, n)."""']
    body += _block([f"out[{i}, {j}]" for i in range(n) for j in range(n)],
                   [J[i, j] for i in range(n) for j in range(n)], printer, "jac_y")
    body += ["", "", deco, "def jac_theta(t, y, theta, out):",
             '    """df/dtheta into out, shape (n, p)."""']
    if p:
        body += _block([f"out[{i}, {k}]" for i in range(n) for k in range(p)],
                       [Jth[i, k] for i in range(n) for k in range(p)], printer, "jac_theta")
    else:
        body += ["    return"]
    return "\n".join(head + body) + f"\n\n\n{_END}{key}\n"


# --- the cache --------------------------------------------------------------------
def _valid(path, key):
    try:
        with open(path) as fh:
            text = fh.read()
    except OSError:
        return False
    return text.endswith(f"{_END}{key}\n")


def _write_atomic(path, source, key):
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(source)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        if _valid(path, key):  # another process won the race: keep its file (and mtime)
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def module_path(system, cache_dir=None):
    """Path of the generated module of ``system`` (it may not exist yet).

    Parameters
    ----------
    system : ODESystem
    cache_dir : str or os.PathLike, optional
        Default :func:`default_cache_dir`.

    Returns
    -------
    str
    """
    folder = os.path.abspath(os.fspath(cache_dir)) if cache_dir is not None \
        else default_cache_dir()
    return os.path.join(folder, f"nk_sym_{system_key(system)}.py")


def _import(path, modname):
    mod = sys.modules.get(modname)
    if mod is not None and getattr(mod, "__file__", None) == path:
        return mod
    spec = importlib.util.spec_from_file_location(modname, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(modname, None)
        raise
    return mod


class SymbolicODE(ODE):
    """An ``nk.ODE`` whose kernels were generated from an :class:`ODESystem`.

    Used exactly like any ``nk.ODE`` (``nk.solve``, ``nk.odeint``).

    Attributes
    ----------
    rhs, vjp : numba-jitted functions
        The generated kernels (see :class:`nodekit.ODE`).
    jac_y : numba-jitted function
        ``jac_y(t, y, theta, out)`` writes ``df/dy`` into ``out``, a
        float64 array of shape (n, n).
    jac_theta : numba-jitted function
        ``jac_theta(t, y, theta, out)`` writes ``df/dtheta`` into ``out``,
        shape (n, p).
    system : ODESystem
        The system the kernels were generated from.
    source_path : str
        The generated module.
    key : str
        The hash naming it.
    """


_ODES = {}


def compile_system(system, cache_dir=None):
    """Generate (or find in the cache) and load the kernels of ``system``.

    See :meth:`ODESystem.compile`.
    """
    if cache_dir is not None and not isinstance(cache_dir, (str, bytes, os.PathLike)):
        raise TypeError(f"`cache_dir` must be a path (str or os.PathLike); got "
                        f"{type(cache_dir).__name__} {cache_dir!r}.")
    key = system_key(system)
    path = module_path(system, cache_dir)
    memo = (path, system.name)
    if memo in _ODES:
        return _ODES[memo]
    if not _valid(path, key):
        source = generate_source(system, key)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            _write_atomic(path, source, key)
        except OSError as exc:
            raise OSError(f"nodekit.symbolic could not write the generated module {path!r} "
                          f"({exc}). Pass a writable folder as compile(cache_dir=...) or "
                          "set the NODEKIT_CACHE environment variable.") from exc
    mod = _import(path, f"nk_sym_{key}")
    ode = SymbolicODE(mod.rhs, mod.vjp, name=system.name or f"symbolic_{key[:8]}")
    ode.jac_y = mod.jac_y
    ode.jac_theta = mod.jac_theta
    ode.system = system
    ode.source_path = path
    ode.key = key
    _ODES[memo] = ode
    return ode
