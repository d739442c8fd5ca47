"""The Gaussian log-likelihood of observations decoded by a one-hidden-layer ReLU
network, as one autograd primitive with compiled kernels.

``decoder_log_likelihood(net, theta, Z, X, mask, std)`` decodes the latent
states ``Z`` (T, B, n_in) with ``net`` = ``Chain(Dense(n_in, H), ReLU(),
Dense(H, n_out))`` and returns, per sequence ``b``, ``sum_t mask[t, b] log
N(X[t, b] | net(Z[t, b]), std^2 I)``: the likelihood term of a latent ODE's
ELBO.

Written with autograd-NumPy it is a graph of a dozen primitives over all
``T x B`` points, each a pass over arrays of ``T B H`` floats (16 MB for 1000
sequences of 100 times): about 0.1 s per gradient, more than the latent
ODE's solve.  Here one Numba loop over the points gives the value, and one
more the gradient: each point's hidden layer (``H`` floats) is recomputed and
stays in cache, the VJP is written out (``g = w (x - mean) / std^2`` with
``w = mask * cotangent``; ``dW2 = h^T g``, ``db2 = g``; ``dh = (g W2^T) *
(h > 0)``; ``dW1 = z^T dh``, ``db1 = dh``; ``dz = dh W1^T``), and points that
are not observed are skipped.  Checked against the autograd-NumPy
composition and central differences in the tests.
"""
import math
from typing import NamedTuple

import numba
import numpy as np
from autograd.extend import defvjp_argnums, primitive

from ._stash import keep, take
from .layers import Dense, ReLU, TimeDense

_LOG_2PI = math.log(2.0 * math.pi)

#: Reassociation lets the sums over a layer vectorise; no 'nnan'/'ninf'.
_OPTS = {"cache": True, "_nrt": True, "error_model": "numpy",
         "fastmath": {"arcp", "contract", "nsz", "reassoc"}}


def check_decoder(net):
    """Raise a TypeError unless ``net`` is ``Chain(Dense, ReLU, Dense)``."""
    layers = list(net.layers)
    ok = (len(layers) == 3 and type(layers[0]) is Dense and isinstance(layers[1], ReLU)
          and type(layers[2]) is Dense)
    if not ok or any(isinstance(layer, TimeDense) for layer in layers):
        raise TypeError(f"`net` of decoder_log_likelihood must be Chain(Dense(n_in, H), "
                        f"ReLU(), Dense(H, n_out)) (Dense and ReLU layers, one hidden "
                        f"layer); got {net!r}.")


#: Points per block of the kernels: a block's hidden layer (H x 256 floats)
#: stays in cache, and every loop runs over the points of a block
#: (contiguous, so it vectorises).
BLOCK = 256


@numba.njit(**_OPTS)
def _block_forward(W1, b1, W2, b2, Zt, Xt, n0, nb, std, Hb, R):
    """Points ``n0:n0+nb``: hidden layer ``Hb`` (H, nb) and scaled residuals
    ``R`` (D, nb) ``= (x - mean) / std``."""
    L, Hd = W1.shape
    for j in range(Hd):
        h = Hb[j]
        for k in range(nb):
            h[k] = b1[j]
        for i in range(L):
            w = W1[i, j]
            z = Zt[i, n0:n0 + nb]     # views: indices from range() vectorise
            for k in range(nb):
                h[k] += w * z[k]
        for k in range(nb):
            h[k] = max(h[k], 0.0)
    for d in range(b2.size):
        r = R[d]
        for k in range(nb):
            r[k] = b2[d]
        for j in range(Hd):
            w = W2[j, d]
            h = Hb[j]
            for k in range(nb):
                r[k] += w * h[k]
        x = Xt[d, n0:n0 + nb]
        for k in range(nb):
            r[k] = (x[k] - r[k]) / std


