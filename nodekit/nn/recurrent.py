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
is analytic (backpropagation through time), checked against the
autograd-NumPy cell and central differences in the tests.  ``X`` and ``mask``
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
def _forward(X, mask, WxT, WhT, b, reverse, Hnew, Hprev):
    """``WxT``, ``WhT``: the transposed weights (rows contiguous per output)."""
    B, T, k = X.shape
    H = b.size
    h = np.zeros(H)
    for r in range(B):
        h[:] = 0.0
        for step in range(T):
            j = T - 1 - step if reverse else step
            for i in range(H):
                Hprev[r, j, i] = h[i]
            for i in range(H):
                a = b[i]
                for q in range(k):
                    a += X[r, j, q] * WxT[i, q]
                for q in range(H):
                    a += h[q] * WhT[i, q]
                Hnew[r, j, i] = math.tanh(a)
            if mask[r, j]:
                for i in range(H):
                    h[i] = Hnew[r, j, i]


@numba.njit(**_OPTS)
def _backward(X, mask, Wx, Wh, reverse, Hnew, Hprev, G, dWx, dWh, db):
    B, T, k = X.shape
    H = Wh.shape[0]
    gh = np.zeros(H)
    da = np.zeros(H)
    for r in range(B):
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
                    dWx[q, i] += X[r, j, q] * da[i]
            for q in range(H):
                hq = Hprev[r, j, q]
                s = 0.0
                for i in range(H):
                    dWh[q, i] += hq * da[i]
                    s += da[i] * Wh[q, i]
                gh[q] += s


def _run(Wx, Wh, b, X, mask, reverse):
    X = np.ascontiguousarray(X, dtype=np.float64)
    mask = np.ascontiguousarray(mask, dtype=np.bool_)
    B, T, _ = X.shape
    H = np.shape(b)[0]
    Hnew, Hprev = np.empty((B, T, H)), np.empty((B, T, H))
    _forward(X, mask, np.ascontiguousarray(np.transpose(Wx), dtype=np.float64),
             np.ascontiguousarray(np.transpose(Wh), dtype=np.float64),
             np.ascontiguousarray(b, dtype=np.float64), bool(reverse), Hnew, Hprev)
    return Hnew, Hprev


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
    return _run(Wx, Wh, b, X, mask, reverse)[0]


def _vjp(argnums, ans, args, kwargs):
    Wx, Wh, b, X, mask = args[:5]
    reverse = kwargs.get("reverse", args[5] if len(args) > 5 else False)

    def vjp(G):
        Hnew, Hprev = _run(Wx, Wh, b, X, mask, reverse)
        dWx, dWh, db = np.zeros(np.shape(Wx)), np.zeros(np.shape(Wh)), np.zeros(np.shape(b))
        _backward(np.ascontiguousarray(X, dtype=np.float64),
                  np.ascontiguousarray(mask, dtype=np.bool_),
                  np.ascontiguousarray(Wx, dtype=np.float64),
                  np.ascontiguousarray(Wh, dtype=np.float64), bool(reverse), Hnew, Hprev,
                  np.ascontiguousarray(G, dtype=np.float64), dWx, dWh, db)
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
