"""A compiled Elman RNN over a masked batch of sequences, as autograd primitives.

``elman_sequence(Wx, Wh, b, X, mask, reverse)`` runs the cell
``h' = tanh(x Wx + h Wh + b)`` over the time axis of ``X`` (B, T, k) from a zero
state, forwards or backwards, and returns the new state computed at every time,
``Hnew`` (B, T, H).  Row ``r`` carries ``Hnew[r, j]`` on only where
``mask[r, j]`` is True; elsewhere its state passes through unchanged.  This is
how a batch of sequences with their own observation times is run on the union
of the times (see :mod:`nodekit.models.latent`).  ``elman_final(...)`` runs the
same and returns only the state each row carries at the end (B, H): all an
encoder needs, without a (B, T, H) array to return and to receive a
cotangent for.

Both are Numba kernels over the whole batch per time: one matrix product
for the input terms of all times, then per time one ``(B, H) x (H, H)``
product (BLAS) and a loop applying ``tanh`` (the vectorisable one of
:mod:`nodekit.nn.fastmath`) and the masked state update.  The states are
kept time-major (T, B, H), so each time's block is contiguous.  The VJP with
respect to ``Wx``, ``Wh``, ``b`` is analytic (backpropagation through time,
reading the states back from the forward pass: the output of
``elman_sequence``; for ``elman_final`` the states it keeps beside its output
for as long as the output lives), checked against the autograd-NumPy cell
and central differences in the tests.  ``X`` and ``mask`` are data (not
differentiated).

The kernels call :func:`nodekit.nn.fastmath._tanh`; Numba's disk cache of this
module does not notice a change there (bump a kernel here when editing it).
"""
import numba
import numpy as np
from autograd.extend import defvjp, defvjp_argnums, primitive

from ._stash import keep, take
from .fastmath import _tanh

#: Reassociation lets the dot products vectorise; no 'nnan'/'ninf', so
#: non-finite values still propagate.
_OPTS = {"cache": True, "_nrt": True, "error_model": "numpy",
         "fastmath": {"arcp", "contract", "nsz", "reassoc"}}


@numba.njit(**_OPTS)
def _all(flags):
    for f in flags:
        if not f:
            return False
    return True


@numba.njit(**_OPTS)
def _forward(X, mask, Wxb, Wh, reverse, H):
    """New states ``H`` (T, B, Hd) of the masked cell over ``X`` (T, B, k + 1),
    ``mask`` (T, B), all time-major; returns the final carried states (B, Hd).

    The last input column is ones and the last row of ``Wxb`` the bias, so one
    matrix product gives ``x Wx + b`` at every time.  At a time where every
    row is updated, the new states are the carried ones: the loop is over the
    flat block and the next product reads the block itself (no copy)."""
    T, B, k1 = X.shape
    Hd = Wh.shape[0]
    own = np.zeros((B, Hd))        # the carried states, after a partial update
    h = own                        # the state each row carries
    h_own = True
    hW = np.empty((B, Hd))
    hW_f = hW.reshape(B * Hd)
    for step in range(T):
        j = T - 1 - step if reverse else step
        np.dot(h, Wh, hW)
        Hj = H[j]
        np.dot(X[j], Wxb, Hj)
        if _all(mask[j]):
            Hj_f = Hj.reshape(B * Hd)
            for q in range(B * Hd):
                Hj_f[q] = _tanh(Hj_f[q] + hW_f[q])
            h = Hj
            h_own = False
        else:
            if not h_own:
                own[:, :] = h
                h = own
                h_own = True
            for r in range(B):
                carried = mask[j, r]
                for i in range(Hd):
                    y = _tanh(Hj[r, i] + hW[r, i])
                    Hj[r, i] = y
                    h[r, i] = y if carried else h[r, i]
    return h.copy()


@numba.njit(**_OPTS)
def _carried_from(mask, reverse):
    """Per time and row, the time whose new state the row carried into it
    (-1: none yet); and per time, that time if it is the same for every row
    (else -2)."""
    T, B = mask.shape
    prev = np.empty((T, B), dtype=np.int64)
    same = np.empty(T, dtype=np.int64)
    last = np.full(B, -1, dtype=np.int64)
    for step in range(T):
        j = T - 1 - step if reverse else step
        s = last[0]
        for r in range(B):
            prev[j, r] = last[r]
            s = s if last[r] == s else -2
            if mask[j, r]:
                last[r] = j
        same[j] = s
    return prev, same