@numba.njit(**_OPTS)
def _value(W1, b1, W2, b2, Zt, Xt, m, seq, std, const, out):
    """``out[seq[n]] += m[n] (-|r_n|^2 / 2 - const)`` over the points ``n``."""
    N = Zt.shape[1]
    Hb = np.empty((b1.size, BLOCK))
    R = np.empty((b2.size, BLOCK))
    for n0 in range(0, N, BLOCK):
        nb = min(BLOCK, N - n0)
        _block_forward(W1, b1, W2, b2, Zt, Xt, n0, nb, std, Hb, R)
        for k in range(nb):
            rr = 0.0
            for d in range(b2.size):
                rr += R[d, k] * R[d, k]
            n = n0 + k
            out[seq[n]] += m[n] * (-0.5 * rr - const)


@numba.njit(**_OPTS)
def _gradient(W1, b1, W2, b2, Zt, Xt, w, std, dW1, db1, dW2, db2, dZt):
    """Adds ``sum_n w[n] d(-|r_n|^2 / 2) / d(W1, b1, W2, b2)`` and writes ``dZt``
    (the same per point, with respect to its latent state)."""
    N = Zt.shape[1]
    L, Hd = W1.shape
    D = b2.size
    Hb = np.empty((Hd, BLOCK))
    G = np.empty((D, BLOCK))
    dH = np.empty((Hd, BLOCK))
    for n0 in range(0, N, BLOCK):
        nb = min(BLOCK, N - n0)
        _block_forward(W1, b1, W2, b2, Zt, Xt, n0, nb, std, Hb, G)
        wb = w[n0:n0 + nb]
        for d in range(D):
            g = G[d]
            acc = 0.0
            for k in range(nb):
                g[k] *= wb[k] / std          # d value / d mean
                acc += g[k]
            db2[d] += acc
        for j in range(Hd):
            h = Hb[j]
            dh = dH[j]
            for k in range(nb):
                dh[k] = 0.0
            for d in range(D):
                g = G[d]
                acc = 0.0
                for k in range(nb):
                    acc += h[k] * g[k]
                dW2[j, d] += acc
                wjd = W2[j, d]
                for k in range(nb):
                    dh[k] += wjd * g[k]
            acc = 0.0
            for k in range(nb):
                dh[k] = dh[k] if h[k] > 0.0 else 0.0
                acc += dh[k]
            db1[j] += acc
        for i in range(L):
            dz = dZt[i, n0:n0 + nb]
            z = Zt[i, n0:n0 + nb]
            for k in range(nb):
                dz[k] = 0.0
            for j in range(Hd):
                dh = dH[j]
                acc = 0.0
                wij = W1[i, j]
                for k in range(nb):
                    acc += z[k] * dh[k]
                    dz[k] += wij * dh[k]
                dW1[i, j] += acc


def _blocks(net, theta):
    """``W1, b1, W2, b2`` (contiguous copies) from the decoder's parameters."""
    th = np.asarray(theta, dtype=np.float64)
    (_, o_w1, s_w1), (_, o_b1, s_b1) = net.layout[0]
    (_, o_w2, s_w2), (_, o_b2, s_b2) = net.layout[2]
    W1 = th[o_w1:o_w1 + s_w1[0] * s_w1[1]].reshape(s_w1)
    W2 = th[o_w2:o_w2 + s_w2[0] * s_w2[1]].reshape(s_w2)
    return W1.copy(), th[o_b1:o_b1 + s_b1[0]].copy(), W2.copy(), th[o_b2:o_b2 + s_b2[0]].copy()


class _Points(NamedTuple):
    """The observed points, feature-major: ``Zt`` (n_in, N), ``Xt`` (n_out, N),
    their weights ``m`` (N,), sequences ``seq`` (N,) and rows ``rows`` (N,) in
    the time-major flattening of (T, B)."""

    Zt: np.ndarray
    Xt: np.ndarray
    m: np.ndarray
    seq: np.ndarray
    rows: np.ndarray


