"""Continuous normalizing flows (Chen et al. 2018, section 4; FFJORD's trace estimator).

A CNF moves samples with an ODE ``dz/dt = f(t, z; theta)``.  The base
distribution lives at ``t0`` and the data at ``t1``; along a trajectory the
log density changes by the instantaneous change of variables
``d log p(z(t))/dt = -tr(df/dz)``.  :class:`CNF` integrates the augmented
state ``[z, l]`` of every sample with compiled kernels (``nodekit.nn.trace``)
through ``nk.odeint``, so every quantity below is differentiable with
autograd, in every gradient mode, with an analytic compiled backward pass.
"""
import autograd.numpy as anp
import numpy as np

from .._checks import check_options
from ..nn.hyper import PlanarHyper
from ..nn.model import Sequential
from ..nn.trace import TRACES, check_trace, cnf_ode
from ..primitive import _ODEINT_OPTIONS, odeint
from .distributions import Normal

#: Noise distributions of the Hutchinson estimator (both have identity covariance).
NOISES = ("rademacher", "gaussian")

#: Solver options of a CNF unless given (torchdiffeq's CNF example).
DEFAULT_SOLVER = {"method": "dopri5", "rtol": 1e-5, "atol": 1e-5}


def _rng(seed):
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


class CNF:
    """A continuous normalizing flow in ``dim`` dimensions.

    Parameters
    ----------
    dim : int
        Dimension of the data.
    dynamics : nodekit.nn.Sequential or nodekit.nn.hyper.PlanarHyper, optional
        The network ``f(t, z; theta)`` (any ``nk.nn`` model whose layers are
        ``Dense``, ``TimeDense`` and elementwise maps).  Default: the paper's
        planar CNF, :class:`~nodekit.nn.hyper.PlanarHyper` with ``width``
        units and a hypernetwork of hidden width ``hidden``.
    base : Normal, optional
        Distribution at ``t0``; default the standard normal.
    t0, t1 : float
        Times of the base and of the data (``t0 != t1``).
    trace : {'exact', 'hutchinson'}, default 'exact'
        How ``tr(df/dz)`` is computed during training: exactly (``d``
        forward-mode tangents, or analytically for ``PlanarHyper``), or by
        Hutchinson's estimator ``eps^T (df/dz) eps`` with one noise vector per
        sample, drawn once per solve and held fixed through it (FFJORD).
    width, hidden : int, default 64, 32
        Sizes of the default dynamics.
    noise : {'rademacher', 'gaussian'}, default 'rademacher'
        Distribution of Hutchinson's noise.
    noise_seed : int, default 0
        Seeds the noise stream used when a method gets no ``seed``.
    **solver_options
        Passed to :func:`nodekit.odeint` (``method``, ``rtol``, ``atol``,
        ``gradient``, ``adjoint_rtol``, ``seminorm``, ...); defaults
        ``method='dopri5', rtol=atol=1e-5``.

    Attributes
    ----------
    n_params : int
        Length of ``theta``.

    Notes
    -----
    With Hutchinson's estimator, ``log_prob`` is an unbiased estimate of the
    log density (over the noise), not the log density; pass
    ``trace='exact'`` to a method to evaluate it exactly (cheap in 2-D).

    Examples
    --------
    >>> import numpy as np, nodekit as nk
    >>> cnf = nk.models.CNF(2, width=8, hidden=8)
    >>> theta = cnf.init(0)
    >>> cnf.log_prob(theta, np.zeros((3, 2))).shape
    (3,)
    """

    def __init__(self, dim, dynamics=None, base=None, t0=0.0, t1=1.0, trace="exact", *,
                 width=64, hidden=32, noise="rademacher", noise_seed=0, **solver_options):
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"`dim` must be a positive integer; got dim={dim!r}.")
        self.dim = int(dim)
        if dynamics is None:
            dynamics = PlanarHyper(self.dim, width, hidden)
        elif not isinstance(dynamics, (Sequential, PlanarHyper)):
            raise TypeError(f"`dynamics` must be an nk.nn Sequential model or a PlanarHyper "
                            f"(or None for the planar hypernetwork); got "
                            f"{type(dynamics).__name__}.")
        if dynamics.dim != self.dim:
            raise ValueError(f"`dynamics` acts on states of width {dynamics.dim}; the flow has "
                             f"dim={self.dim}.")
        self.dynamics = dynamics
        if base is None:
            base = Normal(0.0, 1.0)
        if not isinstance(base, Normal):
            raise TypeError(f"`base` must be a nodekit.models.Normal; got {type(base).__name__}.")
        self.base = base.with_dim(self.dim)
        self.t0, self.t1 = float(t0), float(t1)
        if not (np.isfinite(self.t0) and np.isfinite(self.t1)) or self.t0 == self.t1:
            raise ValueError(f"`t0` and `t1` must be finite and different; got t0={t0!r}, "
                             f"t1={t1!r}.")
        self.trace = check_trace(trace)
        if noise not in NOISES:
            raise ValueError(f"Unknown `noise` {noise!r}; valid values are {list(NOISES)}.")
        self.noise = noise
        self._noise_rng = np.random.default_rng(noise_seed)
        check_options(solver_options, tuple(o for o in _ODEINT_OPTIONS if o != "stats"), "CNF")
        self.solver_options = {**DEFAULT_SOLVER, **solver_options}
        self._odes = {}

    # ------------------------------------------------------------------ parameters

    @property
    def n_params(self):
        return self.dynamics.n_params

    def init(self, seed=0):
        """Initial parameters of the dynamics.

        ``PlanarHyper``: PyTorch's ``nn.Linear`` default; ``Sequential``: its
        ``'torch'`` scheme.
        """
        return self.dynamics.init(seed)

    def ode(self, trace=None):
        """The compiled augmented dynamics (an ``nk.ODE``) for ``trace``."""
        trace = check_trace(self.trace if trace is None else trace)
        if trace not in self._odes:
            self._odes[trace] = cnf_ode(self.dynamics, trace)
        return self._odes[trace]

    # ------------------------------------------------------------------ evaluation

    def f(self, t, z, theta):
        """The dynamics ``f(t, z)`` for a batch ``z`` of shape (n, dim), in NumPy."""
        z = self._check_points(z, "z")
        return np.asarray(self.dynamics.apply(float(t), z, np.asarray(theta, dtype=float)))

    def _check_points(self, x, name):
        shape = np.shape(x)
        if len(shape) != 2 or shape[1] != self.dim:
            raise ValueError(f"`{name}` must have shape (n, {self.dim}); got {shape}.")
        return x

    def _check_theta(self, theta):
        if np.shape(theta) != (self.n_params,):
            raise ValueError(f"`theta` must be a flat vector of length {self.n_params} (the "
                             f"parameters of {self.dynamics!r}); got shape {np.shape(theta)}.")

    def draw_noise(self, n, seed=None):
        """Hutchinson noise for ``n`` samples, shape (n, dim): Rademacher or Gaussian."""
        rng = self._noise_rng if seed is None else _rng(seed)
        if self.noise == "rademacher":
            return rng.integers(0, 2, size=(int(n), self.dim)) * 2.0 - 1.0
        return rng.standard_normal((int(n), self.dim))

    def integrate(self, theta, z, ts, logp=None, *, seed=None, trace=None, stats=None):
        """Integrate the augmented state ``[z, l]`` through the times ``ts``.

        Parameters
        ----------
        theta : array_like, shape (n_params,)
        z : array_like, shape (n, dim)
            Points at ``ts[0]``.
        ts : array_like, shape (m,)
            Strictly monotone times (forwards or backwards).
        logp : array_like, shape (n,), optional
            Initial ``l`` (default zeros).
        seed : int or Generator, optional
            Hutchinson noise (drawn once, fixed through the solve).
        trace : {'exact', 'hutchinson'}, optional
            Overrides the flow's ``trace``.
        stats : dict, optional
            Filled by ``nk.odeint`` (NFE).

        Returns
        -------
        zs : array, shape (m, n, dim)
        ls : array, shape (m, n)
            ``l(t) = l(ts[0]) - int_{ts[0]}^{t} tr(df/dz) dt``.
        """
        self._check_theta(theta)
        z = self._check_points(z, "z")
        n = np.shape(z)[0]
        trace = check_trace(self.trace if trace is None else trace)
        l0 = anp.zeros((n, 1)) if logp is None else anp.reshape(logp, (n, 1))
        y0 = anp.concatenate([z, l0], axis=1)
        th = theta
        if trace == "hutchinson":
            th = anp.concatenate([theta, self.draw_noise(n, seed).ravel()])
        ys = odeint(self.ode(trace), y0, np.asarray(ts, dtype=float), th,
                    stats=stats, **self.solver_options)
        return ys[:, :, :self.dim], ys[:, :, self.dim]

    def transform(self, theta, x, *, seed=None, trace=None, stats=None):
        """Map data ``x`` (at ``t1``) to the base (at ``t0``).

        Returns
        -------
        z : array, shape (n, dim)
        logdet : array, shape (n,)
            ``log|det dz/dx|``, so ``log p(x) = base.log_prob(z) + logdet``.
        """
        zs, ls = self.integrate(theta, x, [self.t1, self.t0], seed=seed, trace=trace,
                                stats=stats)
        return zs[-1], -ls[-1]

    def log_prob(self, theta, x, *, seed=None, trace=None, stats=None):
        """``log p(x)`` of every row of ``x``: shape (n,).

        Differentiable with autograd in ``theta`` and ``x`` (through
        ``nk.odeint``, in the flow's gradient mode).
        """
        z, logdet = self.transform(theta, x, seed=seed, trace=trace, stats=stats)
        return self.base.log_prob(z) + logdet

    def nll(self, theta, x, **kwargs):
        """Mean negative log-likelihood of the rows of ``x`` (nats)."""
        return -anp.mean(self.log_prob(theta, x, **kwargs))

    def sample_with_log_prob(self, theta, n, seed=None, *, trace=None, stats=None):
        """``n`` samples of the flow and their log density (the flow ``t0 -> t1``).

        Returns
        -------
        x : array, shape (n, dim)
        logp : array, shape (n,)
            Differentiable in ``theta`` (for :meth:`kl_to`).
        """
        rng = _rng(seed)
        z0 = self.base.sample(n, rng)
        zs, ls = self.integrate(theta, z0, [self.t0, self.t1], self.base.log_prob(z0),
                                seed=rng, trace=trace, stats=stats)
        return zs[-1], ls[-1]

    def sample(self, theta, n, seed=None, *, stats=None):
        """``n`` samples of the flow, shape (n, dim)."""
        return self.sample_with_log_prob(theta, n, seed, trace="exact", stats=stats)[0]

    def inverse(self, theta, z, *, stats=None):
        """Map base points ``z`` (at ``t0``) to data space (at ``t1``)."""
        return self.integrate(theta, z, [self.t0, self.t1], trace="exact", stats=stats)[0][-1]

    def kl_to(self, theta, log_target, n, seed=None, *, stats=None):
        """Reverse KL divergence to an unnormalised target, up to its log normaliser.

        ``E_{x ~ q}[log q(x) - log_target(x)]`` estimated with ``n`` samples
        of the flow (reparameterised: differentiable in ``theta``).  Its
        minimum, ``-log Z`` for ``log_target = log(Z p)``, is reached when the
        flow equals the target.

        Parameters
        ----------
        log_target : callable
            ``log_target(x) -> (n,)``, written with autograd-NumPy.
        """
        x, logq = self.sample_with_log_prob(theta, n, seed, stats=stats)
        return anp.mean(logq - log_target(x))

    def __repr__(self):
        return (f"CNF(dim={self.dim}, dynamics={self.dynamics!r}, t0={self.t0}, t1={self.t1}, "
                f"trace={self.trace!r})")


__all__ = ["CNF", "NOISES", "TRACES"]
