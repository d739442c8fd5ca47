"""Continuous extensions written in the common ``P`` form.

Every dense output is ``y(t + theta h) = y + h sum_k K_k sum_j P[k, j]
theta**(j+1)`` over the tableau's slots; these functions build ``P``
exactly for interpolants that are published in another form.
"""
from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

Row = tuple[Fraction, ...]


def hermite_P(b_slots: Sequence[Fraction], f1_index: int) -> tuple[Row, ...]:
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


def dop853_P(b_slots, f1_index, D_rows):
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
