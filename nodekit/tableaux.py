"""Explicit Runge--Kutta Butcher tableaux, stored as exact data.

Every method is a :class:`ButcherTableau` whose coefficients are exact
:class:`fractions.Fraction` values (built from exact rationals, or -- for the
methods whose coefficients are only published as decimals, ``tsit5`` and
``dop853`` -- from ``Fraction(str)`` of the published decimal strings).  From
the exact data each tableau derives, once, the C-contiguous ``float64`` arrays
consumed by the Numba kernel, in the *stage-slot layout*:

* slots ``0 .. n_stages-1`` are the stages of one step (including the FSAL
  stage for FSAL methods);
* slot ``f1_index`` holds ``f(t + h, y_new)``: it is the last stage
  (``n_stages - 1``) for FSAL methods, otherwise an extra slot ``n_stages``
  whose row of ``A`` equals ``b`` and whose node is ``c = 1``;
* slots after ``f1_index`` are extra stages needed only by the dense output
  (DOP853's three extra stages).

The module also generates Butcher's rooted trees and evaluates the order
conditions ``sum_i b_i Phi_i(t) = 1 / gamma(t)`` exactly (see
:func:`order_condition_residuals`), which the test-suite uses to verify every
tableau.

Only the standard library and NumPy are imported.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    "ButcherTableau", "METHODS", "get_tableau", "rooted_trees", "tree_order",
    "tree_density", "tree_symbol", "order_condition_residuals",
    "embedded_order_condition_residuals", "dense_order_condition_residuals",
    "EULER", "MIDPOINT", "HEUN", "RALSTON", "RK4", "RK38", "HEUN_EULER", "BOSH3",
    "RKF45", "CASH_KARP", "DOPRI5", "TSIT5", "DOP853",
]

#: Tolerance of the consistency checks for tableaux whose coefficients are
#: rounded decimals (``exact=False``); exact tableaux are checked exactly.
DECIMAL_TOL = Fraction(1, 10 ** 12)

_F = Fraction
Row = Tuple[Fraction, ...]


def _fr(x) -> Fraction:
    """Exact Fraction of an int, Fraction or decimal *string* (never a float)."""
    if isinstance(x, float):
        raise TypeError("tableau coefficients must be exact (int, Fraction or a "
                        f"decimal string), not the float {x!r}")
    return Fraction(x)


def _vec(xs) -> Row:
    return tuple(_fr(x) for x in xs)


# ---------------------------------------------------------------------------
# Rooted trees and order conditions
# ---------------------------------------------------------------------------
# A rooted tree is a canonical nested tuple: the sorted tuple of its children's
# canonical forms.  The single vertex is ``()``.

def _graft_all(tree):
    """All trees obtained by attaching one new leaf to some vertex of `tree`."""
    out = [tuple(sorted(tree + ((),)))]  # new leaf at the root
    for i, child in enumerate(tree):
        rest = tree[:i] + tree[i + 1:]
        for new_child in _graft_all(child):
            out.append(tuple(sorted(rest + (new_child,))))
    return out


@functools.lru_cache(maxsize=None)
def rooted_trees(order: int) -> Tuple[tuple, ...]:
    """Rooted trees with `order` vertices, in a deterministic canonical order.

    Parameters
    ----------
    order : int
        Number of vertices, >= 1.

    Returns
    -------
    tuple of tuple
        The trees as canonical nested tuples (a tree is the sorted tuple of
        its subtrees; the single vertex is ``()``).  Their numbers for orders
        1, 2, ..., 8 are 1, 1, 2, 4, 9, 20, 48, 115.
    """
    if order < 1:
        raise ValueError(f"`order` must be >= 1; got {order!r}.")
    if order == 1:
        return ((),)
    found = set()
    for t in rooted_trees(order - 1):
        found.update(_graft_all(t))
    return tuple(sorted(found, key=repr))


def tree_order(tree) -> int:
    """Number of vertices of a rooted tree (see :func:`rooted_trees`)."""
    return 1 + sum(tree_order(c) for c in tree)


def tree_density(tree) -> int:
    """Density ``gamma(t) = |t| * prod gamma(t_j)`` of a rooted tree."""
    g = tree_order(tree)
    for c in tree:
        g *= tree_density(c)
    return g


def tree_symbol(tree) -> str:
    """Butcher's bracket notation of a tree, e.g. ``'[τ,[τ]]'`` (leaf ``'τ'``)."""
    if not tree:
        return "τ"
    return "[" + ",".join(tree_symbol(c) for c in tree) + "]"


def _weights_residuals(A, c, weights, max_order, rhs, one, zero):
    """Residuals ``sum_i w_i Phi_i(t) - rhs(t)`` for all trees up to max_order.

    `A` is a square list-of-lists, `c` its nodes.  ``Phi_i`` of a tree with
    children ``t_1..t_m`` is ``prod_j (A Phi(t_j))_i`` (with ``A Phi(τ) = c``).
    """
    n = len(c)
    phi_cache = {(): [one] * n}

    def a_phi(t):  # (A Phi(t))_i
        p = phi(t)
        return [sum((A[i][k] * p[k] for k in range(i) if A[i][k] != 0), zero)
                for i in range(n)]

    ap_cache = {}

    def phi(t):
        if t in phi_cache:
            return phi_cache[t]
        out = [one] * n
        for child in t:
            if child not in ap_cache:
                ap_cache[child] = a_phi(child)
            ac = ap_cache[child]
            out = [o * x for o, x in zip(out, ac)]
        phi_cache[t] = out
        return out

    results = []
    for order in range(1, max_order + 1):
        for t in rooted_trees(order):
            p = phi(t)
            val = sum((w * x for w, x in zip(weights, p)), zero)
            results.append((tree_symbol(t), order, val - rhs(t)))
    return results


def _as_number_system(exact):
    if exact:
        return (lambda x: x), Fraction(1), Fraction(0)
    return float, 1.0, 0.0


def _main_arrays(tableau, exact):
    conv, one, zero = _as_number_system(exact)
    s = tableau.n_stages
    A = [[conv(tableau.a[i][k]) if k < i else zero for k in range(s)] for i in range(s)]
    c = [conv(x) for x in tableau.c]
    return A, c, conv, one, zero


