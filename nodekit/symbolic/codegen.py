"""Kernel generation for :class:`ODESystem`: SymPy -> Python source -> Numba.

Each system gets up to three generated modules, each built on first use:

* ``rhs``: the right-hand side (built by ``compile``);
* ``vjp``: ``a^T df/dy``, ``a^T df/dtheta`` and ``a^T df/dt`` (built when a
  gradient is first asked for);
* ``jac``: the dense Jacobians ``jac_y`` and ``jac_theta`` (built when one
  of them is first used).

So a right-hand side whose derivative cannot be written (``floor``) still
solves forward, and a large system pays for its Jacobians only if they are
used.  The kernels are ``@numba.njit(cache=True)`` straight-line scalar code
after common-subexpression elimination: every array entry the code reads is
loaded once into a local at the top (``theta_3 = theta[3]``), which halves
Numba's compile time against indexing at every use.  The modules live in the
generated-code cache (:mod:`nodekit._codecache`) under a key hashed from the
system, so a later process imports them, and Numba's cached machine code,
without differentiating or compiling anything.
"""
import os
from typing import NamedTuple

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from .. import _codecache
from ..ode import ODE

#: Bump when the generated source (or how it is compiled) changes for the same system.
GENERATOR_VERSION = "3"
#: The generated-code cache's name for this generator (folder and module prefix).
KIND = "symbolic"
#: The generated modules of one system, in the order they are usually needed.
PARTS = ("rhs", "vjp", "jac")


def default_cache_dir():
    """The folder for generated modules.

    Returns
    -------
    str
        ``$NODEKIT_CACHE/symbolic`` if ``NODEKIT_CACHE`` is set, else
        ``$XDG_CACHE_HOME/nodekit/symbolic`` (``~/.cache/nodekit/symbolic``);
        a private temporary folder if that cannot be written.
    """
    return _codecache.cache_folder(KIND)


def _check_part(part):
    if part not in PARTS:
        raise ValueError(f"`part` must be one of {', '.join(map(repr, PARTS))}; got {part!r}.")


def system_key(system, part="rhs"):
    """Hex digest naming the generated module ``part`` of ``system``.

    A hash of the expressions (``srepr``, which includes symbol names and
    assumptions), the order of time, states and parameters, the part, the
    generator version and the SymPy version (whose printer and ``cse``
    shape the code).
    """
    _check_part(part)
    return _codecache.make_key({
        "generator": "nodekit.symbolic", "version": GENERATOR_VERSION,
        "sympy": sp.__version__, "part": part,
        "t": sp.srepr(system.t), "states": [sp.srepr(s) for s in system.states],
        "params": [sp.srepr(s) for s in system.params],
        "rhs": [sp.srepr(e) for e in system.rhs]})


def module_path(system, cache_dir=None, part="rhs"):
    """Path of the generated module ``part`` of ``system`` (it may not exist yet).

    Parameters
    ----------
    system : ODESystem
    cache_dir : str or os.PathLike, optional
        Default :func:`default_cache_dir`.
    part : {'rhs', 'vjp', 'jac'}, default 'rhs'

    Returns
    -------
    str
    """
    return _codecache.module_path(KIND, system_key(system, part), cache_dir)


# --- printing -------------------------------------------------------------------
class KernelPrinter(PythonCodePrinter):
    """``PythonCodePrinter`` (``math.*`` calls, which Numba compiles) that
    prints the system's symbols as locals (``y_0``, ``theta_1``)."""

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


class _Symbols(NamedTuple):
    """The system in real dummy symbols (so that d|x|/dx = sign(x), not
    re/im terms), and how each prints."""
    t: sp.Dummy
    ys: list
    ths: list
    adj: list
    f: list             # the right-hand side in the dummies
    loads: dict         # dummy -> its array entry ("y[0]")
    printer: KernelPrinter


def _symbols(system):
    n, p = system.n_states, system.n_params
    t = sp.Dummy("t", real=True)
    ys = [sp.Dummy(f"y{i}", real=True) for i in range(n)]
    ths = [sp.Dummy(f"theta{k}", real=True) for k in range(p)]
    adj = [sp.Dummy(f"a{i}", real=True) for i in range(n)]
    sub = dict(zip((system.t,) + system.states + system.params, [t] + ys + ths))
    f = [e.xreplace(sub) for e in system.rhs]
    loads, names = {}, {t: "t"}
    for arr, syms in (("y", ys), ("theta", ths), ("a", adj)):
        for i, s in enumerate(syms):
            loads[s] = f"{arr}[{i}]"
            names[s] = f"{arr}_{i}"
    return _Symbols(t, ys, ths, adj, f, loads, KernelPrinter(names))