@numba.njit(**_OPTS)
def _backward(X, mask, Wh, reverse, H, G, g_final, dWxb, dWh):
    """Reverse sweep over the times, all rows together (BLAS products per
    time), adding the gradients to ``dWxb`` (``Wx`` and, in its last row,
    ``b``) and ``dWh``.  ``G`` (T, B, Hd) is the cotangent of every new state
    (or of shape (0, 0, 0) for none), ``g_final`` (B, Hd) that of the final
    carried states; the state each row carried into a time is read back from
    ``H`` (the block itself where every row carried the same time's state)."""
    T, B, k1 = X.shape
    Hd = Wh.shape[0]
    has_g = G.shape[0] > 0
    prev, same = _carried_from(mask, reverse)
    gh = g_final.copy()         # dL/d(state carried out of the current time)
    gh_f = gh.reshape(B * Hd)
    da = np.empty((B, Hd))
    da_f = da.reshape(B * Hd)
    hin = np.empty((B, Hd))
    back = np.empty((B, Hd))
    dx = np.empty((k1, Hd))
    dh = np.empty((Hd, Hd))
    WhT = np.ascontiguousarray(Wh.T)   # a C-ordered operand: BLAS's faster kernel
    for step in range(T - 1, -1, -1):
        j = T - 1 - step if reverse else step
        Hj = H[j]
        if _all(mask[j]):
            Hj_f = Hj.reshape(B * Hd)
            if has_g:
                Gj_f = G[j].reshape(B * Hd)
                for q in range(B * Hd):
                    y = Hj_f[q]
                    da_f[q] = (Gj_f[q] + gh_f[q]) * (1.0 - y * y)
            else:
                for q in range(B * Hd):
                    y = Hj_f[q]
                    da_f[q] = gh_f[q] * (1.0 - y * y)
            # every carried state reached this time only through da
            np.dot(da, WhT, gh)
        else:
            for r in range(B):
                carried = mask[j, r]
                for i in range(Hd):
                    g = (G[j, r, i] if has_g else 0.0) + (gh[r, i] if carried else 0.0)
                    y = Hj[r, i]
                    da[r, i] = g * (1.0 - y * y)
                    gh[r, i] = 0.0 if carried else gh[r, i]
            np.dot(da, WhT, back)
            gh += back
        np.dot(X[j].T, da, dx)
        dWxb += dx
        p = same[j]
        if p == -2:
            for r in range(B):
                pr = prev[j, r]
                for i in range(Hd):
                    hin[r, i] = H[pr, r, i] if pr >= 0 else 0.0
            np.dot(hin.T, da, dh)
            dWh += dh
        elif p >= 0:
            np.dot(H[p].T, da, dh)
            dWh += dh


def _contiguous(*arrays):
    return tuple(np.ascontiguousarray(a, dtype=np.float64) for a in arrays)


def _time_major(X, mask):
    """Time-major inputs with a column of ones appended (T, B, k + 1), and mask (T, B)."""
    X = np.asarray(X, dtype=np.float64)
    B, T, k = X.shape
    Xt = np.empty((T, B, k + 1))
    mt = np.empty((T, B), dtype=np.bool_)
    _transpose_into(X, np.asarray(mask, dtype=np.bool_), Xt, mt)
    return Xt, mt


@numba.njit(cache=True, _nrt=True, error_model="python", fastmath=False)
def _transpose_into(X, mask, Xt, mt):
    """``Xt[j, r] = [X[r, j], 1]`` and ``mt[j, r] = mask[r, j]`` (one pass)."""
    B, T, k = X.shape
    for r in range(B):
        for j in range(T):
            for i in range(k):
                Xt[j, r, i] = X[r, j, i]
            Xt[j, r, k] = 1.0
            mt[j, r] = mask[r, j]