def order_condition_residuals(tableau: "ButcherTableau", max_order: int,
                              exact: bool = True, weights=None):
    """Residuals of Butcher's order conditions of a tableau.

    For every rooted tree ``t`` with ``|t| <= max_order`` the condition is
    ``sum_i b_i Phi_i(t) = 1 / gamma(t)``.

    Parameters
    ----------
    tableau : ButcherTableau
        The method.
    max_order : int
        Largest tree order to check.
    exact : bool, optional
        Use exact :class:`~fractions.Fraction` arithmetic (default) or floats.
    weights : sequence, optional
        Weights to use instead of ``tableau.b`` (length ``n_stages``), e.g. an
        embedded method's ``b_hat``.

    Returns
    -------
    list of (str, int, Fraction or float)
        ``(tree symbol, tree order, residual)`` for every tree, residual
        ``= sum_i w_i Phi_i(t) - 1/gamma(t)``.  The method has order ``p`` iff
        every residual up to ``p`` vanishes.
    """
    A, c, conv, one, zero = _main_arrays(tableau, exact)
    w = tableau.b if weights is None else weights
    if len(w) != tableau.n_stages:
        raise ValueError(f"`weights` must have length n_stages={tableau.n_stages}; "
                         f"got {len(w)}.")
    w = [conv(_fr(x)) if exact else float(x) for x in w]
    return _weights_residuals(A, c, w, max_order,
                              lambda t: one / tree_density(t), one, zero)


def embedded_order_condition_residuals(tableau: "ButcherTableau",
                                       max_order: Optional[int] = None,
                                       exact: bool = True, which: str = "b_err"):
    """Order-condition residuals of the embedded weights ``b_hat = b - b_err``.

    Parameters
    ----------
    tableau : ButcherTableau
        An adaptive method.
    max_order : int, optional
        Largest tree order; defaults to ``tableau.embedded_order``.
    exact : bool, optional
        Exact Fraction (default) or float arithmetic.
    which : {'b_err', 'b_err2'}, optional
        Which error weights define ``b_hat`` (``'b_err2'``: DOP853's 3rd-order
        estimator).

    Returns
    -------
    list of (str, int, Fraction or float)
        As :func:`order_condition_residuals`.
    """
    err = getattr(tableau, which)
    if err is None:
        raise ValueError(f"tableau {tableau.name!r} has no `{which}`.")
    if max_order is None:
        max_order = tableau.embedded_order
    b_hat = [b - e for b, e in zip(tableau.b, err)]
    return order_condition_residuals(tableau, max_order, exact, weights=b_hat)


def dense_order_condition_residuals(tableau: "ButcherTableau", theta,
                                    max_order: Optional[int] = None,
                                    exact: bool = True):
    """Order conditions of the continuous extension at a fixed ``theta``.

    The dense output ``y + h sum_k b_k(theta) K_k`` with
    ``b_k(theta) = sum_j P[k, j] theta**(j+1)`` has order ``q`` at ``theta``
    iff ``sum_k b_k(theta) Phi_k(t) = theta**|t| / gamma(t)`` for all trees
    with ``|t| <= q``; ``Phi`` is taken over all ``n_slots`` slots.

    Parameters
    ----------
    tableau : ButcherTableau
        The method.
    theta : Fraction, int, str or float
        Position in the step, in [0, 1].
    max_order : int, optional
        Largest tree order; defaults to ``tableau.dense_order``.
    exact : bool, optional
        Exact Fraction (default) or float arithmetic.

    Returns
    -------
    list of (str, int, Fraction or float)
        As :func:`order_condition_residuals`.
    """
    conv, one, zero = _as_number_system(exact)
    if max_order is None:
        max_order = tableau.dense_order
    th = _fr(theta) if exact else float(theta)
    S = tableau.n_slots
    A = [[conv(x) for x in row] for row in tableau.A_exact]
    c = [conv(x) for x in tableau.C_exact]
    w = []
    for row in tableau.P_exact:
        acc, p = zero, th
        for coef in row:
            acc += conv(coef) * p
            p = p * th
        w.append(acc)
    assert len(w) == S
    return _weights_residuals(A, c, w, max_order,
                              lambda t: th ** tree_order(t) / tree_density(t),
                              one, zero)


def _hermite_P(b_slots: Sequence[Fraction], f1_index: int) -> Tuple[Row, ...]:
    """Cubic Hermite interpolant through (y, f0) and (y_new, f1) in P form."""
    rows = []
    for k, bk in enumerate(b_slots):
        row = [bk * 0, bk * 3, bk * -2]           # b_k (3θ² - 2θ³)
        if k == 0:
            row = [row[0] + 1, row[1] - 2, row[2] + 1]   # θ - 2θ² + θ³
        if k == f1_index:
            row = [row[0], row[1] - 1, row[2] + 1]       # θ³ - θ²
        rows.append(tuple(Fraction(x) for x in row))
    return tuple(rows)


def _poly_mul(p, q):
    out = [Fraction(0)] * (len(p) + len(q) - 1)
    for i, x in enumerate(p):
        for j, y in enumerate(q):
            out[i + j] += x * y
    return out


def _dop853_P(b_slots, f1_index, D_rows):
    """Expand Hairer's nested DOP853 dense output exactly into P form.

    ``y(t+sh) = y + sum_i F_i g_i(s)`` with ``g_0 = s``, ``g_1 = s(1-s)``,
    ``g_2 = s^2(1-s)``, ``g_3 = s^2(1-s)^2``, ... (alternating factors ``s``
    and ``1-s``) and ``F_0 = h sum b K``, ``F_1 = h K_0 - F_0``,
    ``F_2 = 2 F_0 - h (K_f1 + K_0)``, ``F_{3+j} = h sum_k D[j, k] K_k``.
    """
    S = len(b_slots)
    n_f = 3 + len(D_rows)
    s_poly, oms_poly = [Fraction(0), Fraction(1)], [Fraction(1), Fraction(-1)]
    g, cur = [], [Fraction(1)]
    for i in range(n_f):
        cur = _poly_mul(cur, s_poly if i % 2 == 0 else oms_poly)
        g.append(cur)
    deg = len(g[-1]) - 1
    rows = []
    for k in range(S):
        coef = [b_slots[k],
                (1 if k == 0 else 0) - b_slots[k],
                2 * b_slots[k] - (1 if k == f1_index else 0) - (1 if k == 0 else 0)]
        coef += [D[k] for D in D_rows]
        poly = [Fraction(0)] * (deg + 1)
        for ci, gi in zip(coef, g):
            for j, x in enumerate(gi):
                poly[j] += ci * x
        assert poly[0] == 0
        rows.append(tuple(poly[1:]))
    return tuple(rows)


# ---------------------------------------------------------------------------
# The tableau class
# ---------------------------------------------------------------------------

