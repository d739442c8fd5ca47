"""Planar normalizing flows (Rezende and Mohamed 2015): the paper's baseline for CNFs.

``K`` layers ``z_k = z_{k-1} + u_k tanh(w_k . z_{k-1} + b_k)`` map a base
sample ``z_0`` to ``x = z_K``; by the matrix determinant lemma each layer's
Jacobian determinant is ``1 + u_k . psi_k`` with ``psi_k = (1 - tanh^2) w_k``.
Each layer is invertible when ``w . u >= -1``; the constraint is enforced by
using ``u_hat = u + (m(w . u) - w . u) w / |w|^2`` with
``m(a) = -1 + softplus(a)``, so that ``w . u_hat = m(w . u) > -1``.

Sampling (and the reverse KL of density matching) is explicit.  The density
of a given point needs the inverse: along ``w`` a layer is the scalar
equation ``alpha + (w . u_hat) tanh(alpha + b) = w . y`` for
``alpha = w . z``, strictly increasing, solved by bisection (to round-off); its
gradient comes from the implicit function theorem (one Newton step written
with autograd-NumPy around the converged root).
"""
import autograd.numpy as anp
import numpy as np
from autograd.tracer import getval

from .distributions import Normal


def _softplus(a):
    return anp.logaddexp(0.0, a)


class PlanarFlow:
    """A normalizing flow of ``K`` planar layers.

    Parameters
    ----------
    dim : int
    K : int
        Number of layers.
    base : Normal, optional
        Default: the standard normal.

    Attributes
    ----------
    n_params : int
        ``K (2 dim + 1)``: ``w_k``, ``u_k``, ``b_k`` of every layer.

    Examples
    --------
    >>> import numpy as np, nodekit as nk
    >>> flow = nk.models.PlanarFlow(2, K=4)
    >>> theta = flow.init(0)
    >>> x = flow.sample(theta, 5, seed=1)
    >>> bool(np.allclose(flow.log_prob(theta, x), flow.sample_with_log_prob(theta, 5, 1)[1]))
    True
    """

    def __init__(self, dim, K, base=None):
        for name, value in (("dim", dim), ("K", K)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"`{name}` of PlanarFlow must be a positive integer; "
                                 f"got {name}={value!r}.")
        self.dim, self.K = int(dim), int(K)
        base = Normal(0.0, 1.0) if base is None else base
        if not isinstance(base, Normal):
            raise TypeError(f"`base` must be a nodekit.models.Normal; got {type(base).__name__}.")
        self.base = base.with_dim(self.dim)
        self.n_params = self.K * (2 * self.dim + 1)

    def init(self, seed=0, std=0.1, w_std=1.0):
        """Initial parameters: ``w`` N(0, w_std^2), ``u`` and ``b`` N(0, std^2).

        ``w`` is not small because the constraint moves ``u`` by about
        ``0.31 / |w|`` along ``w`` when ``w . u`` is near 0: with ``|w|`` of
        order one every layer starts close to the identity.
        """
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        d = self.dim
        scale = np.tile(np.concatenate([np.full(d, w_std), np.full(d + 1, std)]), self.K)
        return scale * rng.standard_normal(self.n_params)

    def layers(self, theta):
        """``[(w, u_hat, b), ...]`` of the K layers (autograd-NumPy)."""
        if np.shape(theta) != (self.n_params,):
            raise ValueError(f"`theta` must be a flat vector of length {self.n_params} "
                             f"(PlanarFlow(dim={self.dim}, K={self.K})); got shape "
                             f"{np.shape(theta)}.")
        d, out = self.dim, []
        for k in range(self.K):
            p = theta[k * (2 * d + 1):(k + 1) * (2 * d + 1)]
            w, u, b = p[:d], p[d:2 * d], p[2 * d]
            wu = anp.dot(w, u)
            u_hat = u + (-1.0 + _softplus(wu) - wu) * w / (anp.dot(w, w) + 1e-12)
            out.append((w, u_hat, b))
        return out

    def _check_points(self, x, name="x"):
        if np.ndim(x) != 2 or np.shape(x)[1] != self.dim:
            raise ValueError(f"`{name}` must have shape (n, {self.dim}); got {np.shape(x)}.")

    def forward(self, theta, z):
        """Base points ``z`` -> data ``x`` and ``sum_k log|det dz_k/dz_{k-1}|``."""
        self._check_points(z, "z")
        logdet = 0.0
        for w, u, b in self.layers(theta):
            h = anp.tanh(anp.dot(z, w) + b)
            logdet = logdet + anp.log(anp.abs(1.0 + (1.0 - h ** 2) * anp.dot(w, u)))
            z = z + h[:, None] * u[None, :]
        return z, logdet

    def transform(self, theta, x):
        """Data ``x`` -> base ``z`` and ``log|det dz/dx|`` (by inverting every layer)."""
        self._check_points(x)
        logdet = 0.0
        for w, u, b in reversed(self.layers(theta)):
            c = anp.dot(w, u)
            target = anp.dot(x, w)
            alpha0 = _solve_alpha(getval(target), getval(c), getval(b))
            h0 = np.tanh(alpha0 + getval(b))
            # one Newton step around the root: the value is the root, the
            # derivative the implicit-function one
            resid = alpha0 + c * anp.tanh(alpha0 + b) - target
            alpha = alpha0 - resid / (1.0 + getval(c) * (1.0 - h0 ** 2))
            h = anp.tanh(alpha + b)
            logdet = logdet - anp.log(1.0 + c * (1.0 - h ** 2))
            x = x - h[:, None] * u[None, :]
        return x, logdet

    def log_prob(self, theta, x):
        """``log p(x)`` of every row of ``x``: shape (n,), differentiable in ``theta`` and ``x``."""
        z, logdet = self.transform(theta, x)
        return self.base.log_prob(z) + logdet

    def nll(self, theta, x):
        """Mean negative log-likelihood (nats)."""
        return -anp.mean(self.log_prob(theta, x))

    def sample_with_log_prob(self, theta, n, seed=None):
        """``n`` samples and their log density (differentiable in ``theta``)."""
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        z0 = self.base.sample(n, rng)
        x, logdet = self.forward(theta, z0)
        return x, self.base.log_prob(z0) - logdet

    def sample(self, theta, n, seed=None):
        """``n`` samples, shape (n, dim)."""
        return self.sample_with_log_prob(theta, n, seed)[0]

    def kl_to(self, theta, log_target, n, seed=None):
        """Reverse KL to an unnormalised target, up to its log normaliser (see ``CNF.kl_to``)."""
        x, logq = self.sample_with_log_prob(theta, n, seed)
        return anp.mean(logq - log_target(x))

    def __repr__(self):
        return f"PlanarFlow(dim={self.dim}, K={self.K})"


