"""2-D densities of the normalizing-flow experiments: samplers, exact densities, potentials.

* Samplers ``f(n, seed) -> (n, 2)``: :data:`SAMPLERS` by name
  (``'two-circles'``, ``'two-moons'``, ``'eight-gaussians'``), or
  :func:`sample`.  Two circles: scikit-learn's ``make_circles`` with noise
  0.06 and factor 0.5 (torchdiffeq's CNF example); two moons: ``make_moons``
  with noise 0.05; eight Gaussians: FFJORD's toy mixture.
* :func:`eight_gaussians_log_prob`: the mixture's exact log density, and
  :func:`eight_gaussians_entropy`, its entropy by Monte Carlo.
* Rezende and Mohamed's (2015) energy functions ``U1``-``U4`` (unnormalised
  targets ``exp(-U)`` for density matching), written with autograd-NumPy.
"""
import math

import autograd.numpy as anp
import numpy as np
from autograd.scipy.special import logsumexp

from .toy import two_circles, two_moons

#: Eight Gaussians: centres on a circle of this radius, every component with this std.
EIGHT_RADIUS = 4.0 / math.sqrt(2.0)
EIGHT_STD = 0.5 / math.sqrt(2.0)


def _rng(seed):
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def eight_gaussians_centres():
    """The 8 centres ``(4/sqrt(2)) (cos(k pi/4), sin(k pi/4))``, shape (8, 2)."""
    k = np.arange(8) * np.pi / 4
    return EIGHT_RADIUS * np.column_stack([np.cos(k), np.sin(k)])


def eight_gaussians(n=512, seed=0):
    """An equal mixture of 8 isotropic Gaussians (std ``0.5/sqrt(2)``) on a circle.

    Returns
    -------
    x : ndarray, shape (n, 2)
    """
    rng = _rng(seed)
    c = eight_gaussians_centres()[rng.integers(0, 8, size=int(n))]
    return c + EIGHT_STD * rng.standard_normal((int(n), 2))


def eight_gaussians_log_prob(x):
    """Exact log density of :func:`eight_gaussians` at the rows of ``x``: shape (n,)."""
    x = anp.reshape(x, (-1, 2))
    c = eight_gaussians_centres()
    d2 = anp.sum((x[:, None, :] - c[None, :, :]) ** 2, axis=2)
    log_comp = -0.5 * d2 / EIGHT_STD ** 2 - math.log(2 * math.pi * EIGHT_STD ** 2)
    return logsumexp(log_comp, axis=1) - math.log(8.0)


def eight_gaussians_entropy(n=200000, seed=0):
    """Entropy of the eight-Gaussian mixture (nats) by Monte Carlo, and its standard error."""
    logp = eight_gaussians_log_prob(eight_gaussians(n, seed))
    return float(-logp.mean()), float(logp.std(ddof=1) / math.sqrt(n))


def _circles(n=512, seed=0):
    return two_circles(n, noise=0.06, factor=0.5, seed=seed)[0]


def _moons(n=512, seed=0):
    return two_moons(n, noise=0.05, seed=seed)[0]


#: 2-D samplers ``f(n, seed) -> (n, 2)`` by name.
SAMPLERS = {"two-circles": _circles, "two-moons": _moons, "eight-gaussians": eight_gaussians}


def sample(name, n=512, seed=0):
    """``n`` points of the toy data set ``name`` (see :data:`SAMPLERS`): shape (n, 2)."""
    if name not in SAMPLERS:
        raise ValueError(f"Unknown 2-D data set {name!r}; valid names are {sorted(SAMPLERS)}.")
    if isinstance(seed, np.random.Generator):   # scikit-learn takes integer seeds
        seed = int(seed.integers(2 ** 31))
    return SAMPLERS[name](int(n), seed)


# ----------------------------------------------------------------------------
# Rezende and Mohamed (2015), Table 1: unnormalised densities exp(-U(z)).


def _w1(z):
    return anp.sin(2 * np.pi * z[:, 0] / 4)


def _w2(z):
    return 3 * anp.exp(-0.5 * ((z[:, 0] - 1) / 0.6) ** 2)


def _w3(z):
    return 3 / (1 + anp.exp(-(z[:, 0] - 1) / 0.3))


def _lse2(a, b):
    m = anp.maximum(a, b)
    return m + anp.log(anp.exp(a - m) + anp.exp(b - m))


def _wall(z):
    # U2-U4 do not depend on z1 far from the origin, so exp(-U) is not
    # integrable; a soft wall at |z1| = 4 (the plotted box) makes it so.
    return 0.5 * (anp.maximum(anp.abs(z[:, 0]) - 4.0, 0.0) / 0.2) ** 2


def U1(z):
    """Ring with two modes:
    ``((|z| - 2)/0.4)^2/2 - log(e^{-((z1-2)/0.6)^2/2} + e^{-((z1+2)/0.6)^2/2})``."""
    z = anp.reshape(z, (-1, 2))
    r = anp.sqrt(anp.sum(z ** 2, axis=1))
    return (0.5 * ((r - 2) / 0.4) ** 2
            - _lse2(-0.5 * ((z[:, 0] - 2) / 0.6) ** 2, -0.5 * ((z[:, 0] + 2) / 0.6) ** 2))


def U2(z):
    """Sine band: ``((z2 - w1(z))/0.4)^2 / 2``, ``w1 = sin(2 pi z1/4)`` (with the wall)."""
    z = anp.reshape(z, (-1, 2))
    return 0.5 * ((z[:, 1] - _w1(z)) / 0.4) ** 2 + _wall(z)


def U3(z):
    """Two sine bands split by a bump ``w2`` (with the wall)."""
    z = anp.reshape(z, (-1, 2))
    w1 = _w1(z)
    return -_lse2(-0.5 * ((z[:, 1] - w1) / 0.35) ** 2,
                  -0.5 * ((z[:, 1] - w1 + _w2(z)) / 0.35) ** 2) + _wall(z)


def U4(z):
    """Two sine bands split by a sigmoid step ``w3`` (with the wall)."""
    z = anp.reshape(z, (-1, 2))
    w1 = _w1(z)
    return -_lse2(-0.5 * ((z[:, 1] - w1) / 0.4) ** 2,
                  -0.5 * ((z[:, 1] - w1 + _w3(z)) / 0.35) ** 2) + _wall(z)


#: The energies by name; the target density is ``exp(-U(z)) / Z``.
POTENTIALS = {"U1": U1, "U2": U2, "U3": U3, "U4": U4}


def log_target(name):
    """``z -> -U(z)`` for the potential ``name`` (``'U1'``..``'U4'``)."""
    if name not in POTENTIALS:
        raise ValueError(f"Unknown potential {name!r}; valid names are {sorted(POTENTIALS)}.")
    U = POTENTIALS[name]
    return lambda z: -U(z)


def log_normaliser(name, lim=6.0, n=601):
    """``log Z = log int exp(-U)`` by 2-D trapezoidal quadrature on ``[-lim, lim]^2``."""
    g = np.linspace(-lim, lim, n)
    X, Y = np.meshgrid(g, g)
    p = np.exp(-POTENTIALS[name](np.column_stack([X.ravel(), Y.ravel()]))).reshape(X.shape)
    return float(np.log(np.trapezoid(np.trapezoid(p, g, axis=1), g)))