def _doprint(printer, expr, what):
    try:
        text = printer.doprint(expr)
    except Exception as exc:  # noqa: BLE001 - PrintMethodNotImplementedError and friends
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


def _block(targets, exprs, syms, what, indent="    "):
    """Straight-line code assigning ``exprs`` to ``targets`` (``None``: return)
    after CSE, with every array entry read loaded once into a local first."""
    exprs = [_prepare(sp.sympify(e)) for e in exprs]
    repl, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("_c"), order="canonical")
    used = set().union(*(e.free_symbols for e in exprs)) if exprs else set()
    printer = syms.printer
    lines = [f"{indent}{printer.doprint(s)} = {syms.loads[s]}"
             for s in syms.loads if s in used]  # dict order: y, theta, a by index
    lines += [f"{indent}{printer.doprint(s)} = {_doprint(printer, e, what)}" for s, e in repl]
    for target, e in zip(targets, reduced):
        text = _doprint(printer, e, what)
        if e.is_Number and e.is_finite:
            text = repr(float(e))
        lines.append(f"{indent}{target} = {text}" if target else f"{indent}return {text}")
    return lines


def _derivative(fi, s, i, system, var):
    """``d fi / d s``, or a ValueError if SymPy leaves it unevaluated."""
    d = fi.diff(s)
    if d.has(sp.Derivative):
        raise ValueError(
            f"The derivative of rhs[{i}] = {system.rhs[i]} with respect to {var} cannot be "
            f"written ({d}), so there are no gradient or Jacobian kernels for this system. "
            "Forward solves (nk.solve) work; for gradients replace the function by a "
            "differentiable one (e.g. a smooth approximation).")
    return d


def _derivatives(system, syms):
    """Rows of ``df_i/dy_j``, ``df_i/dtheta_k`` and ``df_i/dt`` as dicts
    {column: expression} holding only the entries whose symbol ``f_i`` contains
    (a dense linear system of n states costs O(n^2) derivatives, not O(n^3))."""
    cols = {s: ("y", j) for j, s in enumerate(syms.ys)}
    cols.update({s: ("theta", k) for k, s in enumerate(syms.ths)})
    cols[syms.t] = ("t", 0)
    names = dict(zip(syms.ys, system.states))
    names.update(zip(syms.ths, system.params))
    names[syms.t] = system.t
    rows = []
    for i, fi in enumerate(syms.f):
        free = sorted((s for s in fi.free_symbols if s in cols), key=lambda s: cols[s])
        rows.append({cols[s]: _derivative(fi, s, i, system, names[s]) for s in free})
    return rows


def _header(system, key, part):
    def sym_list(prefix, syms):
        return ", ".join(f"{prefix}[{i}] = {s}" for i, s in enumerate(syms)) or "(none)"

    head = [
        f'"""{part.upper()} kernels generated by nodekit.symbolic; do not edit."""',
        f"# generator version {GENERATOR_VERSION}, sympy {sp.__version__}, key {key}",
        f"# time: t = {system.t}",
        f"# states: {sym_list('y', system.states)}",
        f"# params: {sym_list('theta', system.params)}",
    ]
    head += [f"# d{s}/dt = {e}" for s, e in zip(system.states, system.rhs)]
    return head + ["import math", "", "import numba", "", ""]


_DECO = '@numba.njit(cache=True, error_model="numpy")'


def _rhs_body(system, syms):
    n = system.n_states
    return [_DECO, "def rhs(t, y, theta, out):", '    """dy/dt into out, shape (n,)."""',
            *_block([f"out[{i}]" for i in range(n)], syms.f, syms, "rhs")]


def _vjp_body(system, syms):
    n, p = system.n_states, system.n_params
    g = {("y", j): [] for j in range(n)}
    g.update({("theta", k): [] for k in range(p)})
    g[("t", 0)] = []
    for i, row in enumerate(_derivatives(system, syms)):
        for col, d in row.items():
            g[col].append(syms.adj[i] * d)
    exprs = [sp.Add(*terms) for terms in g.values()]
    targets = [f"out_y[{j}]" for j in range(n)] + [f"out_theta[{k}]" for k in range(p)] + [None]
    return [_DECO, "def vjp(t, y, theta, a, out_y, out_theta):",
            '    """out_y = a^T df/dy, out_theta = a^T df/dtheta; returns a^T df/dt."""',
            *_block(targets, exprs, syms, "vjp")]