def _solve_alpha(target, c, b, iters=100):
    """Root of ``alpha + c tanh(alpha + b) = target`` (``c > -1``: strictly increasing).

    Newton's method kept inside a shrinking bracket (a step that would leave
    it bisects instead): the root lies within ``|c|`` of ``target``, and
    Newton converges in a handful of iterations where bisection needed
    about fifty, for every layer of every flow evaluation.
    """
    target = np.asarray(target, dtype=float)
    lo, hi = target - abs(c) - 1e-12, target + abs(c) + 1e-12
    a = np.clip(target - c * np.tanh(target + b), lo, hi)
    f_prev = np.full(target.shape, np.inf)
    tol = 4.0 * np.finfo(float).eps * (1.0 + np.abs(target) + abs(c))  # |f| at rounding level
    for _ in range(iters):
        th = np.tanh(a + b)
        f = a + c * th - target
        above = f > 0.0
        hi = np.where(above, a, hi)
        lo = np.where(above, lo, a)
        converged = np.abs(f) <= tol
        if np.all(converged):
            return a
        new = a - f / (1.0 + c * (1.0 - th * th))
        # bisect where Newton leaves the bracket or stalls (ping-pong between
        # the saturated arms of tanh): |f| must at least halve
        slow = np.abs(f) > 0.5 * f_prev
        f_prev = np.abs(f)
        new = np.where((new <= lo) | (new >= hi) | slow, 0.5 * (lo + hi), new)
        a = np.where(converged, a, new)
    return a