def _run(Wx, Wh, b, X, mask, reverse):
    """Time-major inputs, states (T, B, H) and final states (B, H)."""
    Xt, mt = _time_major(X, mask)
    Wxb = np.vstack([np.asarray(Wx, dtype=np.float64), np.asarray(b, dtype=np.float64)])
    Wh, = _contiguous(Wh)
    H = np.empty(Xt.shape[:2] + (Wh.shape[0],))
    h = _forward(Xt, mt, Wxb, Wh, bool(reverse), H)
    return Xt, mt, H, h


def _gradients(argnums, Wx, Wh, b, Xt, mt, reverse, H, G, g_final):
    k = np.shape(Wx)[0]
    dWxb, dWh = np.zeros((k + 1, np.shape(Wh)[0])), np.zeros(np.shape(Wh))
    _backward(Xt, mt, _contiguous(Wh)[0], bool(reverse), H, G, g_final, dWxb, dWh)
    grads = {0: dWxb[:k], 1: dWh, 2: dWxb[k]}
    return tuple(grads[i] for i in argnums)


def _reverse_flag(args, kwargs):
    return kwargs.get("reverse", args[5] if len(args) > 5 else False)


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
    H = _run(Wx, Wh, b, X, mask, reverse)[2]
    return np.transpose(H, (1, 0, 2)).copy()


def _sequence_vjp(argnums, ans, args, kwargs):
    Wx, Wh, b, X, mask = args[:5]
    reverse = _reverse_flag(args, kwargs)

    def vjp(G):
        Xt, mt = _time_major(X, mask)
        H = np.ascontiguousarray(np.transpose(ans, (1, 0, 2)))
        Gt = np.ascontiguousarray(np.transpose(G, (1, 0, 2)), dtype=np.float64)
        B, _, Hd = np.shape(ans)
        return _gradients(argnums, Wx, Wh, b, Xt, mt, reverse, H, Gt, np.zeros((B, Hd)))

    return vjp


defvjp_argnums(elman_sequence, _sequence_vjp)

@primitive
def elman_final(Wx, Wh, b, X, mask, reverse=False):
    """The state each row of a masked batch carries after the Elman RNN's last update.

    The same run as :func:`elman_sequence` (same arguments), returning only
    the final carried states: ``Hnew[r, j]`` at the last time ``j`` where
    ``mask[r, j]`` (the first, if ``reverse``).

    Returns
    -------
    ndarray, shape (B, H)
        Differentiable (autograd) in ``Wx``, ``Wh`` and ``b``.
    """
    Xt, mt, H, h = _run(Wx, Wh, b, X, mask, reverse)
    return keep(h, (Xt, mt, H))


def _final_vjp(argnums, ans, args, kwargs):
    Wx, Wh, b, X, mask = args[:5]
    reverse = _reverse_flag(args, kwargs)
    run = take(ans)
    if run is None:     # not the array elman_final returned: run the forward pass again
        run = _run(Wx, Wh, b, X, mask, reverse)[:3]

    def vjp(g):
        Xt, mt, H = run
        return _gradients(argnums, Wx, Wh, b, Xt, mt, reverse, H, np.zeros((0, 0, 0)),
                          np.ascontiguousarray(g, dtype=np.float64))

    return vjp


defvjp_argnums(elman_final, _final_vjp)


@primitive
def take_rows(hs, idx):
    """``hs[r, idx[r]]`` for every row ``r``: (B, H) from (B, T, H).

    The same as fancy indexing, with a VJP that writes each row's cotangent
    into zeros directly (autograd's indexing VJP scatters with ``np.add.at``,
    which costs more than the encoder on a large batch).
    """
    return hs[np.arange(hs.shape[0]), idx]


def _take_rows_vjp(ans, hs, idx):
    def vjp(g):
        out = np.zeros(np.shape(hs))
        out[np.arange(out.shape[0]), idx] = g
        return out
    return vjp


defvjp(take_rows, _take_rows_vjp)


def last_update(mask, reverse=False):
    """Per row, the index of the time of its last update (first True if ``reverse``)."""
    mask = np.asarray(mask, dtype=bool)
    if reverse:
        return np.argmax(mask, axis=1)
    return mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1)


__all__ = ["elman_final", "elman_sequence", "last_update", "take_rows"]
