"""The planar CNF dynamics of Chen et al. (2018), with parameters from a hypernetwork of ``t``.

``f(t, z) = (1/M) sum_m u_m(t) tanh(w_m(t) . z + b_m(t))``: ``M`` planar
units whose vectors ``u_m, w_m`` and offsets ``b_m`` are the output of a small
network of time (``t -> tanh(Dense(1, H)) -> tanh(Dense(H, H)) -> Dense(H,
3 M d + M)``), with the gate ``u_m = u'_m * sigmoid(g_m)``.  This is the
architecture of torchdiffeq's CNF example (width ``M = 64``, hypernetwork
hidden width ``H = 32``: 15904 parameters in 2-D); the ``1/M`` factor is
theirs too.

Its Jacobian is ``(1/M) sum_m u_m w_m^T (1 - tanh^2)``, so the exact trace is
``(1/M) sum_m (u_m . w_m)(1 - h_m^2)``, computed analytically (no tangents),
and Hutchinson's estimate replaces ``u_m . w_m`` by ``(eps . u_m)(eps . w_m)``.
The hypernetwork is evaluated once per kernel call (all samples share ``t``),
and its backward pass once per VJP call.
"""
import math

import autograd.numpy as anp
import numpy as np

from . import codegen


class PlanarHyper:
    """Planar-unit dynamics whose parameters are a function of time (a hypernetwork).

    Parameters
    ----------
    dim : int
        State width ``d``.
    width : int, default 64
        Number of planar units ``M``.
    hidden : int, default 32
        Hidden width ``H`` of the hypernetwork.

    Attributes
    ----------
    n_params : int
        ``2 H + H^2 + H + (H + 1)(3 M d + M)``.
    layout : list of (name, offset, shape)
        Parameter blocks ``fc1.W`` (1, H), ``fc1.b``, ``fc2.W`` (H, H),
        ``fc2.b``, ``fc3.W`` (H, 3 M d + M), ``fc3.b`` in ``theta``
        (weights input-major, as in ``nk.nn``).

    Examples
    --------
    >>> from nodekit.nn.hyper import PlanarHyper
    >>> PlanarHyper(2).n_params
    15904
    """

    kind = "planar_hyper"

    def __init__(self, dim, width=64, hidden=32):
        for name, value in (("dim", dim), ("width", width), ("hidden", hidden)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"`{name}` of PlanarHyper must be a positive integer; "
                                 f"got {name}={value!r}.")
        self.dim, self.width, self.hidden = int(dim), int(width), int(hidden)
        d, M, H = self.dim, self.width, self.hidden
        self.n_out = 3 * M * d + M
        shapes = [("fc1.W", (1, H)), ("fc1.b", (H,)), ("fc2.W", (H, H)), ("fc2.b", (H,)),
                  ("fc3.W", (H, self.n_out)), ("fc3.b", (self.n_out,))]
        self.layout, off = [], 0
        for name, shape in shapes:
            self.layout.append((name, off, shape))
            off += int(np.prod(shape))
        self.n_params = off
        self.offsets = {name: o for name, o, _ in self.layout}

    # ------------------------------------------------------------------ parameters

    def init(self, seed=0):
        """Initial parameters: PyTorch's default for ``nn.Linear`` (uniform on
        ``+-1/sqrt(fan_in)``, weights and biases), as in torchdiffeq's example.

        Parameters
        ----------
        seed : int or numpy.random.Generator

        Returns
        -------
        theta : ndarray, shape (n_params,)
        """
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        theta = np.empty(self.n_params)
        for name, off, shape in self.layout:
            fan_in = 1 if name.startswith("fc1") else self.hidden
            bound = 1.0 / math.sqrt(fan_in)
            size = int(np.prod(shape))
            theta[off:off + size] = rng.uniform(-bound, bound, size)
        return theta

    def unpack(self, theta):
        """Named blocks of ``theta`` (views for a NumPy array)."""
        if np.shape(theta) != (self.n_params,):
            raise ValueError(f"`theta` must be a flat vector of length {self.n_params} (the "
                             f"parameters of {self!r}); got shape {np.shape(theta)}.")
        return {name: anp.reshape(theta[off:off + int(np.prod(shape))], shape)
                for name, off, shape in self.layout}

    def units(self, t, theta):
        """The planar units at time ``t``: ``W`` (M, d), ``U`` (M, d) (gated), ``B`` (M,).

        autograd-NumPy, differentiable in ``t`` and ``theta``.
        """
        p = self.unpack(theta)
        h = anp.tanh(t * p["fc1.W"][0] + p["fc1.b"])
        h = anp.tanh(anp.dot(h, p["fc2.W"]) + p["fc2.b"])
        out = anp.dot(h, p["fc3.W"]) + p["fc3.b"]
        M, d = self.width, self.dim
        bs = M * d
        W = anp.reshape(out[:bs], (M, d))
        U = anp.reshape(out[bs:2 * bs], (M, d))
        G = anp.reshape(out[2 * bs:3 * bs], (M, d))
        U = U * (0.5 + 0.5 * anp.tanh(0.5 * G))
        return W, U, out[3 * bs:]

    def apply(self, t, z, theta):
        """``f(t, z)`` for a batch ``z`` of shape (n, d), in autograd-NumPy."""
        if np.ndim(z) != 2 or np.shape(z)[1] != self.dim:
            raise ValueError(f"`z` must have shape (n, {self.dim}); got {np.shape(z)}.")
        W, U, B = self.units(t, theta)
        h = anp.tanh(anp.dot(z, W.T) + B)
        return anp.dot(h, U) / self.width

    __call__ = apply

    def spec(self):
        """JSON-able description."""
        return {"type": "PlanarHyper", "dim": self.dim, "width": self.width,
                "hidden": self.hidden}

    def __repr__(self):
        return f"PlanarHyper(dim={self.dim}, width={self.width}, hidden={self.hidden})"

    def __eq__(self, other):
        return isinstance(other, PlanarHyper) and self.spec() == other.spec()

    def __hash__(self):
        return hash(repr(self))

    # ------------------------------------------------------------------ kernels

    def trace_source(self, trace):
        """Source of the augmented CNF kernels (see :mod:`nodekit.nn.trace`)."""
        from .trace import _entry_points, _header, check_trace
        check_trace(trace)
        return "\n".join(_header(f"CNF of {self!r}, trace={trace!r}", codegen.FASTMATH)
                         + _planar_kernels(self, trace == "hutchinson")
                         + _entry_points([("_hyper", "(float64, V, V, V)")]))