@numba.njit(**_OPTS)
def _scatter_columns(At, rows, out):
    """``out[rows[n]] = At[:, n]`` (``out`` zero elsewhere): the inverse of the gather
    of :func:`_gather_points`."""
    out[:] = 0.0
    for n in range(rows.size):
        r = rows[n]
        for i in range(At.shape[0]):
            out[r, i] = At[i, n]


@numba.njit(**_OPTS)
def _gather_points(Z, X, mask, Zt, Xt, mp, seq, rows):
    """The points ``(t, b)`` with ``mask[t, b] != 0`` in time-major order: their
    latent states and observations as columns of ``Zt``, ``Xt``, their
    weights, sequences ``b`` and rows ``t B + b`` (one pass; the inputs may
    be strided views)."""
    T, B = mask.shape
    c = 0
    for j in range(T):
        for b in range(B):
            w = mask[j, b]
            if w != 0.0:
                for i in range(Z.shape[2]):
                    Zt[i, c] = Z[j, b, i]
                for i in range(X.shape[2]):
                    Xt[i, c] = X[j, b, i]
                mp[c] = w
                seq[c] = b
                rows[c] = j * B + b
                c += 1


def _points(Z, X, mask):
    m = np.asarray(mask, dtype=np.float64)
    N = int(np.count_nonzero(m))
    Z, X = np.asarray(Z, dtype=np.float64), np.asarray(X, dtype=np.float64)
    p = _Points(np.empty((Z.shape[2], N)), np.empty((X.shape[2], N)), np.empty(N),
                np.empty(N, dtype=np.int64), np.empty(N, dtype=np.int64))
    _gather_points(Z, X, m, *p)
    return p


@primitive
def decoder_log_likelihood(net, theta, Z, X, mask, std):
    """Per sequence, the Gaussian log-likelihood of ``X`` given the decoded ``Z``.

    Parameters
    ----------
    net : nodekit.nn.Chain
        The decoder ``Chain(Dense(n_in, H), ReLU(), Dense(H, n_out))``.
    theta : array, shape (net.n_params,)
        Its parameters (differentiable).
    Z : array, shape (T, B, n_in)
        Latent states, time-major (differentiable).
    X : ndarray, shape (T, B, n_out)
        Observations (data); read only where ``mask`` is not 0.
    mask : ndarray, shape (T, B)
        1 where observed, else 0 (data; other values weight the points).
    std : float
        The observation noise.

    Returns
    -------
    ndarray, shape (B,)
        ``sum_t mask[t, b] log N(X[t, b] | net(Z[t, b]), std^2 I)``.

    Raises
    ------
    TypeError
        If ``net`` is not a Dense-ReLU-Dense chain.
    """
    check_decoder(net)
    p = _points(Z, X, mask)
    out = np.zeros(np.shape(mask)[1])
    const = net.n_out * (math.log(std) + 0.5 * _LOG_2PI)
    _value(*_blocks(net, theta), p.Zt, p.Xt, p.m, p.seq, float(std), const, out)
    return keep(out, p)


def _vjp(argnums, ans, args, kwargs):
    net, theta, Z, X, mask, std = args

    p = take(ans)
    if p is None:    # not the array decoder_log_likelihood returned
        p = _points(Z, X, mask)

    def vjp(g):
        w = p.m * np.asarray(g, dtype=np.float64)[p.seq]
        blocks = _blocks(net, theta)
        dW1, db1, dW2, db2 = (np.zeros_like(a) for a in blocks)
        dZt = np.empty_like(p.Zt)
        _gradient(*blocks, p.Zt, p.Xt, w, float(std), dW1, db1, dW2, db2, dZt)
        grads = {1: np.concatenate([dW1.ravel(), db1, dW2.ravel(), db2])}
        if 2 in argnums:
            dZ = np.empty((np.size(mask), np.shape(Z)[-1]))
            _scatter_columns(dZt, p.rows, dZ)
            grads[2] = dZ.reshape(np.shape(Z))
        return tuple(grads[i] for i in argnums)

    return vjp


defvjp_argnums(decoder_log_likelihood, _vjp)

__all__ = ["check_decoder", "decoder_log_likelihood"]
