"""ESDIRK methods (singly diagonally implicit, explicit first stage), as data.

An ESDIRK method with ``s`` stages has a lower-triangular Butcher matrix
whose first row is zero (stage 1 is ``f(t, y)``, the previous step's end)
and whose other diagonal entries all equal ``gamma``::

    Y_1 = y,    Y_i = y + h sum_{j<i} a_ij f(Y_j) + h gamma f(Y_i)   (i > 1)
    y_new = y + h sum_i b_i f(Y_i),    embedded  y_hat = y + h sum_i bh_i f(Y_i)

so every implicit stage is a nonlinear system with the one matrix
``I - h gamma J``, solved by simplified Newton iterations (the loop in
:mod:`nodekit._esdirk`).  Both methods here are *stiffly accurate*
(``b`` is the last row of ``a``: ``y_new`` is the last stage) and so is their
embedded solution, which makes the error estimate trustworthy on stiff
components.

The float arrays the loop reads use the explicit tableaux' slot layout:
slots ``0 .. s-1`` hold ``K_i = f(Y_i)`` (for the implicit stages derived
from the converged Newton iterate, ``K_i = (Y_i - y - h sum_{j<i} a_ij
K_j) / (h gamma)``), slot ``s`` holds ``f(t + h, y_new)``, evaluated after
acceptance (it is the next step's first stage).  The dense output is the
cubic Hermite interpolant through ``(y, K_1)`` and ``(y_new, K_{s+1})``
(third order; diffrax interpolates its Kvaerno methods the same way), in the
common ``P`` form, so :class:`~nodekit.integrate.DenseSolution` serves this
family too.

The order conditions are Butcher's, over rooted trees, with the full
matrix ``a`` (diagonal included): :func:`esdirk_order_residuals`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np

from .core import DECIMAL_TOL, Row, _float_array, _vec
from .dense import hermite_P
from .trees import _weights_residuals, tree_density

__all__ = ["ESDIRK_METHODS", "ESDIRKTableau", "KVAERNO5", "TRBDF2", "esdirk_order_residuals"]


@dataclass(frozen=True)
class ESDIRKTableau:
    """An ESDIRK method, with checks and the float arrays of the loop.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``'kvaerno5'``.
    order, embedded_order : int
        Order of ``y_new`` (weights ``b``) and of the embedded ``y_hat``
        (weights ``b_hat``).
    references : str
        Literature references.
    gamma : Fraction or str
        The diagonal ``a_ii`` of the implicit stages.
    a : tuple of tuple
        Lower-triangular rows *with* their diagonal: row ``i`` has length
        ``i + 1``, row 0 is ``(0,)``, ``a[i][i] == gamma`` for ``i > 0``.
    b, b_hat : tuple
        Weights of the solution and of the embedded solution.
    c : tuple
        Nodes as published; checked against the row sums of ``a``.
    smooth_error : bool, optional
        Filter the error estimate with ``(I - h gamma J)^-1`` (Shampine's
        remedy for an estimate that grows with ``h J`` on stiff components;
        Hosea and Shampine use it for TR-BDF2).
    exact : bool, optional
        False for coefficients published as decimals (checked to
        :data:`~nodekit.tableaux.DECIMAL_TOL`).

    Attributes
    ----------
    n_stages : int
        ``s``; the loop uses ``s + 1`` slots (the last is ``f(t+h, y_new)``).
    error_order : int
        ``min(order, embedded_order)``: the estimate ``y_new - y_hat`` is
        ``O(h**(error_order + 1))``.
    dense_order : int
        Order of the Hermite dense output, ``min(order, 3)``.
    stiffly_accurate : bool
    A : ndarray, shape (s + 1, s + 1)
        ``a`` in the slot layout, diagonal included (the loop reads the
        strictly lower part for a stage's known terms).
    C, B, E : ndarray, shape (s + 1,)
        Nodes, weights, error weights ``b - b_hat`` (zero in the last slot).
    P : ndarray, shape (s + 1, 3)
        Hermite dense output, ``y(t + theta h) = y + h sum_k K_k sum_j
        P[k, j] theta**(j+1)``.
    """

    name: str
    order: int
    embedded_order: int
    references: str
    gamma: Fraction
    a: tuple
    b: Row
    b_hat: Row
    c: Row
    smooth_error: bool = False
    exact: bool = False

    n_stages: int = field(init=False, repr=False, compare=False)
    error_order: int = field(init=False, repr=False, compare=False)
    dense_order: int = field(init=False, repr=False, compare=False)
    stiffly_accurate: bool = field(init=False, repr=False, compare=False)
    P_exact: tuple = field(init=False, repr=False, compare=False)
    A: np.ndarray = field(init=False, repr=False, compare=False)
    C: np.ndarray = field(init=False, repr=False, compare=False)
    B: np.ndarray = field(init=False, repr=False, compare=False)
    E: np.ndarray = field(init=False, repr=False, compare=False)
    P: np.ndarray = field(init=False, repr=False, compare=False)

    def _set(self, name, value):
        object.__setattr__(self, name, value)

    def _fail(self, msg):
        raise ValueError(f"inconsistent ESDIRK tableau {self.name!r}: {msg}")

    def _eq(self, x, y):
        return x == y if self.exact else abs(x - y) <= DECIMAL_TOL

    def __post_init__(self):
        self._set("gamma", Fraction(self.gamma))
        for nm in ("b", "b_hat", "c"):
            self._set(nm, _vec(getattr(self, nm)))
        self._set("a", tuple(_vec(r) for r in self.a))
        s = len(self.b)
        self._check(s)
        self._store(s)

    def _check(self, s):
        if not self.gamma > 0:
            self._fail(f"`gamma` must be positive; got {float(self.gamma)!r}.")
        for nm in ("b_hat", "c", "a"):
            if len(getattr(self, nm)) != s:
                self._fail(f"len({nm})={len(getattr(self, nm))} must equal len(b)={s}.")
        for i, row in enumerate(self.a):
            if len(row) != i + 1:
                self._fail(f"row {i} of `a` must have {i + 1} entries (diagonal "
                           f"included); got {len(row)}.")
            if row[i] != (0 if i == 0 else self.gamma):
                self._fail(f"a[{i}][{i}] must be {'0' if i == 0 else 'gamma'}; got "
                           f"{float(row[i])!r}.")
            if not self._eq(sum(row), self.c[i]):
                self._fail(f"c[{i}]={float(self.c[i])!r} but row {i} of `a` sums to "
                           f"{float(sum(row))!r}.")
        for nm in ("b", "b_hat"):
            if not self._eq(sum(getattr(self, nm)), 1):
                self._fail(f"sum({nm}) must be 1; got {float(sum(getattr(self, nm)))!r}.")

    def _store(self, s):
        S = s + 1
        self._set("n_stages", s)
        self._set("error_order", min(self.order, self.embedded_order))
        self._set("dense_order", min(self.order, 3))
        self._set("stiffly_accurate", tuple(self.a[-1]) == self.b)
        zero = Fraction(0)
        rows = [tuple(r) + (zero,) * (S - len(r)) for r in self.a]
        rows.append(tuple(self.b) + (zero,))           # the slot of f(t + h, y_new)
        B = tuple(self.b) + (zero,)
        E = tuple(x - y for x, y in zip(self.b, self.b_hat)) + (zero,)
        P = hermite_P(B, s)
        self._set("P_exact", P)

        def flt(x, shape):
            return _float_array([float(v) for v in x], shape)

        self._set("A", flt([v for r in rows for v in r], (S, S)))
        self._set("C", flt(tuple(self.c) + (Fraction(1),), (S,)))
        self._set("B", flt(B, (S,)))
        self._set("E", flt(E, (S,)))
        self._set("P", flt([v for r in P for v in r], (S, len(P[0]))))

    def __repr__(self):
        return (f"ESDIRKTableau({self.name!r}, order {self.order}({self.embedded_order}), "
                f"{self.n_stages} stages, gamma={float(self.gamma):g})")


def esdirk_order_residuals(tableau: ESDIRKTableau, max_order: int, which: str = "b"):
    """Order-condition residuals ``sum_i w_i Phi_i(t) - 1/gamma(t)``, exactly.

    Parameters
    ----------
    tableau : ESDIRKTableau
    max_order : int
        Largest tree order.
    which : {'b', 'b_hat'}, optional
        The solution or the embedded solution.

    Returns
    -------
    list of (str, int, Fraction)
        ``(tree symbol, tree order, residual)``.
    """
    if which not in ("b", "b_hat"):
        raise ValueError(f"`which` must be 'b' or 'b_hat'; got {which!r}.")
    s = tableau.n_stages
    zero, one = Fraction(0), Fraction(1)
    A = [list(r) + [zero] * (s - len(r)) for r in tableau.a]
    return _weights_residuals(A, list(tableau.c), list(getattr(tableau, which)),
                              max_order, lambda t: one / tree_density(t), one, zero)


# ---------------------------------------------------------------------------
# The methods
# ---------------------------------------------------------------------------
_G5 = "0.26"
_K5_ROW6 = ("0.13855640231268224", "0", "-0.04245337201752043", "0.02446657898003141",
            "0.61943039072480676")
_K5_ROW7 = ("0.13659751177640291", "0", "-0.05496908796538376", "-0.04118626728321046",
            "0.62993304899016403", "0.06962479448202728")

#: Kvaerno's 5(4) ESDIRK method: 7 stages, gamma = 0.26, stiffly accurate
#: and L-stable, with a stiffly accurate, order-4 embedded solution (the
#: sixth stage).  Decimal coefficients as published (17 digits); the nodes are
#: the row sums; the order conditions are verified in the tests.
KVAERNO5 = ESDIRKTableau(
    name="kvaerno5", order=5, embedded_order=4,
    references="A. Kvaerno, \"Singly diagonally implicit Runge-Kutta methods with an "
               "explicit first stage\", BIT Numer. Math. 44(3), 489-502, 2004.",
    gamma=_G5,
    a=(("0",),
       (_G5, _G5),
       ("0.13", "0.84033320996790809", _G5),
       ("0.22371961478320505", "0.47675532319799699", "-0.06470895363112615", _G5),
       ("0.16648564323248321", "0.10450018841591720", "0.03631482272098715",
        "-0.13090704451073998", _G5),
       _K5_ROW6 + (_G5,),
       _K5_ROW7 + (_G5,)),
    b=_K5_ROW7 + (_G5,),
    b_hat=_K5_ROW6 + (_G5, "0"),
    c=("0", "0.52", "1.23033320996790809", "0.89576598435007589", "0.43639360985864758",
       "1", "1"))


def _trbdf2():
    """TR-BDF2 with ``gamma = 2 - sqrt(2)``: its coefficients involve
    ``sqrt(2)``, stored to 40 digits (``Fraction`` of the decimal strings)."""
    with localcontext() as ctx:
        ctx.prec = 40
        r2 = Decimal(2).sqrt()
        d = 1 - r2 / 2                   # the diagonal, gamma_TR / 2
        w = r2 / 4
        node = 2 - r2                    # the trapezoidal stage ends at t + node h
        one3 = Decimal(1) / 3

        def q(x):
            return Fraction(str(x))

        return ESDIRKTableau(
            name="trbdf2", order=2, embedded_order=3,
            references="M. E. Hosea, L. F. Shampine, \"Analysis and implementation of "
                       "TR-BDF2\", Appl. Numer. Math. 20, 21-37, 1996; R. E. Bank et al., "
                       "\"Transient simulation of silicon devices and circuits\", IEEE "
                       "Trans. CAD 4(4), 436-451, 1985.",
            gamma=q(d),
            a=((0,), (q(d), q(d)), (q(w), q(w), q(d))),
            b=(q(w), q(w), q(d)),
            b_hat=(q((1 - w) * one3), q((3 * w + 1) * one3), q(d * one3)),
            c=(0, q(node), 1),
            smooth_error=True)


#: TR-BDF2 (Bank et al. 1985; Hosea and Shampine 1996): a trapezoidal stage to
#: ``t + (2 - sqrt 2) h`` then a BDF2 stage to ``t + h``, written as a 3-stage
#: ESDIRK of order 2 (L-stable, stiffly accurate) with Hosea and Shampine's
#: order-3 embedded solution, whose estimate is filtered with ``(I - h gamma
#: J)^-1``.
TRBDF2 = _trbdf2()

#: Registry of the ESDIRK methods by name.
ESDIRK_METHODS = {t.name: t for t in (KVAERNO5, TRBDF2)}
