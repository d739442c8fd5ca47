"""Butcher's rooted trees and the order conditions of Runge--Kutta methods.

A rooted tree is a canonical nested tuple: the sorted tuple of its children's
canonical forms; the single vertex is ``()``.  A method with weights ``w``
has order ``p`` when ``sum_i w_i Phi_i(t) = 1 / gamma(t)`` for every tree
with at most ``p`` vertices (Butcher's theory, as presented in Hairer,
Norsett and Wanner, Sec. II.2).  The residuals are evaluated in exact
:class:`fractions.Fraction` arithmetic or in floats.
"""
from __future__ import annotations

import functools
from fractions import Fraction
from typing import TYPE_CHECKING

from .core import _fr

if TYPE_CHECKING:
    from .core import ButcherTableau

__all__ = [
    "dense_order_condition_residuals",
    "embedded_order_condition_residuals",
    "order_condition_residuals",
    "rooted_trees",
    "tree_density",
    "tree_order",
    "tree_symbol",
]


def _graft_all(tree):
    """All trees obtained by attaching one new leaf to some vertex of `tree`."""
    out = [tuple(sorted(tree + ((),)))]  # new leaf at the root
    for i, child in enumerate(tree):
        rest = tree[:i] + tree[i + 1:]
        for new_child in _graft_all(child):
            out.append(tuple(sorted(rest + (new_child,))))
    return out


@functools.cache
def rooted_trees(order: int) -> tuple[tuple, ...]:
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


def _weights_residuals(A, c, weights, max_order, rhs, one, zero, single=None):
    """Residuals ``sum_i w_i Phi_i(t) - rhs(t)`` for all trees up to max_order.

    `A` is a square lower-triangular list-of-lists (its diagonal is zero for
    explicit methods and ``gamma`` for diagonally implicit ones), `c` its
    nodes.  ``Phi_i`` of a tree with
    children ``t_1..t_m`` is ``prod_j (A Phi(t_j))_i`` (with ``A Phi(τ) = c``).
    With `single` (a lower-triangular matrix, diagonal included), a tree with
    exactly one child uses ``(single Phi(t_1))_i`` instead: the elementary
    weights of Rosenbrock methods, ``single = beta = alpha + Gamma``.
    """
    n = len(c)
    phi_cache = {(): [one] * n}

    def a_phi(t):  # (A Phi(t))_i
        p = phi(t)
        return [sum((A[i][k] * p[k] for k in range(i + 1) if A[i][k] != 0), zero)
                for i in range(n)]

    def single_phi(t):  # (single Phi(t))_i, diagonal included
        p = phi(t)
        return [sum((single[i][k] * p[k] for k in range(i + 1) if single[i][k] != 0),
                    zero) for i in range(n)]

    ap_cache = {}

    def phi(t):
        if t in phi_cache:
            return phi_cache[t]
        if single is not None and len(t) == 1:
            out = single_phi(t[0])
        else:
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


def order_condition_residuals(tableau: ButcherTableau, max_order: int,
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


def embedded_order_condition_residuals(tableau: ButcherTableau,
                                       max_order: int | None = None,
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


def dense_order_condition_residuals(tableau: ButcherTableau, theta,
                                    max_order: int | None = None,
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