def _jac_body(system, syms):
    n, p = system.n_states, system.n_params
    rows = _derivatives(system, syms)
    body = [_DECO, "def jac_y(t, y, theta, out):", '    """df/dy into out, shape (n, n)."""']
    body += _block([f"out[{i}, {j}]" for i in range(n) for j in range(n)],
                   [rows[i].get(("y", j), 0) for i in range(n) for j in range(n)], syms,
                   "jac_y")
    body += ["", "", _DECO, "def jac_theta(t, y, theta, out):",
             '    """df/dtheta into out, shape (n, p)."""']
    if p:
        body += _block([f"out[{i}, {k}]" for i in range(n) for k in range(p)],
                       [rows[i].get(("theta", k), 0) for i in range(n) for k in range(p)],
                       syms, "jac_theta")
    else:
        body += ["    return"]
    return body


_BODIES = {"rhs": _rhs_body, "vjp": _vjp_body, "jac": _jac_body}


def generate_source(system, part="rhs"):
    """The Python source of the generated module ``part`` of ``system``.

    Parameters
    ----------
    system : ODESystem
    part : {'rhs', 'vjp', 'jac'}, default 'rhs'
        ``'rhs'`` holds ``rhs``; ``'vjp'`` holds ``vjp``; ``'jac'`` holds
        ``jac_y`` and ``jac_theta``.

    Returns
    -------
    str
        Without the cache's end marker (see :mod:`nodekit._codecache`).

    Raises
    ------
    ValueError
        If an expression (or a needed derivative) cannot be written as
        Numba-compatible code.
    """
    key = system_key(system, part)
    syms = _symbols(system)
    return "\n".join(_header(system, key, part) + _BODIES[part](system, syms)) + "\n"


# --- the compiled ODE -------------------------------------------------------------
def _load_part(system, part, cache_dir):
    return _codecache.load_or_write(KIND, system_key(system, part),
                                    lambda: generate_source(system, part), cache_dir)


class SymbolicODE(ODE):
    """An ``nk.ODE`` whose kernels were generated from an :class:`ODESystem`.

    Used exactly like any ``nk.ODE`` (``nk.solve``, ``nk.odeint``).  Built by
    :meth:`ODESystem.compile`; the derivative kernels are generated on first
    use.  Pickles by its system: another process loads (or regenerates) the
    kernels from its own cache.

    Attributes
    ----------
    rhs : numba-jitted function
        The generated right-hand side (see :class:`nodekit.ODE`).
    vjp : numba-jitted function
        The generated VJP, built on first access.
    jac_y : numba-jitted function
        ``jac_y(t, y, theta, out)`` writes ``df/dy`` into ``out``, a
        float64 array of shape (n, n); built on first access.
    jac_theta : numba-jitted function
        ``jac_theta(t, y, theta, out)`` writes ``df/dtheta`` into ``out``,
        shape (n, p); built on first access.
    system : ODESystem
        The system the kernels were generated from.
    source_path : str
        The generated module of ``rhs`` (see :func:`module_path` for the others).
    key : str
        The hash naming it.
    """

    def __init__(self, system, cache_dir=None):
        self.system = system
        self.cache_dir = cache_dir
        self.key = system_key(system)
        self._parts = {}
        mod = self._part("rhs")
        self.source_path = mod.__file__
        super().__init__(mod.rhs, None, name=system.name or f"symbolic_{self.key[:8]}")

    def _part(self, part):
        with _codecache.LOCK:
            if part not in self._parts:
                self._parts[part] = _load_part(self.system, part, self.cache_dir)
            return self._parts[part]

    @property
    def vjp(self):
        return self._part("vjp").vjp

    @vjp.setter
    def vjp(self, value):
        if value is not None:
            raise AttributeError("The vjp of a SymbolicODE is generated from its system; "
                                 "it cannot be set.")

    @property
    def jac_y(self):
        return self._part("jac").jac_y

    @property
    def jac_theta(self):
        return self._part("jac").jac_theta

    def __reduce__(self):
        return compile_system, (self.system, self.cache_dir)

    def __repr__(self):
        return f"nk.ODE({self.name}, symbolic, key={self.key})"


_ODES = {}


def compile_system(system, cache_dir=None):
    """Generate (or find in the cache) and load the kernels of ``system``.

    See :meth:`ODESystem.compile`.  Thread-safe: threads compiling the same
    system at once get the same ``SymbolicODE``.
    """
    if cache_dir is not None:
        if not isinstance(cache_dir, (str, bytes, os.PathLike)):
            raise TypeError(f"`cache_dir` must be a path (str or os.PathLike); got "
                            f"{type(cache_dir).__name__} {cache_dir!r}.")
        cache_dir = os.path.abspath(os.fsdecode(cache_dir))
    memo = (_codecache.cache_folder(KIND, cache_dir), system_key(system), system.name)
    with _codecache.LOCK:
        if memo not in _ODES:
            _ODES[memo] = SymbolicODE(system, cache_dir)
        return _ODES[memo]
