"""Noisy 2-D spirals observed at irregular times (the latent-ODE experiment, Table 2).

The construction follows torchdiffeq's latent-ODE example:

* a time grid of ``n_total`` points on ``[0, 6 pi]``;
* two Archimedean spirals on that grid, with ``b = 0.3``: a counter-clockwise
  one, radius ``b s`` at angle ``s = t``, centred at ``(5, 0)``, and a
  clockwise one, radius ``50 b / s`` at angle ``s = 6 pi + 1 - t``, centred
  at ``(-5, 0)``;
* per spiral, a direction (each with probability 1/2) and a start index
  drawn uniformly, away from both ends of the grid; the ``n_obs`` grid points
  from the start are observed with Gaussian noise of standard deviation
  ``noise_std``; every spiral's window is put on the common relative clock
  ``t = grid[:n_obs]`` (so every latent trajectory starts at ``t = 0``).

For the paper's Table 2, :func:`subsample` keeps ``k`` of the ``n_obs`` points
of every spiral (drawn without replacement: irregular, different per spiral)
and the ``n_held`` grid points after the window are the held-out points on
which predictions are scored (the paper reports the RMSE on the points that
extend beyond those used for training).
"""
from typing import NamedTuple

import numpy as np

#: Spiral slope ``b`` of torchdiffeq's example (``r = b s``; the clockwise
#: spiral has ``r = 50 b / s``).
SLOPE = 0.3
#: Horizontal offsets of the two spiral centres.
CENTRE = 5.0


class Spirals(NamedTuple):
    """What :func:`spirals` returns.

    Attributes
    ----------
    t : ndarray, shape (n_obs,)
        Relative observation times (the same for every spiral), ``t[0] = 0``.
    x : ndarray, shape (n_spirals, n_obs, 2)
        Noisy observations.
    x_true : ndarray, shape (n_spirals, n_obs, 2)
        The noiseless points.
    t_held : ndarray, shape (n_held,)
        Times of the held-out points after the window.
    x_held : ndarray, shape (n_spirals, n_held, 2)
        Noiseless held-out points (the targets of Table 2's RMSE).
    x_held_noisy : ndarray, shape (n_spirals, n_held, 2)
        The same with observation noise.
    clockwise : ndarray of bool, shape (n_spirals,)
    start : ndarray of int, shape (n_spirals,)
        Grid index of every window's first point.
    grid : ndarray, shape (n_total,)
        The full time grid on ``[0, 6 pi]``.
    paths : ndarray, shape (2, n_total, 2)
        The two whole spirals on ``grid``: counter-clockwise, clockwise.
    noise_std : float
    """

    t: np.ndarray
    x: np.ndarray
    x_true: np.ndarray
    t_held: np.ndarray
    x_held: np.ndarray
    x_held_noisy: np.ndarray
    clockwise: np.ndarray
    start: np.ndarray
    grid: np.ndarray
    paths: np.ndarray
    noise_std: float


class Irregular(NamedTuple):
    """A batch of irregularly observed sequences on the union of their times.

    Attributes
    ----------
    t : ndarray, shape (T,)
        Sorted union of the observation times of the batch.
    x : ndarray, shape (B, T, D)
        Observations; entries where ``mask`` is False are zero.
    mask : ndarray of bool, shape (B, T)
        True where sequence ``b`` is observed at ``t[j]``.
    t_held : ndarray, shape (H,)
        Held-out times (after every observation).
    x_held : ndarray, shape (B, H, D)
        Noiseless held-out values.
    """

    t: np.ndarray
    x: np.ndarray
    mask: np.ndarray
    t_held: np.ndarray
    x_held: np.ndarray


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer; got {name}={value!r}.")
    return int(value)


def spiral_paths(n_total=1000, stop=6 * np.pi, slope=SLOPE):
    """The two whole spirals on ``linspace(0, stop, n_total)``.

    Returns
    -------
    grid : ndarray, shape (n_total,)
    paths : ndarray, shape (2, n_total, 2)
        ``paths[0]`` counter-clockwise (centre ``(5, 0)``), ``paths[1]``
        clockwise (centre ``(-5, 0)``).
    """
    grid = np.linspace(0.0, stop, n_total)
    s_cc = grid
    r_cc = slope * s_cc
    s_cw = stop + 1.0 - grid
    r_cw = slope * 50.0 / s_cw
    cc = np.stack([r_cc * np.cos(s_cc) + CENTRE, r_cc * np.sin(s_cc)], axis=1)
    cw = np.stack([r_cw * np.cos(s_cw) - CENTRE, r_cw * np.sin(s_cw)], axis=1)
    return grid, np.stack([cc, cw])


