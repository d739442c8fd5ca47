"""Closed-form test cases, defined once.

Each case is a SymPy system with a closed-form solution in terms of the time,
the initial time, the initial values and the parameters.  The closed forms are
written down and *verified* symbolically (the residual of the ODE simplifies
to zero and the initial condition holds: :func:`verify`), so no numerical
reference is trusted.  SymPy is imported only here, never by ``nodekit``.
"""
from dataclasses import dataclass
from functools import lru_cache

import autograd.numpy as anp
import numpy as np
import sympy as sp

t, t0 = sp.symbols("t t0", real=True)


@dataclass(frozen=True)
class Case:
    """One ODE with a closed-form solution.

    Attributes
    ----------
    name : str
    states, params : tuple of sympy.Symbol
    rhs : tuple of sympy.Expr
        ``dy_i/dt`` in terms of ``t``, ``states`` and ``params``.
    initial : tuple of sympy.Symbol
        Symbols standing for ``y(t0)``.
    solution : tuple of sympy.Expr
        ``y_i(t)`` in terms of ``t``, ``t0``, ``initial`` and ``params``.
    y0, theta : tuple of float
        Default numerical values.
    t_span : tuple of float
    """

    name: str
    states: tuple
    params: tuple
    rhs: tuple
    initial: tuple
    solution: tuple
    y0: tuple
    theta: tuple
    t_span: tuple

    def fun(self):
        """The right-hand side as an autograd-NumPy function ``fun(t, y, theta)``."""
        return _fun(self)

    def exact(self, ts, y0=None, theta=None):
        """Closed-form ``y(ts)``, shape ``(len(ts), n)``, with ``t0 = ts[0]``."""
        ts = np.asarray(ts, dtype=float)
        y0 = self.y0 if y0 is None else y0
        theta = self.theta if theta is None else theta
        f = _solution_fn(self)
        cols = [np.broadcast_to(np.asarray(c, dtype=float), ts.shape)
                for c in f(ts, ts[0], tuple(y0), tuple(theta))]
        return np.stack(cols, axis=-1)


    def exact_gradient(self, ts, weights, y0=None, theta=None):
        """Closed-form gradient of ``L = sum(weights * y(ts))``.

        ``weights`` has shape ``(len(ts), n)``; the solution is differentiated
        symbolically, so nothing numerical is trusted.

        Returns
        -------
        dy0 : ndarray, shape (n,)
        dtheta : ndarray, shape (p,)
        dt : ndarray, shape (len(ts),)
            With respect to every time, ``ts[0]`` (the initial time) included.
        """
        ts = np.asarray(ts, dtype=float)
        y0 = self.y0 if y0 is None else y0
        theta = self.theta if theta is None else theta
        weights = np.asarray(weights, dtype=float)
        d_init, d_par, d_t, d_t0 = _derivative_fns(self)
        args = lambda tj: (tj, ts[0], tuple(y0), tuple(theta))
        dy0 = sum(weights[j] @ np.array(d_init(*args(ts[j])), dtype=float).reshape(
            len(self.states), len(self.initial)) for j in range(ts.size))
        dth = sum(weights[j] @ np.array(d_par(*args(ts[j])), dtype=float).reshape(
            len(self.states), len(self.params)) for j in range(ts.size))
        dt = np.array([weights[j] @ np.ravel(np.array(d_t(*args(ts[j])), dtype=float))
                       for j in range(ts.size)])
        # y(ts[0]) = y0 whatever t0: the initial time acts through the other outputs
        dt[0] = sum(weights[j] @ np.ravel(np.array(d_t0(*args(ts[j])), dtype=float))
                    for j in range(1, ts.size))
        return np.asarray(dy0, dtype=float), np.asarray(dth, dtype=float), dt


@lru_cache(maxsize=None)
def _derivative_fns(case):
    sol = sp.Matrix(case.solution)
    mats = (sol.jacobian(sp.Matrix(case.initial)), sol.jacobian(sp.Matrix(case.params)),
            sol.diff(t), sol.diff(t0))
    return tuple(sp.lambdify((t, t0, case.initial, case.params), M.tolist(), modules="numpy")
                 for M in mats)


@lru_cache(maxsize=None)
def _fun(case):
    f = sp.lambdify((t, case.states, case.params), list(case.rhs), modules=anp)

    def fun(tt, y, theta):
        return anp.array(f(tt, y, theta))
    fun.__name__ = case.name
    return fun


@lru_cache(maxsize=None)
def _solution_fn(case):
    return sp.lambdify((t, t0, case.initial, case.params), list(case.solution),
                       modules="numpy")


def verify(case):
    """Check symbolically that ``case.solution`` solves ``case.rhs`` with the
    initial values; returns the list of nonzero residuals (empty if exact)."""
    subs = dict(zip(case.states, case.solution))
    bad = []
    for i, (sol, f) in enumerate(zip(case.solution, case.rhs)):
        r = sp.simplify(sp.diff(sol, t) - f.subs(subs))
        if r != 0:
            bad.append((case.name, i, "ode", r))
        r0 = sp.simplify(sol.subs(t, t0) - case.initial[i])
        if r0 != 0:
            bad.append((case.name, i, "initial", r0))
    return bad


def _sym(names):
    return sp.symbols(names, real=True)


def _decay():
    y, k, y0 = _sym("y k y_0")
    return Case("exponential decay", (y,), (k,), (-k * y,), (y0,),
                (y0 * sp.exp(-k * (t - t0)),), (2.0,), (0.7,), (0.0, 5.0))


def _logistic():
    y, r, K, y0 = _sym("y r K y_0")
    sol = K * y0 / (y0 + (K - y0) * sp.exp(-r * (t - t0)))
    return Case("logistic", (y,), (r, K), (r * y * (1 - y / K),), (y0,), (sol,),
                (0.1,), (1.3, 2.0), (0.0, 8.0))


def _spiral():
    x, y, a, b, x0, y0 = _sym("x y a b x_0 y_0")
    M = sp.Matrix([[-a, b], [-b, -a]])
    tau = t - t0
    # the matrix exponential of M*tau, written out and verified below
    E = sp.exp(-a * tau) * sp.Matrix([[sp.cos(b * tau), sp.sin(b * tau)],
                                      [-sp.sin(b * tau), sp.cos(b * tau)]])
    sol = E * sp.Matrix([x0, y0])
    rhs = M * sp.Matrix([x, y])
    return Case("linear spiral", (x, y), (a, b), tuple(rhs), (x0, y0), tuple(sol),
                (2.0, 0.0), (0.1, 2.0), (0.0, 10.0))


def _nonautonomous():
    y, k, y0 = _sym("y k y_0")
    return Case("nonautonomous growth", (y,), (k,), (k * sp.cos(t) * y,), (y0,),
                (y0 * sp.exp(k * (sp.sin(t) - sp.sin(t0))),), (1.0,), (1.5,), (0.0, 6.0))


def _forced():
    y, k, w, y0 = _sym("y k w y_0")
    # dy/dt = -k y + sin(w t): linear, nonautonomous
    part = lambda s: (k * sp.sin(w * s) - w * sp.cos(w * s)) / (k**2 + w**2)
    sol = part(t) + (y0 - part(t0)) * sp.exp(-k * (t - t0))
    return Case("forced decay", (y,), (k, w), (-k * y + sp.sin(w * t),), (y0,), (sol,),
                (1.0,), (0.5, 3.0), (0.0, 6.0))


@lru_cache(maxsize=None)
def all_cases():
    """The cases, by name."""
    return {c.name: c for c in (_decay(), _logistic(), _spiral(), _nonautonomous(),
                                 _forced())}