def _float_array(x, shape):
    arr = np.ascontiguousarray(np.array(x, dtype=np.float64).reshape(shape))
    return arr


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge--Kutta method, with exact coefficients.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``'dopri5'``.
    order : int
        Order of the propagated solution (weights `b`).
    error_order : int or None
        Order of the embedded error estimator, in the sense of SciPy's
        ``error_estimator_order`` (the estimate is ``O(h**(error_order+1))``);
        None for fixed-step methods.
    dense_order : int
        Order of the dense output (continuous extension).
    fsal : bool
        First-same-as-last: the last stage is evaluated at ``(t+h, y_new)``
        (``c[-1] == 1``, last row of `a` equals `b`, ``b[-1] == 0``).
    references : str
        Literature references.
    c : tuple of Fraction
        Nodes, length ``n_stages``.
    a : tuple of tuple of Fraction
        Strictly lower-triangular coefficients: row ``i`` has length ``i``
        (longer rows are accepted if the extra entries are zero).
    b : tuple of Fraction
        Weights of the propagated solution, length ``n_stages``.
    b_err : tuple of Fraction or None, optional
        Error weights ``b - b_hat`` (for DOP853: Hairer's/SciPy's ``E5``);
        None for fixed-step methods.
    b_err2 : tuple of Fraction or None, optional
        Second error estimator (DOP853's 3rd-order ``E3 = b - bhh``).
    extra_c, extra_a : tuple, optional
        Nodes and rows of the extra dense-output slots placed after
        ``f1_index``; row ``j`` has length ``f1_index + 1 + j``.
    dense : tuple of tuple of Fraction or None, optional
        Dense-output coefficients in the slot layout (shape ``(n_slots, q)``);
        None builds the cubic Hermite interpolant.
    exact : bool, optional
        True when the coefficients are exact rationals (consistency checked
        exactly); False for rounded decimal data (``tsit5``, ``dop853``),
        checked to within :data:`DECIMAL_TOL`.
    embedded_order : int or None, optional
        Order of the embedded weights ``b_hat = b - b_err`` as a method;
        defaults to `error_order`.  Differs for ``rkf45`` (propagates the
        4th-order solution, ``b_hat`` is Fehlberg's 5th-order one) and
        ``dop853`` (``E5`` is not ``b - b_hat`` of a 7th-order method).

    Attributes
    ----------
    n_stages : int
        Stages of one step, including the FSAL stage.
    f1_index : int
        Slot of ``f(t+h, y_new)``: ``n_stages-1`` if `fsal` else ``n_stages``.
    n_slots : int
        Total slots ``S`` (stages, f1 slot, extra dense slots).
    is_adaptive : bool
        True when `b_err` is not None.
    has_e2 : bool
        True when `b_err2` is not None.
    A_exact, C_exact, B_exact, P_exact : tuple
        Exact slot-layout data (``P_exact`` has shape ``(n_slots, q)``).
    A : ndarray, shape (S, S)
        Strictly lower-triangular float64 coefficients per slot.
    C, B, E, E2 : ndarray, shape (S,)
        Nodes, weights, error weights, second error weights (zero-padded; E
        and E2 are zero when absent).
    P : ndarray, shape (S, q)
        Dense output: ``y(t + θh) = y + h sum_k K_k sum_j P[k, j] θ**(j+1)``.
    """

    name: str
    order: int
    error_order: Optional[int]
    dense_order: int
    fsal: bool
    references: str
    c: Row
    a: Tuple[Row, ...]
    b: Row
    b_err: Optional[Row] = None
    b_err2: Optional[Row] = None
    extra_c: Row = ()
    extra_a: Tuple[Row, ...] = ()
    dense: Optional[Tuple[Row, ...]] = field(default=None, repr=False)
    exact: bool = True
    embedded_order: Optional[int] = None

    # derived (not init arguments)
    n_stages: int = field(init=False, repr=False, compare=False)
    f1_index: int = field(init=False, repr=False, compare=False)
    n_slots: int = field(init=False, repr=False, compare=False)
    is_adaptive: bool = field(init=False, repr=False, compare=False)
    has_e2: bool = field(init=False, repr=False, compare=False)
    A_exact: tuple = field(init=False, repr=False, compare=False)
    C_exact: tuple = field(init=False, repr=False, compare=False)
    B_exact: tuple = field(init=False, repr=False, compare=False)
    P_exact: tuple = field(init=False, repr=False, compare=False)
    A: np.ndarray = field(init=False, repr=False, compare=False)
    C: np.ndarray = field(init=False, repr=False, compare=False)
    B: np.ndarray = field(init=False, repr=False, compare=False)
    E: np.ndarray = field(init=False, repr=False, compare=False)
    E2: np.ndarray = field(init=False, repr=False, compare=False)
    P: np.ndarray = field(init=False, repr=False, compare=False)

    # -- validation -------------------------------------------------------
    def _fail(self, msg):
        raise ValueError(f"inconsistent Butcher tableau {self.name!r}: {msg}")

    def _eq(self, x, y):
        if self.exact:
            return x == y
        return abs(x - y) <= DECIMAL_TOL

    def __post_init__(self):
        setattr_ = functools.partial(object.__setattr__, self)
        # normalise to exact tuples
        setattr_("c", _vec(self.c))
        setattr_("b", _vec(self.b))
        setattr_("a", tuple(_vec(r) for r in self.a))
        for nm in ("b_err", "b_err2"):
            v = getattr(self, nm)
            if v is not None:
                setattr_(nm, _vec(v))
        setattr_("extra_c", _vec(self.extra_c))
        setattr_("extra_a", tuple(_vec(r) for r in self.extra_a))
        if self.dense is not None:
            setattr_("dense", tuple(_vec(r) for r in self.dense))
        if self.embedded_order is None:
            setattr_("embedded_order", self.error_order)

        s = len(self.b)
        if s < 1:
            self._fail("`b` is empty.")
        if len(self.c) != s or len(self.a) != s:
            self._fail(f"lengths differ: len(c)={len(self.c)}, len(a)={len(self.a)}, "
                       f"len(b)={s}.")
        for i, row in enumerate(self.a):
            if any(x != 0 for x in row[i:]):
                self._fail(f"`a` must be strictly lower triangular (row {i} has a "
                           "nonzero entry on or above the diagonal).")
        a = tuple(tuple(row[:i]) + (Fraction(0),) * (i - len(row[:i]))
                  for i, row in enumerate(self.a))
        setattr_("a", a)
        if not self._eq(sum(self.b), 1):
            self._fail(f"sum(b) must be 1; got {sum(self.b)} (= {float(sum(self.b))!r}).")
        for i, row in enumerate(a):
            if not self._eq(sum(row, Fraction(0)), self.c[i]):
                self._fail(f"row sums of `a` must equal `c`: row {i} sums to "
                           f"{float(sum(row, Fraction(0)))!r} but c[{i}] = "
                           f"{float(self.c[i])!r}.")
        for nm in ("b_err", "b_err2"):
            v = getattr(self, nm)
            if v is None:
                continue
            if len(v) != s:
                self._fail(f"len({nm})={len(v)} must equal n_stages={s}.")
            if not self._eq(sum(v), 0):
                self._fail(f"sum({nm}) must be 0; got {float(sum(v))!r}.")
        if self.b_err is None and (self.b_err2 is not None or self.error_order is not None):
            self._fail("`b_err2`/`error_order` given without `b_err`.")
        if self.b_err is not None and self.error_order is None:
            self._fail("`error_order` is required when `b_err` is given.")
        if self.fsal:
            if self.c[-1] != 1:
                self._fail(f"FSAL requires c[-1] == 1; got {self.c[-1]}.")
            if self.b[-1] != 0:
                self._fail(f"FSAL requires b[-1] == 0; got {self.b[-1]}.")
            if tuple(a[-1]) != self.b[:-1]:
                self._fail("FSAL requires the last row of `a` to equal `b`.")

        # slot layout
        f1 = s - 1 if self.fsal else s
        n_extra = len(self.extra_c)
        if len(self.extra_a) != n_extra:
            self._fail(f"len(extra_a)={len(self.extra_a)} != len(extra_c)={n_extra}.")
        S = f1 + 1 + n_extra
        rows = [tuple(r) + (Fraction(0),) * (S - len(r)) for r in a]
        C = list(self.c)
        if not self.fsal:
            rows.append(tuple(self.b) + (Fraction(0),) * (S - s))
            C.append(Fraction(1))
        for j, (cj, row) in enumerate(zip(self.extra_c, self.extra_a)):
            slot = f1 + 1 + j
            if any(x != 0 for x in row[slot:]):
                self._fail(f"extra dense-output row {j} (slot {slot}) references "
                           "slots at or after itself.")
            row = tuple(row[:slot])
            if not self._eq(sum(row, Fraction(0)), cj):
                self._fail(f"extra row {j} sums to {float(sum(row))!r}, not "
                           f"c={float(cj)!r}.")
            rows.append(row + (Fraction(0),) * (S - len(row)))
            C.append(cj)
        B = tuple(self.b) + (Fraction(0),) * (S - s)

        if self.dense is None:
            P = _hermite_P(B, f1)
        else:
            P = self.dense
        if len(P) != S or len({len(r) for r in P}) != 1:
            self._fail(f"dense-output coefficients must have shape (n_slots={S}, q).")
        for k in range(S):
            if not self._eq(sum(P[k]), B[k]):
                self._fail(f"dense output at theta=1 must give b (slot {k}: "
                           f"{float(sum(P[k]))!r} != {float(B[k])!r}).")
        col_sums = [sum(P[k][j] for k in range(S)) for j in range(len(P[0]))]
        if not all(self._eq(x, 1 if j == 0 else 0) for j, x in enumerate(col_sums)):
            self._fail("dense output is inconsistent: sum_k b_k(theta) must equal theta.")

        setattr_("n_stages", s)
        setattr_("f1_index", f1)
        setattr_("n_slots", S)
        setattr_("is_adaptive", self.b_err is not None)
        setattr_("has_e2", self.b_err2 is not None)
        setattr_("A_exact", tuple(rows))
        setattr_("C_exact", tuple(C))
        setattr_("B_exact", B)
        setattr_("P_exact", tuple(tuple(r) for r in P))

        def pad(v):
            if v is None:
                return np.zeros(S)
            return _float_array([float(x) for x in v] + [0.0] * (S - s), (S,))

        setattr_("A", _float_array([[float(x) for x in r] for r in rows], (S, S)))
        setattr_("C", _float_array([float(x) for x in C], (S,)))
        setattr_("B", _float_array([float(x) for x in B], (S,)))
        setattr_("E", pad(self.b_err))
        setattr_("E2", pad(self.b_err2))
        setattr_("P", _float_array([[float(x) for x in r] for r in P], (S, len(P[0]))))

    # -- conveniences -------------------------------------------------------
    @property
    def b_hat(self) -> Optional[Row]:
        """Embedded weights ``b - b_err`` (None for fixed-step methods)."""
        if self.b_err is None:
            return None
        return tuple(x - y for x, y in zip(self.b, self.b_err))

    @property
    def dense_degree(self) -> int:
        """Polynomial degree ``q`` of the dense output (columns of `P`)."""
        return self.P.shape[1]

    def __repr__(self):
        kind = (f"{self.order}({self.error_order})" if self.is_adaptive
                else f"{self.order}")
        return (f"ButcherTableau({self.name!r}, order {kind}, {self.n_stages} stages"
                f"{', FSAL' if self.fsal else ''}, dense order {self.dense_order})")


# ---------------------------------------------------------------------------
# The methods
# ---------------------------------------------------------------------------
_HNW = ("E. Hairer, S. P. Norsett, G. Wanner, \"Solving Ordinary Differential "
        "Equations I: Nonstiff Problems\", 2nd ed., Springer Series in "
        "Computational Mathematics 8, Springer, 1993.")
_BUTCHER = ("J. C. Butcher, \"Numerical Methods for Ordinary Differential "
            "Equations\", 3rd ed., Wiley, 2016.")

#: Forward Euler, order 1 (fixed step; cubic Hermite dense output, order 1).
#:
#: References
#: ----------
#: L. Euler, "Institutionum calculi integralis", Vol. 1, 1768; and [HNW93] Sec. I.7.
EULER = ButcherTableau(
    name="euler", order=1, error_order=None, dense_order=1, fsal=False,
    references="L. Euler, \"Institutionum calculi integralis\", Vol. 1, "
               "Impensis Academiae Imperialis Scientiarum, St. Petersburg, 1768. "
               + _HNW,
    c=(0,), a=((),), b=(1,))

#: Explicit midpoint rule (Runge's method), order 2 (fixed step).
#:
#: References
#: ----------
#: C. Runge, "Ueber die numerische Aufloesung von Differentialgleichungen",
#: Mathematische Annalen 46, 167-178, 1895.
MIDPOINT = ButcherTableau(
    name="midpoint", order=2, error_order=None, dense_order=2, fsal=False,
    references="C. Runge, \"Ueber die numerische Aufloesung von "
               "Differentialgleichungen\", Mathematische Annalen 46, 167-178, 1895. "
               + _BUTCHER,
    c=(0, _F(1, 2)), a=((), (_F(1, 2),)), b=(0, 1))

_HEUN_REF = ("K. Heun, \"Neue Methoden zur approximativen Integration der "
             "Differentialgleichungen einer unabhaengigen Veraenderlichen\", "
             "Zeitschrift fuer Mathematik und Physik 45, 23-38, 1900. ")

#: Heun's method (explicit trapezoidal rule), order 2 (fixed step).
#:
#: References
#: ----------
#: K. Heun, "Neue Methoden zur approximativen Integration der
#: Differentialgleichungen einer unabhaengigen Veraenderlichen",
#: Zeitschrift fuer Mathematik und Physik 45, 23-38, 1900.
HEUN = ButcherTableau(
    name="heun", order=2, error_order=None, dense_order=2, fsal=False,
    references=_HEUN_REF + _BUTCHER,
    c=(0, 1), a=((), (1,)), b=(_F(1, 2), _F(1, 2)))

#: Ralston's second-order method (a21 = 2/3, minimum error bound), fixed step.
#:
#: References
#: ----------
#: A. Ralston, "Runge-Kutta methods with minimum error bounds",
#: Mathematics of Computation 16(80), 431-437, 1962.
RALSTON = ButcherTableau(
    name="ralston", order=2, error_order=None, dense_order=2, fsal=False,
    references="A. Ralston, \"Runge-Kutta methods with minimum error bounds\", "
               "Mathematics of Computation 16(80), 431-437, 1962.",
    c=(0, _F(2, 3)), a=((), (_F(2, 3),)), b=(_F(1, 4), _F(3, 4)))

_KUTTA_REF = ("W. Kutta, \"Beitrag zur naeherungsweisen Integration totaler "
              "Differentialgleichungen\", Zeitschrift fuer Mathematik und Physik "
              "46, 435-453, 1901. ")

#: The classic fourth-order Runge--Kutta method (fixed step; Hermite dense
#: output of order 3).
#:
#: References
#: ----------
#: W. Kutta, "Beitrag zur naeherungsweisen Integration totaler
#: Differentialgleichungen", Zeitschrift fuer Mathematik und Physik 46,
#: 435-453, 1901.
RK4 = ButcherTableau(
    name="rk4", order=4, error_order=None, dense_order=3, fsal=False,
    references=_KUTTA_REF + _HNW,
    c=(0, _F(1, 2), _F(1, 2), 1),
    a=((), (_F(1, 2),), (0, _F(1, 2)), (0, 0, 1)),
    b=(_F(1, 6), _F(1, 3), _F(1, 3), _F(1, 6)))

#: Kutta's 3/8 rule, order 4 (fixed step; Hermite dense output of order 3).
#:
#: References
#: ----------
#: W. Kutta, "Beitrag zur naeherungsweisen Integration totaler
#: Differentialgleichungen", Zeitschrift fuer Mathematik und Physik 46,
#: 435-453, 1901.
RK38 = ButcherTableau(
    name="rk38", order=4, error_order=None, dense_order=3, fsal=False,
    references=_KUTTA_REF + _HNW,
    c=(0, _F(1, 3), _F(2, 3), 1),
    a=((), (_F(1, 3),), (_F(-1, 3), 1), (1, -1, 1)),
    b=(_F(1, 8), _F(3, 8), _F(3, 8), _F(1, 8)))

#: Heun--Euler 2(1) pair: Heun's method propagated, Euler embedded
#: (error_order 1).  Hermite dense output of order 2.
#:
#: References
#: ----------
#: K. Heun, "Neue Methoden zur approximativen Integration der
#: Differentialgleichungen einer unabhaengigen Veraenderlichen",
#: Zeitschrift fuer Mathematik und Physik 45, 23-38, 1900.
HEUN_EULER = ButcherTableau(
    name="heun_euler", order=2, error_order=1, dense_order=2, fsal=False,
    references=_HEUN_REF + _HNW,
    c=(0, 1), a=((), (1,)), b=(_F(1, 2), _F(1, 2)),
    b_err=(_F(-1, 2), _F(1, 2)))   # b_hat = (1, 0): Euler

#: Bogacki--Shampine 3(2) pair (FSAL), propagating the 3rd-order solution;
#: dense output is SciPy RK23's cubic (order 3).
#:
#: References
#: ----------
#: P. Bogacki, L. F. Shampine, "A 3(2) pair of Runge-Kutta formulas",
#: Applied Mathematics Letters 2(4), 321-325, 1989.
BOSH3 = ButcherTableau(
    name="bosh3", order=3, error_order=2, dense_order=3, fsal=True,
    references="P. Bogacki, L. F. Shampine, \"A 3(2) pair of Runge-Kutta "
               "formulas\", Applied Mathematics Letters 2(4), 321-325, 1989.",
    c=(0, _F(1, 2), _F(3, 4), 1),
    a=((), (_F(1, 2),), (0, _F(3, 4)), (_F(2, 9), _F(1, 3), _F(4, 9))),
    b=(_F(2, 9), _F(1, 3), _F(4, 9), 0),
    # b_hat = (7/24, 1/4, 1/3, 1/8)
    b_err=(_F(2, 9) - _F(7, 24), _F(1, 3) - _F(1, 4), _F(4, 9) - _F(1, 3), _F(-1, 8)),
    dense=((1, _F(-4, 3), _F(5, 9)),
           (0, 1, _F(-2, 3)),
           (0, _F(4, 3), _F(-8, 9)),
           (0, -1, 1)))

#: Runge--Kutta--Fehlberg 4(5).  Like the classic RKF45 code, the
#: **4th-order** solution is propagated (``order = 4``) and the difference to
#: Fehlberg's 5th-order solution estimates its local error
#: (``error_order = 4``; the embedded ``b_hat`` itself has order 5, see
#: ``embedded_order``).  Hermite dense output of order 3.
#:
#: References
#: ----------
#: E. Fehlberg, "Low-order classical Runge-Kutta formulas with stepsize
#: control and their application to some heat transfer problems",
#: NASA Technical Report R-315, 1969.
_RKF_B4 = (_F(25, 216), 0, _F(1408, 2565), _F(2197, 4104), _F(-1, 5), 0)
_RKF_B5 = (_F(16, 135), 0, _F(6656, 12825), _F(28561, 56430), _F(-9, 50), _F(2, 55))
RKF45 = ButcherTableau(
    name="rkf45", order=4, error_order=4, dense_order=3, fsal=False,
    references="E. Fehlberg, \"Low-order classical Runge-Kutta formulas with "
               "stepsize control and their application to some heat transfer "
               "problems\", NASA Technical Report R-315, 1969. " + _HNW,
    c=(0, _F(1, 4), _F(3, 8), _F(12, 13), 1, _F(1, 2)),
    a=((),
       (_F(1, 4),),
       (_F(3, 32), _F(9, 32)),
       (_F(1932, 2197), _F(-7200, 2197), _F(7296, 2197)),
       (_F(439, 216), -8, _F(3680, 513), _F(-845, 4104)),
       (_F(-8, 27), 2, _F(-3544, 2565), _F(1859, 4104), _F(-11, 40))),
    b=_RKF_B4,
    b_err=tuple(_F(x) - _F(y) for x, y in zip(_RKF_B4, _RKF_B5)),
    embedded_order=5)

#: Cash--Karp 5(4) pair, propagating the 5th-order solution.  Hermite dense
#: output of order 3.
#:
#: References
#: ----------
#: J. R. Cash, A. H. Karp, "A variable order Runge-Kutta method for initial
#: value problems with rapidly varying right-hand sides", ACM Transactions on
#: Mathematical Software 16(3), 201-222, 1990.
_CK_B5 = (_F(37, 378), 0, _F(250, 621), _F(125, 594), 0, _F(512, 1771))
_CK_B4 = (_F(2825, 27648), 0, _F(18575, 48384), _F(13525, 55296), _F(277, 14336),
          _F(1, 4))
CASH_KARP = ButcherTableau(
    name="cash_karp", order=5, error_order=4, dense_order=3, fsal=False,
    references="J. R. Cash, A. H. Karp, \"A variable order Runge-Kutta method "
               "for initial value problems with rapidly varying right-hand "
               "sides\", ACM Transactions on Mathematical Software 16(3), "
               "201-222, 1990.",
    c=(0, _F(1, 5), _F(3, 10), _F(3, 5), 1, _F(7, 8)),
    a=((),
       (_F(1, 5),),
       (_F(3, 40), _F(9, 40)),
       (_F(3, 10), _F(-9, 10), _F(6, 5)),
       (_F(-11, 54), _F(5, 2), _F(-70, 27), _F(35, 27)),
       (_F(1631, 55296), _F(175, 512), _F(575, 13824), _F(44275, 110592),
        _F(253, 4096))),
    b=_CK_B5,
    b_err=tuple(_F(x) - _F(y) for x, y in zip(_CK_B5, _CK_B4)))

#: Dormand--Prince 5(4) pair (FSAL), propagating the 5th-order solution, with
#: Shampine's 4th-order continuous extension (the one SciPy's RK45 uses).
#:
#: References
#: ----------
#: J. R. Dormand, P. J. Prince, "A family of embedded Runge-Kutta formulae",
#: Journal of Computational and Applied Mathematics 6(1), 19-26, 1980.
#: L. F. Shampine, "Some practical Runge-Kutta formulas", Mathematics of
#: Computation 46(173), 135-150, 1986.
_DP5_B = (_F(35, 384), 0, _F(500, 1113), _F(125, 192), _F(-2187, 6784), _F(11, 84), 0)
_DP5_BHAT = (_F(5179, 57600), 0, _F(7571, 16695), _F(393, 640), _F(-92097, 339200),
             _F(187, 2100), _F(1, 40))
DOPRI5 = ButcherTableau(
    name="dopri5", order=5, error_order=4, dense_order=4, fsal=True,
    references="J. R. Dormand, P. J. Prince, \"A family of embedded Runge-Kutta "
               "formulae\", Journal of Computational and Applied Mathematics "
               "6(1), 19-26, 1980. L. F. Shampine, \"Some practical Runge-Kutta "
               "formulas\", Mathematics of Computation 46(173), 135-150, 1986.",
    c=(0, _F(1, 5), _F(3, 10), _F(4, 5), _F(8, 9), 1, 1),
    a=((),
       (_F(1, 5),),
       (_F(3, 40), _F(9, 40)),
       (_F(44, 45), _F(-56, 15), _F(32, 9)),
       (_F(19372, 6561), _F(-25360, 2187), _F(64448, 6561), _F(-212, 729)),
       (_F(9017, 3168), _F(-355, 33), _F(46732, 5247), _F(49, 176), _F(-5103, 18656)),
       _DP5_B[:6]),
    b=_DP5_B,
    b_err=tuple(x - y for x, y in zip(_DP5_B, _DP5_BHAT)),
    dense=(
        (1, _F(-8048581381, 2820520608), _F(8663915743, 2820520608),
         _F(-12715105075, 11282082432)),
        (0, 0, 0, 0),
        (0, _F(131558114200, 32700410799), _F(-68118460800, 10900136933),
         _F(87487479700, 32700410799)),
        (0, _F(-1754552775, 470086768), _F(14199869525, 1410260304),
         _F(-10690763975, 1880347072)),
        (0, _F(127303824393, 49829197408), _F(-318862633887, 49829197408),
         _F(701980252875, 199316789632)),
        (0, _F(-282668133, 205662961), _F(2019193451, 616988883),
         _F(-1453857185, 822651844)),
        (0, _F(40617522, 29380423), _F(-110615467, 29380423),
         _F(69997945, 29380423))))

#: Tsitouras 5(4) pair (FSAL), propagating the 5th-order solution, with
#: Tsitouras' 4th-order interpolant ``b_i(theta)``.  The coefficients are
#: published as decimals; they are stored as ``Fraction(str)`` of those
#: decimals (``exact=False``: order conditions hold to ~1e-15).
#:
#: References
#: ----------
#: Ch. Tsitouras, "Runge-Kutta pairs of order 5(4) satisfying only the first
#: column simplifying assumption", Computers & Mathematics with Applications
#: 62(2), 770-775, 2011.
_TS_B = ("0.09646076681806523", "0.01", "0.4798896504144996", "1.379008574103742",
         "-3.290069515436081", "2.324710524099774", "0")
TSIT5 = ButcherTableau(
    name="tsit5", order=5, error_order=4, dense_order=4, fsal=True, exact=False,
    references="Ch. Tsitouras, \"Runge-Kutta pairs of order 5(4) satisfying only "
               "the first column simplifying assumption\", Computers & Mathematics "
               "with Applications 62(2), 770-775, 2011.",
    c=("0", "0.161", "0.327", "0.9", "0.9800255409045097", "1", "1"),
    a=((),
       ("0.161",),
       ("-0.008480655492356989", "0.335480655492357"),
       ("2.897153057105493", "-6.359448489975075", "4.3622954328695815"),
       ("5.325864828439257", "-11.748883564062828", "7.4955393428898365",
        "-0.09249506636175525"),
       ("5.86145544294642", "-12.92096931784711", "8.159367898576159",
        "-0.071584973281401", "-0.028269050394068383"),
       _TS_B[:6]),
    b=_TS_B,
    # Error weights as tabulated in OrdinaryDiffEq.jl (`btilde`) / diffrax
    # (`b_error`), last entry 1/66 exactly; b_hat = b - b_err is 4th order
    # (verified by the order conditions; the overall sign of an error estimate
    # does not affect its norm).
    b_err=("-0.00178001105222577714", "-0.0008164344596567469", "0.007880878010261995",
           "-0.1447110071732629", "0.5823571654525552", "-0.45808210592918697",
           _F(1, 66)),
    dense=(
        ("1", "-2.763706197274826", "2.9132554618219126", "-1.0530884977290216"),
        ("0", "0.13169999999999998", "-0.2234", "0.1017"),
        ("0", "3.9302962368947516", "-5.941033872131505", "2.490627285651253"),
        ("0", "-12.411077166933676", "30.33818863028232", "-16.548102889244902"),
        ("0", "37.50931341651104", "-88.1789048947664", "47.37952196281928"),
        ("0", "-27.896526289197286", "65.09189467479366", "-34.87065786149661"),
        ("0", "1.5", "-4", "2.5")))


# DOP853 data: the full-precision decimal strings of Hairer's dop853.f (as in
# SciPy's dop853_coefficients.py).  Sparse: {row: {column: value}} in SciPy's
# 16-slot layout (12 stages, slot 12 = f(t+h, y_new), slots 13-15 extra).
# E5 = b - b_hat where b_hat (not used on its own) has order 5; E3 = b - bhh with
# bhh of order 3.  SciPy combines them into an error of order 7.
_DOP853_E5_ORDER = 5
_DOP853_C = (
    '0.0',
    '0.526001519587677318785587544488e-01',
    '0.789002279381515978178381316732e-01',
    '0.118350341907227396726757197510',
    '0.281649658092772603273242802490',
    '0.333333333333333333333333333333',
    '0.25',
    '0.307692307692307692307692307692',
    '0.651282051282051282051282051282',
    '0.6',
    '0.857142857142857142857142857142',
    '1.0',
    '1.0',
    '0.1',
    '0.2',
    '0.777777777777777777777777777778',
)
_DOP853_A = {
    1: {
        0: '5.26001519587677318785587544488e-2',
    },
    2: {
        0: '1.97250569845378994544595329183e-2',
        1: '5.91751709536136983633785987549e-2',
    },
    3: {
        0: '2.95875854768068491816892993775e-2',
        2: '8.87627564304205475450678981324e-2',
    },
    4: {
        0: '2.41365134159266685502369798665e-1',
        2: '-8.84549479328286085344864962717e-1',
        3: '9.24834003261792003115737966543e-1',
    },
    5: {
        0: '3.7037037037037037037037037037e-2',
        3: '1.70828608729473871279604482173e-1',
        4: '1.25467687566822425016691814123e-1',
    },
    6: {
        0: '3.7109375e-2',
        3: '1.70252211019544039314978060272e-1',
        4: '6.02165389804559606850219397283e-2',
        5: '-1.7578125e-2',
    },
    7: {
        0: '3.70920001185047927108779319836e-2',
        3: '1.70383925712239993810214054705e-1',
        4: '1.07262030446373284651809199168e-1',
        5: '-1.53194377486244017527936158236e-2',
        6: '8.27378916381402288758473766002e-3',
    },
    8: {
        0: '6.24110958716075717114429577812e-1',
        3: '-3.36089262944694129406857109825',
        4: '-8.68219346841726006818189891453e-1',
        5: '2.75920996994467083049415600797e1',
        6: '2.01540675504778934086186788979e1',
        7: '-4.34898841810699588477366255144e1',
    },
    9: {
        0: '4.77662536438264365890433908527e-1',
        3: '-2.48811461997166764192642586468',
        4: '-5.90290826836842996371446475743e-1',
        5: '2.12300514481811942347288949897e1',
        6: '1.52792336328824235832596922938e1',
        7: '-3.32882109689848629194453265587e1',
        8: '-2.03312017085086261358222928593e-2',
    },
    10: {
        0: '-9.3714243008598732571704021658e-1',
        3: '5.18637242884406370830023853209',
        4: '1.09143734899672957818500254654',
        5: '-8.14978701074692612513997267357',
        6: '-1.85200656599969598641566180701e1',
        7: '2.27394870993505042818970056734e1',
        8: '2.49360555267965238987089396762',
        9: '-3.0467644718982195003823669022',
    },
    11: {
        0: '2.27331014751653820792359768449',
        3: '-1.05344954667372501984066689879e1',
        4: '-2.00087205822486249909675718444',
        5: '-1.79589318631187989172765950534e1',
        6: '2.79488845294199600508499808837e1',
        7: '-2.85899827713502369474065508674',
        8: '-8.87285693353062954433549289258',
        9: '1.23605671757943030647266201528e1',
        10: '6.43392746015763530355970484046e-1',
    },
    12: {
        0: '5.42937341165687622380535766363e-2',
        5: '4.45031289275240888144113950566',
        6: '1.89151789931450038304281599044',
        7: '-5.8012039600105847814672114227',
        8: '3.1116436695781989440891606237e-1',
        9: '-1.52160949662516078556178806805e-1',
        10: '2.01365400804030348374776537501e-1',
        11: '4.47106157277725905176885569043e-2',
    },
    13: {
        0: '5.61675022830479523392909219681e-2',
        6: '2.53500210216624811088794765333e-1',
        7: '-2.46239037470802489917441475441e-1',
        8: '-1.24191423263816360469010140626e-1',
        9: '1.5329179827876569731206322685e-1',
        10: '8.20105229563468988491666602057e-3',
        11: '7.56789766054569976138603589584e-3',
        12: '-8.298e-3',
    },
    14: {
        0: '3.18346481635021405060768473261e-2',
        5: '2.83009096723667755288322961402e-2',
        6: '5.35419883074385676223797384372e-2',
        7: '-5.49237485713909884646569340306e-2',
        10: '-1.08347328697249322858509316994e-4',
        11: '3.82571090835658412954920192323e-4',
        12: '-3.40465008687404560802977114492e-4',
        13: '1.41312443674632500278074618366e-1',
    },
    15: {
        0: '-4.28896301583791923408573538692e-1',
        5: '-4.69762141536116384314449447206',
        6: '7.68342119606259904184240953878',
        7: '4.06898981839711007970213554331',
        8: '3.56727187455281109270669543021e-1',
        12: '-1.39902416515901462129418009734e-3',
        13: '2.9475147891527723389556272149',
        14: '-9.15095847217987001081870187138',
    },
}
_DOP853_BHH = {
    0: '0.244094488188976377952755905512',
    8: '0.733846688281611857341361741547',
    11: '0.220588235294117647058823529412e-1',
}
_DOP853_E5 = {
    0: '0.1312004499419488073250102996e-1',
    5: '-0.1225156446376204440720569753e+1',
    6: '-0.4957589496572501915214079952',
    7: '0.1664377182454986536961530415e+1',
    8: '-0.3503288487499736816886487290',
    9: '0.3341791187130174790297318841',
    10: '0.8192320648511571246570742613e-1',
    11: '-0.2235530786388629525884427845e-1',
}
_DOP853_D = {
    0: {
        0: '-0.84289382761090128651353491142e+1',
        5: '0.56671495351937776962531783590',
        6: '-0.30689499459498916912797304727e+1',
        7: '0.23846676565120698287728149680e+1',
        8: '0.21170345824450282767155149946e+1',
        9: '-0.87139158377797299206789907490',
        10: '0.22404374302607882758541771650e+1',
        11: '0.63157877876946881815570249290',
        12: '-0.88990336451333310820698117400e-1',
        13: '0.18148505520854727256656404962e+2',
        14: '-0.91946323924783554000451984436e+1',
        15: '-0.44360363875948939664310572000e+1',
    },
    1: {
        0: '0.10427508642579134603413151009e+2',
        5: '0.24228349177525818288430175319e+3',
        6: '0.16520045171727028198505394887e+3',
        7: '-0.37454675472269020279518312152e+3',
        8: '-0.22113666853125306036270938578e+2',
        9: '0.77334326684722638389603898808e+1',
        10: '-0.30674084731089398182061213626e+2',
        11: '-0.93321305264302278729567221706e+1',
        12: '0.15697238121770843886131091075e+2',
        13: '-0.31139403219565177677282850411e+2',
        14: '-0.93529243588444783865713862664e+1',
        15: '0.35816841486394083752465898540e+2',
    },
    2: {
        0: '0.19985053242002433820987653617e+2',
        5: '-0.38703730874935176555105901742e+3',
        6: '-0.18917813819516756882830838328e+3',
        7: '0.52780815920542364900561016686e+3',
        8: '-0.11573902539959630126141871134e+2',
        9: '0.68812326946963000169666922661e+1',
        10: '-0.10006050966910838403183860980e+1',
        11: '0.77771377980534432092869265740',
        12: '-0.27782057523535084065932004339e+1',
        13: '-0.60196695231264120758267380846e+2',
        14: '0.84320405506677161018159903784e+2',
        15: '0.11992291136182789328035130030e+2',
    },
    3: {
        0: '-0.25693933462703749003312586129e+2',
        5: '-0.15418974869023643374053993627e+3',
        6: '-0.23152937917604549567536039109e+3',
        7: '0.35763911791061412378285349910e+3',
        8: '0.93405324183624310003907691704e+2',
        9: '-0.37458323136451633156875139351e+2',
        10: '0.10409964950896230045147246184e+3',
        11: '0.29840293426660503123344363579e+2',
        12: '-0.43533456590011143754432175058e+2',
        13: '0.96324553959188282948394950600e+2',
        14: '-0.39177261675615439165231486172e+2',
        15: '-0.14972683625798562581422125276e+3',
    },
}


def _dop853():
    n = 12
    zero = "0"

    def dense_row(i, length):
        row = _DOP853_A.get(i, {})
        return tuple(row.get(j, zero) for j in range(length))

    c = tuple(_DOP853_C[:n])
    a = tuple(dense_row(i, i) for i in range(n))
    b = dense_row(n, n)
    b_exact = _vec(b)
    bhh = tuple(_fr(_DOP853_BHH.get(j, zero)) for j in range(n))
    e3 = tuple(x - y for x, y in zip(b_exact, bhh))
    e5 = tuple(_DOP853_E5.get(j, zero) for j in range(n))
    extra_c = tuple(_DOP853_C[n + 1:])
    extra_a = tuple(dense_row(i, i) for i in range(n + 1, 16))
    D = [tuple(_fr(_DOP853_D[r].get(j, zero)) for j in range(16)) for r in range(4)]
    B_slots = b_exact + (Fraction(0),) * 4
    P = _dop853_P(B_slots, n, D)
    return ButcherTableau(
        name="dop853", order=8, error_order=7, dense_order=7, fsal=False, exact=False,
        references="J. R. Dormand, P. J. Prince, \"High order embedded Runge-Kutta "
                   "formulae\", Journal of Computational and Applied Mathematics "
                   "7(1), 67-75, 1981. " + _HNW + " (Sec. II.10; code DOP853).",
        c=c, a=a, b=b, b_err=e5, b_err2=e3, extra_c=extra_c, extra_a=extra_a,
        dense=P, embedded_order=_DOP853_E5_ORDER)


#: Dormand--Prince 8(5,3) method "DOP853" (Hairer's code; SciPy's DOP853):
#: order 8, 12 stages (not FSAL), error estimators ``b_err = E5`` (Hairer's
#: 5th-order based estimate) and ``b_err2 = E3 = b - bhh`` (3rd order),
#: combined as in SciPy (``error_order = 7``).  Dense output of order 7
#: needs three extra stages (slots 13-15).  Decimal coefficients
#: (``exact=False``).
#:
#: References
#: ----------
#: J. R. Dormand, P. J. Prince, "High order embedded Runge-Kutta formulae",
#: Journal of Computational and Applied Mathematics 7(1), 67-75, 1981.
#: E. Hairer, S. P. Norsett, G. Wanner, "Solving Ordinary Differential
#: Equations I: Nonstiff Problems", 2nd ed., Springer, 1993, Sec. II.10.
DOP853 = _dop853()

#: Registry of all methods by name.
METHODS = {t.name: t for t in (EULER, MIDPOINT, HEUN, RALSTON, RK4, RK38, HEUN_EULER,
                               BOSH3, RKF45, CASH_KARP, DOPRI5, TSIT5, DOP853)}


def get_tableau(method: Union[str, ButcherTableau]) -> ButcherTableau:
    """Look a method up by name (or pass a :class:`ButcherTableau` through).

    Parameters
    ----------
    method : str or ButcherTableau
        One of the keys of :data:`METHODS` (case-insensitive), or a tableau.

    Returns
    -------
    ButcherTableau

    Raises
    ------
    ValueError
        For an unknown name; the message lists the valid names.
    TypeError
        If `method` is neither a string nor a tableau.
    """
    if isinstance(method, ButcherTableau):
        return method
    if not isinstance(method, str):
        raise TypeError("`method` must be a method name (str) or a ButcherTableau; "
                        f"got {type(method).__name__}.")
    tab = METHODS.get(method, METHODS.get(method.strip().lower()))
    if tab is None:
        names = ", ".join(repr(n) for n in sorted(METHODS))
        raise ValueError(f"`method` must be one of {names}; got {method!r}.")
    return tab
