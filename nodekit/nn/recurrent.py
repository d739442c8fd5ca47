"""A compiled Elman RNN over a masked batch of sequences, as one autograd primitive.

``elman_sequence(Wx, Wh, b, X, mask, reverse)`` runs the cell
``h' = tanh(x Wx + h Wh + b)`` over the time axis of ``X`` (B, T, k) from a zero
state, forwards or backwards, and returns the new state computed at every time,
``Hnew`` (B, T, H).  Row ``r`` carries ``Hnew[r, j]`` on only where
``mask[r, j]`` is True; elsewhere its state passes through unchanged.  This is
how a batch of sequences with their own observation times is run on the union
of the times (see :mod:`nodekit.models.latent`).

The forward loop and its reverse sweep are Numba kernels: one call per
sequence run, instead of several autograd primitives per time step (which
dominated the encoder's cost).  The VJP with respect to ``Wx``, ``Wh``, ``b``
is analytic (backpropagation through time, reading the states back from
the output), checked against the autograd-NumPy cell and central
differences in the tests.  ``X`` and ``mask``
are data (not differentiated).
"""
import math

import numba
import numpy as np
from autograd.extend import defvjp_argnums, primitive

#: Reassociation lets the dot products vectorise; no 'nnan'/'ninf', so
#: non-finite values still propagate.
_OPTS = {"cache": True, "error_model": "numpy",
         "fastmath": {"arcp", "contract", "nsz", "reassoc"}}


@numba.njit(**_OPTS)
def _forward(X, mask, Wx, Wh, b, reverse, Hnew):
    B, T, k = X.shape
    H = b.size
    h = np.zeros(H)
    acc = np.empty(H)
    for r in range(B):
        h[:] = 0.0
        for step in range(T):
            j = T - 1 - step if reverse else step
            for i in range(H):
                acc[i] = b[i]
            for q in range(k):          # axpy form: contiguous rows of Wx, Wh
                xq = X[r, j, q]
                for i in range(H):
                    acc[i] += xq * Wx[q, i]
            for q in range(H):
                hq = h[q]
                for i in range(H):
                    acc[i] += hq * Wh[q, i]
            for i in range(H):
                Hnew[r, j, i] = math.tanh(acc[i])
            if mask[r, j]:
                for i in range(H):
                    h[i] = Hnew[r, j, i]


@numba.njit(**_OPTS)
def _backward(X, mask, Wh, reverse, Hnew, G, dWx, dWh, db):
    """Reverse sweep; the state carried into each time is read back from ``Hnew``."""
    B, T, k = X.shape
    H = Wh.shape[0]
    gh = np.zeros(H)
    da = np.zeros(H)
    prev = np.empty(T, dtype=np.int64)   # per time: the time whose state was carried in
    for r in range(B):
        last = -1
        for step in range(T):
            j = T - 1 - step if reverse else step
            prev[j] = last
            if mask[r, j]:
                last = j
        gh[:] = 0.0
        for step in range(T - 1, -1, -1):
            j = T - 1 - step if reverse else step
            carried = mask[r, j]
            for i in range(H):
                g = G[r, j, i] + (gh[i] if carried else 0.0)
                y = Hnew[r, j, i]
                da[i] = g * (1.0 - y * y)
            if carried:
                gh[:] = 0.0         # the state before this step reached it only through da
            for i in range(H):
                db[i] += da[i]
            for q in range(k):
                xq = X[r, j, q]
                for i in range(H):
                    dWx[q, i] += xq * da[i]
            p = prev[j]
            for q in range(H):
                hq = Hnew[r, p, q] if p >= 0 else 0.0
                s = 0.0
                for i in range(H):
                    dWh[q, i] += hq * da[i]
                    s += da[i] * Wh[q, i]
                gh[q] += s


def _contiguous(*arrays):
    return tuple(np.ascontiguousarray(a, dtype=np.float64) for a in arrays)


@primitive
def elman_sequence(Wx, Wh, b, X, mask, reverse=False):
    """New states of an Elman RNN at every time of a masked batch.

    Parameters
    ----------
    Wx : array, shape (k, H)
    Wh : array, shape (H, H)
    b : array, shape (H,)
    X : ndarray, shape (B, T, k)
        Inputs (data: not differentiated).
    mask : ndarray of bool, shape (B, T)
        Where each row updates its carried state.
    reverse : bool, default False
        Run from the last time to the first.

    Returns
    -------
    ndarray, shape (B, T, H)
        ``Hnew[r, j] = tanh(X[r, j] Wx + h Wh + b)`` with ``h`` the state row
        ``r`` carries into time ``j`` (zero before its first update).
        Differentiable (autograd) in ``Wx``, ``Wh`` and ``b``.
    """
    X, Wx, Wh, b = _contiguous(X, Wx, Wh, b)
    mask = np.ascontiguousarray(mask, dtype=np.bool_)
    Hnew = np.empty(X.shape[:2] + (b.size,))
    _forward(X, mask, Wx, Wh, b, bool(reverse), Hnew)
    return Hnew


def _vjp(argnums, ans, args, kwargs):
    Wx, Wh, b, X, mask = args[:5]
    reverse = kwargs.get("reverse", args[5] if len(args) > 5 else False)

    def vjp(G):
        dWx, dWh, db = np.zeros(np.shape(Wx)), np.zeros(np.shape(Wh)), np.zeros(np.shape(b))
        Xc, Whc, ansc, Gc = _contiguous(X, Wh, ans, G)
        _backward(Xc, np.ascontiguousarray(mask, dtype=np.bool_), Whc, bool(reverse), ansc,
                  Gc, dWx, dWh, db)
        grads = {0: dWx, 1: dWh, 2: db}
        return tuple(grads[i] for i in argnums)

    return vjp


defvjp_argnums(elman_sequence, _vjp)


def last_update(mask, reverse=False):
    """Per row, the index of the time of its last update (first True if ``reverse``)."""
    mask = np.asarray(mask, dtype=bool)
    if reverse:
        return np.argmax(mask, axis=1)
    return mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1)


__all__ = ["elman_sequence", "last_update"]