def _planar_kernels(m, hutch):
    """Source of ``_rhs_rows`` and ``_vjp_rows`` (with ``_hyper``) for ``m``.

    The units' vectors are stored transposed, ``WT[i, m]`` and ``UT[i, m]``
    (contiguous over units), and each row's loop over units keeps its sums in
    scalars (the state and noise components unrolled), so that the loop over
    units vectorises.
    """
    d, M, H, P = m.dim, m.width, m.hidden, m.n_out
    o = m.offsets
    w1, b1, w2, b2, w3, b3 = (o["fc1.W"], o["fc1.b"], o["fc2.W"], o["fc2.b"], o["fc3.W"],
                              o["fc3.b"])
    bs = M * d
    npar = m.n_params
    inv = repr(1.0 / M)
    # s: hypernetwork h1 (H) | h2 (H) | p (P) | sigmoid gate (bs) | g2 (H) | g1 (H) | dp (P)
    H1, H2, PP = 0, H, 2 * H
    SG = PP + P
    G2 = SG + bs
    G1 = G2 + H
    DP = G1 + H
    n_s = DP + P
    # u: the units, WT (d, M) | UT (d, M) | B (M) | Q = u_m . w_m (M)
    WT, UT, BB, Q = 0, bs, 2 * bs, 2 * bs + M
    n_u = 2 * bs + 2 * M
    # acc: cotangents of the units, dWT (d, M) | dUT (d, M) | dB (M)
    DWT, DUT, DB = 0, bs, 2 * bs
    n_acc = 2 * bs + M
    I = range(d)  # noqa: E741
    hyper = [
        "@numba.njit(**_OPTS)",
        "def _hyper(t, theta, s, u):",
        f"    for k in range({H}):",
        f"        s[{H1} + k] = _tanh(t * theta[{w1} + k] + theta[{b1} + k])",
        f"    for j in range({H}):",
        f"        s[{H2} + j] = theta[{b2} + j]",
        f"    for k in range({H}):",
        f"        hk = s[{H1} + k]",
        f"        for j in range({H}):",
        f"            s[{H2} + j] += hk * theta[{w2} + k * {H} + j]",
        f"    for j in range({H}):",
        f"        s[{H2} + j] = _tanh(s[{H2} + j])",
        f"    for j in range({P}):",
        f"        s[{PP} + j] = theta[{b3} + j]",
        f"    for k in range({H}):",
        f"        hk = s[{H2} + k]",
        f"        for j in range({P}):",
        f"            s[{PP} + j] += hk * theta[{w3} + k * {P} + j]",
        f"    for m in range({M}):",
        f"        u[{BB} + m] = s[{PP + 3 * bs} + m]",
        "        q = 0.0",
        f"        for i in range({d}):",
        f"            k = m * {d} + i",
        f"            sg = 0.5 + 0.5 * _tanh(0.5 * s[{PP + 2 * bs} + k])",
        f"            s[{SG} + k] = sg",
        f"            uk = s[{PP + bs} + k] * sg",
        f"            wk = s[{PP} + k]",
        f"            u[{UT} + i * {M} + m] = uk",
        f"            u[{WT} + i * {M} + m] = wk",
        "            q += uk * wk",
        f"        u[{Q} + m] = q",
        "",
        "",
    ]
    load_row = [f"base = r * {d + 1}"]
    load_row += [f"z{i} = y[base + {i}]" for i in I]
    if hutch:
        load_row += [f"e{i} = theta[{npar} + r * {d} + {i}]" for i in I]
    # per unit m: its vectors, preactivation, h, sm = 1 - h^2, q (exact or Hutchinson)
    unit = [f"w{i} = u[{WT + i * M} + m]" for i in I]
    unit += [f"u{i} = u[{UT + i * M} + m]" for i in I]
    unit += [f"pre = u[{BB} + m] + " + " + ".join(f"w{i} * z{i}" for i in I),
             "h = _tanh(pre)",
             "sm = 1.0 - h * h"]
    if hutch:
        unit += ["eu = " + " + ".join(f"e{i} * u{i}" for i in I),
                 "ew = " + " + ".join(f"e{i} * w{i}" for i in I),
                 "q = eu * ew"]
    else:
        unit += [f"q = u[{Q} + m]"]
    rhs = [
        "@numba.njit(**_OPTS)",
        "def _rhs_rows(t, y, theta, out):",
        f"    s = np.empty({n_s})",
        f"    u = np.empty({n_u})",
        "    _hyper(t, theta, s, u)",
        f"    for r in range(y.size // {d + 1}):",
        *_ind(load_row, 8),
        *[f"        f{i} = 0.0" for i in I],
        "        tr = 0.0",
        f"        for m in range({M}):",
        *_ind(unit, 12),
        *[f"            f{i} += u{i} * h" for i in I],
        "            tr += q * sm",
        *[f"        out[base + {i}] = f{i} * {inv}" for i in I],
        f"        out[base + {d}] = -tr * {inv}",
        "",
        "",
    ]
    # VJP, per row: cotangents a_z / M and ct = -a_l / M
    row_back = [f"a{i} = a[base + {i}]" for i in I]
    row_back += [f"ct = -a[base + {d}] * {inv}"]
    row_back += [f"gz{i} = 0.0" for i in I]
    if hutch:
        row_back += [f"ge{i} = 0.0" for i in I]
    unit_back = [
        "au = (" + " + ".join(f"a{i} * u{i}" for i in I) + f") * {inv}",
        "g = au * sm - 2.0 * ct * q * h * sm",
        "cs = ct * sm",
        f"acc[{DB} + m] += g",
    ]
    unit_back += [f"gz{i} += g * w{i}" for i in I]
    if hutch:
        unit_back += [f"acc[{DUT + i * M} + m] += a{i} * {inv} * h + cs * ew * e{i}" for i in I]
        unit_back += [f"acc[{DWT + i * M} + m] += g * z{i} + cs * eu * e{i}" for i in I]
        unit_back += [f"ge{i} += cs * (ew * u{i} + eu * w{i})" for i in I]
    else:
        unit_back += [f"acc[{DUT + i * M} + m] += a{i} * {inv} * h + cs * w{i}" for i in I]
        unit_back += [f"acc[{DWT + i * M} + m] += g * z{i} + cs * u{i}" for i in I]
    row_out = [f"out_y[base + {i}] = gz{i}" for i in I] + [f"out_y[base + {d}] = 0.0"]
    if hutch:
        row_out += [f"out_theta[{npar} + r * {d} + {i}] = ge{i}" for i in I]
    hyper_back = [
        # p's cotangent: W, U (raw, through the gate), G (the gate), B
        f"for m in range({M}):",
        f"    s[{DP + 3 * bs} + m] = acc[{DB} + m]",
        f"    for i in range({d}):",
        f"        k = m * {d} + i",
        f"        s[{DP} + k] = acc[{DWT} + i * {M} + m]",
        f"        sg = s[{SG} + k]",
        f"        du = acc[{DUT} + i * {M} + m]",
        f"        s[{DP + bs} + k] = du * sg",
        f"        s[{DP + 2 * bs} + k] = du * s[{PP + bs} + k] * sg * (1.0 - sg)",
        f"for j in range({P}):",
        f"    out_theta[{b3} + j] = s[{DP} + j]",
        f"for k in range({H}):",
        f"    hk = s[{H2} + k]",
        "    acc2 = 0.0",
        f"    for j in range({P}):",
        f"        gj = s[{DP} + j]",
        f"        out_theta[{w3} + k * {P} + j] = hk * gj",
        f"        acc2 += theta[{w3} + k * {P} + j] * gj",
        f"    s[{G2} + k] = acc2 * (1.0 - hk * hk)",
        f"for j in range({H}):",
        f"    out_theta[{b2} + j] = s[{G2} + j]",
        f"for k in range({H}):",
        f"    hk = s[{H1} + k]",
        "    acc2 = 0.0",
        f"    for j in range({H}):",
        f"        gj = s[{G2} + j]",
        f"        out_theta[{w2} + k * {H} + j] = hk * gj",
        f"        acc2 += theta[{w2} + k * {H} + j] * gj",
        f"    s[{G1} + k] = acc2 * (1.0 - hk * hk)",
        "dt = 0.0",
        f"for k in range({H}):",
        f"    gk = s[{G1} + k]",
        f"    out_theta[{w1} + k] = t * gk",
        f"    out_theta[{b1} + k] = gk",
        f"    dt += theta[{w1} + k] * gk",
    ]
    vjp = [
        "@numba.njit(**_OPTS)",
        "def _vjp_rows(t, y, theta, a, out_y, out_theta):",
        f"    s = np.empty({n_s})",
        f"    u = np.empty({n_u})",
        f"    acc = np.zeros({n_acc})",
        "    _hyper(t, theta, s, u)",
        f"    for r in range(y.size // {d + 1}):",
        *_ind(load_row, 8),
        *_ind(row_back, 8),
        f"        for m in range({M}):",
        *_ind(unit, 12),
        *_ind(unit_back, 12),
        *_ind(row_out, 8),
        *_ind(hyper_back, 4),
        "    return dt",
        "",
    ]
    return hyper + rhs + vjp


def _ind(lines, n):
    pad = " " * n
    return [pad + line for line in lines]