def spirals(n_spirals=1000, n_total=1000, n_obs=100, noise_std=0.3, seed=0, *, n_held=None):
    """Noisy windows of two spiral families (torchdiffeq's latent-ODE data).

    Parameters
    ----------
    n_spirals : int, default 1000
    n_total : int, default 1000
        Points of the time grid on ``[0, 6 pi]``.
    n_obs : int, default 100
        Consecutive grid points observed per spiral.
    noise_std : float, default 0.3
        Standard deviation of the Gaussian observation noise.
    seed : int or numpy.random.Generator, default 0
    n_held : int, optional
        Held-out grid points after each window (default ``n_obs``).

    Returns
    -------
    Spirals

    Notes
    -----
    torchdiffeq draws the start index uniformly in ``[n_obs, n_total - n_obs)``;
    here the window and the held-out points must both fit, so the start is
    uniform in ``[n_obs, n_total - n_obs - n_held]``.

    Examples
    --------
    >>> from nodekit.datasets import spirals
    >>> d = spirals(n_spirals=10, seed=0)
    >>> d.x.shape, d.x_held.shape
    ((10, 100, 2), (10, 100, 2))
    """
    n_spirals = _positive_int(n_spirals, "n_spirals")
    n_total = _positive_int(n_total, "n_total")
    n_obs = _positive_int(n_obs, "n_obs")
    n_held = n_obs if n_held is None else _positive_int(n_held, "n_held")
    if 2 * n_obs + n_held > n_total:
        raise ValueError(f"`n_total` must be at least 2 n_obs + n_held = "
                         f"{2 * n_obs + n_held} (the windows keep n_obs points from the "
                         f"start of the grid); got n_total={n_total}. Lower `n_obs` or "
                         f"`n_held`.")
    if not (np.isfinite(noise_std) and noise_std >= 0):
        raise ValueError(f"`noise_std` must be finite and non-negative; got {noise_std!r}.")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    grid, paths = spiral_paths(n_total)
    start = rng.integers(n_obs, n_total - n_obs - n_held + 1, size=n_spirals)
    clockwise = rng.random(n_spirals) < 0.5
    idx = start[:, None] + np.arange(n_obs + n_held)[None, :]
    truth = paths[clockwise.astype(int)[:, None], idx]          # (n, n_obs + n_held, 2)
    noisy = truth + noise_std * rng.standard_normal(truth.shape)
    t_all = grid[:n_obs + n_held]
    return Spirals(t=t_all[:n_obs].copy(), x=noisy[:, :n_obs], x_true=truth[:, :n_obs],
                   t_held=t_all[n_obs:].copy(), x_held=truth[:, n_obs:],
                   x_held_noisy=noisy[:, n_obs:], clockwise=clockwise, start=start,
                   grid=grid, paths=paths, noise_std=float(noise_std))


def subsample(data, k, seed=0):
    """Keep ``k`` irregular observation times per spiral (Table 2's setting).

    Every spiral keeps its own ``k`` of the ``n_obs`` window points, drawn
    without replacement; the batch is laid out on the sorted union of the
    kept times with a mask.

    Parameters
    ----------
    data : Spirals
    k : int
        Observations kept per spiral, ``1 <= k <= n_obs``.
    seed : int or numpy.random.Generator, default 0

    Returns
    -------
    Irregular
    """
    n, n_obs = data.x.shape[:2]
    k = _positive_int(k, "k")
    if k > n_obs:
        raise ValueError(f"`k` must be at most the {n_obs} observations of each window; "
                         f"got k={k}.")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    keep = np.zeros((n, n_obs), dtype=bool)
    for b in range(n):
        keep[b, rng.choice(n_obs, size=k, replace=False)] = True
    used = keep.any(axis=0)
    mask = keep[:, used]
    x = np.where(mask[:, :, None], data.x[:, used], 0.0)
    return Irregular(t=data.t[used].copy(), x=x, mask=mask, t_held=data.t_held.copy(),
                     x_held=data.x_held.copy())


def union_batch(times, values):
    """Lay out sequences with their own times on the sorted union of the times.

    Parameters
    ----------
    times : sequence of array_like, each shape (n_b,)
        Strictly increasing observation times of every sequence.
    values : sequence of array_like, each shape (n_b, D)

    Returns
    -------
    t : ndarray, shape (T,)
    x : ndarray, shape (B, T, D)
        Zero where not observed.
    mask : ndarray of bool, shape (B, T)
    """
    if len(times) != len(values) or not len(times):
        raise ValueError(f"`times` and `values` must be non-empty sequences of the same "
                         f"length; got {len(times)} and {len(values)}.")
    ts = [np.asarray(t, dtype=np.float64) for t in times]
    xs = [np.asarray(x, dtype=np.float64) for x in values]
    for b, (t, x) in enumerate(zip(ts, xs)):
        if t.ndim != 1 or t.size == 0 or np.any(np.diff(t) <= 0):
            raise ValueError(f"`times[{b}]` must be a non-empty, strictly increasing 1-D "
                             f"array; got {t!r}.")
        if x.ndim != 2 or x.shape[0] != t.size or x.shape[1] != xs[0].shape[1]:
            raise ValueError(f"`values[{b}]` must have shape ({t.size}, {xs[0].shape[1]}); "
                             f"got {x.shape}.")
    t_union = np.unique(np.concatenate(ts))
    x = np.zeros((len(ts), t_union.size, xs[0].shape[1]))
    mask = np.zeros((len(ts), t_union.size), dtype=bool)
    for b, (t, xb) in enumerate(zip(ts, xs)):
        cols = np.searchsorted(t_union, t)
        x[b, cols] = xb
        mask[b, cols] = True
    return t_union, x, mask


__all__ = ["Irregular", "Spirals", "spiral_paths", "spirals", "subsample", "union_batch"]
