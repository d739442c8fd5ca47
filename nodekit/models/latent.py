"""Latent ODEs for irregularly sampled time series (Chen et al. 2018, section 5).

A generative model of sequences: an initial latent state ``z0 ~ N(0, I)``
evolves by a neural ODE ``dz/dt = f(z)``, and each observation is a noisy
decoding ``x_i ~ N(dec(z(t_i)), noise_std^2 I)``.  It is trained as a
variational autoencoder: a recurrent network run *backwards in time* over a
sequence's observations gives the approximate posterior
``q(z0 | x) = N(mu, diag(exp(logvar)))``; one reparameterised sample
``z0 = mu + exp(logvar / 2) eps`` is integrated through every observation
time with ``nk.odeint`` (compiled ``nk.nn`` dynamics, the adjoint gradient by
default), and the evidence lower bound is

    ELBO = sum_i log N(x_i | dec(z(t_i)), noise_std^2 I) - KL(q(z0 | x) || N(0, I)),

with the KL divergence in closed form.

Batches of sequences with their own times are laid out on the sorted union
``t`` of their times with a boolean ``mask`` (B, T): one ODE solve carries the
whole batch through ``t``; the likelihood of sequence ``b`` reads only the
points where ``mask[b]`` is True, and the encoder updates its state only
there.  :func:`nodekit.datasets.union_batch` builds this layout.

Also here: :class:`RNNBaseline` (the paper's comparison, an RNN fed time
gaps) and :class:`PoissonProcess` (event times whose intensity is driven by
a latent trajectory, the paper's section 5.1).

References
----------
.. [1] R. T. Q. Chen, Y. Rubanova, J. Bettencourt, D. Duvenaud, "Neural
   Ordinary Differential Equations", NeurIPS 2018, section 5.
.. [2] Y. Rubanova, R. T. Q. Chen, D. Duvenaud, "Latent ODEs for Irregularly-
   Sampled Time Series", NeurIPS 2019.
.. [3] D. P. Kingma, M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
"""
import math
from typing import NamedTuple

import autograd.numpy as anp
from autograd.extend import defvjp, primitive
import numpy as np

from .. import _jitflags
from .._checks import check_options
from ..nn import MLP, Chain, Dense
from ..nn.decoder import decoder_log_likelihood
from ..nn.model import check_theta_shape
from ..nn.recurrent import elman_final, elman_sequence, last_update, take_rows
from ..primitive import _ODEINT_OPTIONS, odeint

#: Recurrent cells of the encoder.
ENCODERS = ("rnn", "gru")

#: Solver options of the latent solve unless given: torchdiffeq's ``odeint``
#: defaults (dopri5, rtol 1e-7, atol 1e-9), as in its latent-ODE example.
DEFAULT_SOLVER = {"method": "dopri5", "rtol": 1e-7, "atol": 1e-9}

_LOG_2PI = math.log(2.0 * math.pi)


def _rng(seed):
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _sigmoid(x):
    return 0.5 * (anp.tanh(0.5 * x) + 1.0)


# ----------------------------------------------------------------------------
# Batches on the union of times


class Batch(NamedTuple):
    """A checked batch: union times, observations, mask and the start time."""

    t: np.ndarray      # (T,)
    x: np.ndarray      # (B, T, D), zero where not observed
    mask: np.ndarray   # (B, T) bool
    t0: float


def check_batch(t_obs, x_obs, mask, obs_dim, t0=None):
    """Validate a masked union-of-times batch.

    Parameters
    ----------
    t_obs : array_like, shape (T,)
        Strictly increasing union of the observation times.
    x_obs : array_like, shape (B, T, obs_dim)
        Observations; entries where ``mask`` is False are ignored (they may be
        NaN).
    mask : array_like of bool, shape (B, T)
        True where a sequence is observed; every sequence needs at least one.
    obs_dim : int
    t0 : float, optional
        Time of the initial latent state, ``t0 <= t_obs[0]`` (default ``t_obs[0]``).

    Returns
    -------
    Batch
    """
    t = np.asarray(t_obs, dtype=np.float64)
    if t.ndim != 1 or t.size < 1 or not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise ValueError(f"`t_obs` must be a non-empty, finite, strictly increasing 1-D array "
                         f"(the sorted union of the observation times); got {t!r}.")
    x = np.asarray(x_obs, dtype=np.float64)
    if x.ndim != 3 or x.shape[1:] != (t.size, obs_dim):
        raise ValueError(f"`x_obs` must have shape (batch, {t.size}, {obs_dim}) (batch, "
                         f"len(t_obs), obs_dim); got {x.shape}.")
    m = np.asarray(mask)
    if m.shape != x.shape[:2]:
        raise ValueError(f"`mask` must have shape {x.shape[:2]} (batch, len(t_obs)); got "
                         f"{m.shape}.")
    if m.dtype != bool:
        if not np.all((m == 0) | (m == 1)):
            raise ValueError("`mask` must be boolean (or 0/1).")
        m = m.astype(bool)
    empty = np.flatnonzero(~m.any(axis=1))
    if empty.size:
        raise ValueError(f"`mask`: every sequence needs at least one observation; sequences "
                         f"{empty[:10].tolist()} have none.")
    if not m.all():
        x = np.where(m[:, :, None], x, 0.0)
    if not np.all(np.isfinite(x)):
        raise ValueError("`x_obs` must be finite where `mask` is True.")
    t0 = float(t[0]) if t0 is None else float(t0)
    if not (math.isfinite(t0) and t0 <= t[0]):
        raise ValueError(f"`t0` must be finite and at most t_obs[0] = {t[0]!r}; got t0={t0!r}.")
    return Batch(t, x, m, t0)


def time_gaps(batch):
    """Per observation, the time since the sequence's previous one (or since ``t0``).

    Returns
    -------
    ndarray, shape (B, T)
        Zero where a sequence is not observed.
    """
    out = np.empty(batch.mask.shape)
    _gaps_into(batch.t, batch.t0, batch.mask, out)
    return out


def encoder_inputs(batch):
    """The encoder's input at every time: ``[x, gap]`` (B, T, obs_dim + 1), with
    the gaps of :func:`time_gaps` (one compiled pass)."""
    B, T, D = batch.x.shape
    out = np.empty((B, T, D + 1))
    _gaps_into(batch.t, batch.t0, batch.mask, out[:, :, D])
    _copy_features(batch.x, out)
    return out


@_jitflags.jit
def _gaps_into(t, t0, mask, out):
    """``out[b, j]``: ``t[j]`` minus the time of row ``b``'s previous observation
    (``t0`` before the first) where ``mask[b, j]``, else 0."""
    B, T = mask.shape
    for b in range(B):
        t_prev = t0
        for j in range(T):
            if mask[b, j]:
                out[b, j] = t[j] - t_prev
                t_prev = t[j]
            else:
                out[b, j] = 0.0


def _time_major(x):
    """``x`` (B, T, D) as a C-contiguous (T, B, D) array (a compiled copy:
    NumPy's copy of the transposed view is several times slower)."""
    out = np.empty((x.shape[1], x.shape[0], x.shape[2]))
    _copy_features(x, np.transpose(out, (1, 0, 2)))
    return out


@_jitflags.jit
def _copy_features(x, out):
    """``out[b, j, :D] = x[b, j]`` (``out`` may have more features than ``x``,
    and may be a strided view)."""
    B, T, D = x.shape
    for b in range(B):
        for j in range(T):
            for i in range(D):
                out[b, j, i] = x[b, j, i]


def _solve_grid(t0, t):
    """``t`` with ``t0`` prepended unless it is already ``t[0]``; and the offset."""
    t = np.asarray(t, dtype=np.float64)
    if t[0] == t0:
        return t, 0
    return np.concatenate([[t0], t]), 1


@primitive
def _drop_leading(x, k):
    """``x[k:]`` with a VJP that pads the cotangent with zeros (autograd's
    slicing VJP scatters with ``np.add.at``, slow on a whole trajectory)."""
    return x[k:]


defvjp(_drop_leading, lambda ans, x, k: lambda g: anp.concatenate(
    [anp.zeros((k,) + anp.shape(g)[1:]), g]) if k else g)


# ----------------------------------------------------------------------------
# Recurrent cells (autograd-NumPy; see docs/latent.md for why they are not compiled)


def rnn_cell(p, x, h):
    """Elman cell ``h' = tanh(x Wx + h Wh + b)`` on a batch: x (B, k), h (B, H).

    ``p``: the blocks of :func:`cell_params` (``W = [Wx; Wh]`` split by rows).
    """
    return anp.tanh(anp.dot(x, p["Wx"]) + anp.dot(h, p["Wh"]) + p["b"])


def gru_cell(p, x, h):
    """GRU cell (Cho et al. 2014) on a batch, in PyTorch's form.

    ``r = s(x Wrx + h Wrh + br)``, ``u = s(x Wux + h Wuh + bu)``,
    ``n = tanh(x Wnx + (r h) Wnh + bn)``, ``h' = (1 - u) n + u h``.
    """
    r = _sigmoid(anp.dot(x, p["Wrx"]) + anp.dot(h, p["Wrh"]) + p["br"])
    u = _sigmoid(anp.dot(x, p["Wux"]) + anp.dot(h, p["Wuh"]) + p["bu"])
    n = anp.tanh(anp.dot(x, p["Wnx"]) + anp.dot(r * h, p["Wnh"]) + p["bn"])
    return (1.0 - u) * n + u * h


#: Per cell: the step function and its weight blocks (each (n_in + H, H), with
#: the bias ``b`` + the block name's suffix).
_CELLS = {"rnn": (rnn_cell, ("W",)), "gru": (gru_cell, ("Wr", "Wu", "Wn"))}


def _check_cell(cell, name="encoder"):
    if cell not in ENCODERS:
        raise ValueError(f"Unknown `{name}` {cell!r}; valid cells are {list(ENCODERS)}.")
    return cell


def _bias_name(w):
    return "b" + w[1:]


class Parts:
    """Named ``nk.nn`` networks whose parameters are consecutive slices of one ``theta``."""

    def __init__(self):
        self.nets = {}
        self.slices = {}
        self.size = 0

    def add(self, name, net):
        self.nets[name] = net
        self.slices[name] = slice(self.size, self.size + net.n_params)
        self.size += net.n_params
        return net

    def apply(self, name, theta, h):
        """Network ``name`` on the rows of ``h``, its parameters read from ``theta``."""
        return self.nets[name].apply(0.0, h, theta[self.slices[name]])

    def dense(self, name, theta):
        """``(W, b)`` of the one-layer network ``name`` (W of shape (n_in, n_out))."""
        (_, _, w_shape), (_, off_b, _) = self.nets[name].layout[0]
        th = theta[self.slices[name]]
        return anp.reshape(th[:off_b], w_shape), th[off_b:]

    def init(self, seed):
        """Every network's ``'torch'`` initialisation, drawn in turn from one generator."""
        rng = _rng(seed)
        return np.concatenate([net.init(rng, scheme="torch") for net in self.nets.values()])


def _add_cell(parts, prefix, cell, n_in, hidden):
    """One ``Dense(n_in + hidden, hidden)`` per weight block of the cell."""
    for w in _CELLS[cell][1]:
        parts.add(f"{prefix}.{w}", Chain(Dense(n_in + hidden, hidden)))


def cell_params(parts, theta, prefix, cell, n_in):
    """The blocks a cell reads: every ``W`` split into its input and state rows."""
    p = {}
    for w in _CELLS[cell][1]:
        W, b = parts.dense(f"{prefix}.{w}", theta)
        p[w + "x"], p[w + "h"] = W[:n_in], W[n_in:]
        p[_bias_name(w)] = b
    return p


def run_cells(cell, p, inputs, mask, reverse=False, compiled=True):
    """A masked cell run: the new state at every time (B, T, H) and the final states (B, H).

    The Elman cell runs as one compiled primitive
    (:func:`nodekit.nn.recurrent.elman_sequence`) when ``compiled``; the GRU
    (and the Elman cell with ``compiled=False``) step by step in autograd-NumPy.
    The states at times where a row is not observed are computed but not
    carried on.
    """
    n, T = mask.shape
    if cell == "rnn" and compiled:
        hs = elman_sequence(p["Wx"], p["Wh"], p["b"], inputs, mask, reverse)
        return hs, take_rows(hs, last_update(mask, reverse))
    step = _CELLS[cell][0]
    h = np.zeros((n, np.shape(p[_bias_name(_CELLS[cell][1][0])])[0]))
    new = [None] * T
    for j in (range(T - 1, -1, -1) if reverse else range(T)):
        new[j] = step(p, inputs[:, j], h)
        h = anp.where(mask[:, j][:, None], new[j], h)
    return anp.stack(new, axis=1), h


def run_final(cell, p, inputs, mask, reverse=False, compiled=True):
    """The final states (B, H) of a masked cell run (see :func:`run_cells`).

    The compiled Elman cell returns them alone
    (:func:`nodekit.nn.recurrent.elman_final`), without the states at every time.
    """
    if cell == "rnn" and compiled:
        return elman_final(p["Wx"], p["Wh"], p["b"], inputs, mask, reverse)
    return run_cells(cell, p, inputs, mask, reverse, compiled)[1]


def gaussian_log_likelihood(x, mean, std, mask):
    """``sum`` over observed points and features of ``log N(x | mean, std^2)``: (B,).

    ``x``, ``mean`` of shape (B, T, D); ``mask`` (B, T).
    """
    r = (x - mean) / std
    d = x.shape[-1]
    per_point = -0.5 * anp.sum(r * r, axis=2) - d * (math.log(std) + 0.5 * _LOG_2PI)
    return anp.sum(per_point * mask, axis=1)


def kl_to_standard_normal(mu, logvar):
    """``KL(N(mu, diag(exp(logvar))) || N(0, I))`` per row: (B,)."""
    return 0.5 * anp.sum(mu * mu + anp.exp(logvar) - logvar - 1.0, axis=1)


# ----------------------------------------------------------------------------
# The latent ODE


class LatentODE:
    """A latent ODE: recurrent encoder, neural-ODE latent dynamics, decoder.

    Parameters
    ----------
    obs_dim : int, default 2
    latent_dim : int, default 4
    hidden : int, default 20
        Width of the two hidden layers of the dynamics ``latent -> hidden ->
        hidden -> latent`` (ELU) and of the decoder ``latent -> hidden ->
        obs_dim`` (ReLU).
    rnn_hidden : int, default 25
        State width of the encoder.
    encoder : {'rnn', 'gru'}, default 'rnn'
        Elman RNN (the paper's) or GRU; its input at an observation is
        ``[x_i, t_i - t_prev]`` (the gap to the sequence's previous
        observation, or to ``t0`` for the first), run backwards in time.
    noise_std : float, default 0.3
        Standard deviation of the Gaussian observation noise.
    compiled_cells : bool, default True
        Run the Elman encoder as one compiled primitive
        (:func:`nodekit.nn.recurrent.elman_sequence`); False steps it in
        autograd-NumPy (the GRU always is).
    **solver_options
        Passed to :func:`nodekit.odeint` for the latent solve (``method``,
        ``rtol``, ``atol``, ``gradient``, ``step_size``, ...).  Defaults:
        :data:`DEFAULT_SOLVER` with the adjoint gradient.

    Attributes
    ----------
    dynamics : nodekit.nn.Sequential
        ``f``; its compiled ``dynamics.ode`` is what is solved.
    parts : Parts
        The networks sharing ``theta``, in order: ``'dyn'`` (the dynamics),
        the encoder cell's blocks ``'enc.W'`` (or ``'enc.Wr'``, ``'enc.Wu'``,
        ``'enc.Wn'``), ``'enc.out'`` (state to ``[mu, logvar]``), ``'dec'``.
    n_params : int

    Examples
    --------
    >>> import numpy as np, nodekit as nk
    >>> model = nk.models.LatentODE(obs_dim=2, latent_dim=4, hidden=20, rnn_hidden=25)
    >>> theta = model.init(0)
    >>> t = np.linspace(0.0, 1.0, 5)
    >>> x, mask = np.zeros((3, 5, 2)), np.ones((3, 5), dtype=bool)
    >>> model.predict(theta, t, x, mask, t, n_samples=2).shape
    (2, 3, 5, 2)
    """

    def __init__(self, obs_dim=2, latent_dim=4, hidden=20, rnn_hidden=25, encoder="rnn",
                 noise_std=0.3, *, compiled_cells=True, **solver_options):
        for name, v in (("obs_dim", obs_dim), ("latent_dim", latent_dim), ("hidden", hidden),
                        ("rnn_hidden", rnn_hidden)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"`{name}` must be a positive integer; got {name}={v!r}.")
        if not (isinstance(noise_std, (int, float)) and math.isfinite(noise_std)
                and noise_std > 0):
            raise ValueError(f"`noise_std` must be a positive number; got {noise_std!r}.")
        self.obs_dim, self.latent_dim = int(obs_dim), int(latent_dim)
        self.hidden, self.rnn_hidden = int(hidden), int(rnn_hidden)
        self.encoder = _check_cell(encoder)
        self.compiled_cells = bool(compiled_cells)
        self.noise_std = float(noise_std)
        check_options(solver_options, tuple(o for o in _ODEINT_OPTIONS if o != "stats"),
                      "LatentODE")
        self.solver_options = {**DEFAULT_SOLVER, **solver_options}
        self.dynamics = MLP(self.latent_dim, [self.hidden, self.hidden], "elu")
        P = self.parts = Parts()
        P.add("dyn", self.dynamics)
        _add_cell(P, "enc", self.encoder, self.obs_dim + 1, self.rnn_hidden)
        P.add("enc.out", Chain(Dense(self.rnn_hidden, 2 * self.latent_dim)))
        P.add("dec", Chain(Dense(self.latent_dim, self.hidden), "relu",
                           Dense(self.hidden, self.obs_dim)))

    @property
    def n_params(self):
        return self.parts.size

    def init(self, seed=0):
        """Initial parameters: PyTorch's ``nn.Linear`` default everywhere.

        Returns
        -------
        theta : ndarray, shape (n_params,)
        """
        return self.parts.init(seed)

    def _check_theta(self, theta):
        check_theta_shape(theta, self.n_params, self)

    # ------------------------------------------------------------------ pieces

    def encode(self, theta, t_obs, x_obs, mask, *, t0=None):
        """The approximate posterior ``q(z0 | x)`` of every sequence.

        The encoder runs backwards in time over each sequence's own
        observations (rows are updated only where ``mask`` is True).

        Returns
        -------
        mu, logvar : arrays, shape (B, latent_dim)
        """
        self._check_theta(theta)
        batch = check_batch(t_obs, x_obs, mask, self.obs_dim, t0)
        return self._encode(theta, batch)

    def _encode(self, theta, batch):
        inputs = encoder_inputs(batch)
        p = cell_params(self.parts, theta, "enc", self.encoder, self.obs_dim + 1)
        h = run_final(self.encoder, p, inputs, batch.mask, reverse=True,
                      compiled=self.compiled_cells)
        out = self.parts.apply("enc.out", theta, h)
        return out[:, :self.latent_dim], out[:, self.latent_dim:]

    def decode(self, theta, z):
        """``dec(z)`` for latent states of shape (..., latent_dim): (..., obs_dim)."""
        return self.parts.apply("dec", theta, z)

    def latent_trajectory(self, theta, z0, t, *, stats=None, **options):
        """Solve the latent ODE from ``z0`` (at ``t[0]``) through ``t``.

        Parameters
        ----------
        z0 : array, shape (B, latent_dim)
        t : array_like, shape (m,)
            Strictly monotone.
        stats : dict, optional
            Filled by ``nk.odeint``.
        **options
            Override the model's solver options for this solve.

        Returns
        -------
        array, shape (m, B, latent_dim)
            Differentiable (autograd) in ``theta`` and ``z0``.
        """
        opts = {**self.solver_options, **options}
        return odeint(self.dynamics.ode, z0, np.asarray(t, dtype=np.float64),
                      theta[self.parts.slices["dyn"]], stats=stats, **opts)

    # ------------------------------------------------------------------ objective

    def elbo(self, theta, t_obs, x_obs, mask, seed=0, *, t0=None, eps=None,
             reduction="mean", stats=None):
        """The evidence lower bound, one reparameterised sample of ``z0``.

        Parameters
        ----------
        theta : array, shape (n_params,)
        t_obs : array_like, shape (T,)
            Sorted union of the batch's observation times.
        x_obs : array_like, shape (B, T, obs_dim)
        mask : array_like of bool, shape (B, T)
        seed : int or numpy.random.Generator, default 0
            Draws ``eps ~ N(0, I)`` of shape (B, latent_dim).
        t0 : float, optional
            Time of ``z0`` (default ``t_obs[0]``).
        eps : array_like, shape (B, latent_dim), optional
            The standard-normal noise itself (overrides ``seed``).
        reduction : {'mean', 'sum', 'none'}, default 'mean'
            Over the sequences; ``'none'`` returns shape (B,).
        stats : dict, optional
            Filled by ``nk.odeint`` (NFE forward and backward).

        Returns
        -------
        float or array, shape (B,)
            Differentiable with autograd in ``theta``, through ``nk.odeint``
            in the model's gradient mode.
        """
        self._check_theta(theta)
        batch = check_batch(t_obs, x_obs, mask, self.obs_dim, t0)
        n = batch.x.shape[0]
        eps = self._noise(eps, seed, (n, self.latent_dim))
        mu, logvar = self._encode(theta, batch)
        z0 = mu + anp.exp(0.5 * logvar) * eps
        grid, skip = _solve_grid(batch.t0, batch.t)
        zs = _drop_leading(self.latent_trajectory(theta, z0, grid, stats=stats), skip)
        # decoder and likelihood as one primitive (time-major, like the solve's output)
        loglik = decoder_log_likelihood(
            self.parts.nets["dec"], theta[self.parts.slices["dec"]], zs,
            _time_major(batch.x), np.ascontiguousarray(batch.mask.T, dtype=np.float64),
            self.noise_std)
        return _reduce(loglik - kl_to_standard_normal(mu, logvar), reduction)

    def _noise(self, eps, seed, shape):
        if eps is None:
            return _rng(seed).standard_normal(shape)
        e = np.asarray(eps, dtype=np.float64)
        if e.shape != shape:
            raise ValueError(f"`eps` must have shape {shape}; got {e.shape}.")
        return e

    # ------------------------------------------------------------------ prediction

    def predict(self, theta, t_obs, x_obs, mask, t_pred, n_samples=1, seed=0, *, t0=None,
                mean=False, return_latent=False):
        """Reconstruct and extrapolate: decode ``z(t_pred)`` for posterior samples of ``z0``.

        Parameters
        ----------
        t_obs, x_obs, mask : the observed batch (as in :meth:`elbo`).
        t_pred : array_like, shape (P,)
            Strictly monotone prediction times, all on one side of ``t0``
            (increasing from ``t0`` or later; or decreasing from ``t0`` or earlier).
        n_samples : int, default 1
        seed : int or Generator, default 0
        mean : bool, default False
            Use the posterior mean ``mu`` instead of samples (every sample is
            then the same).
        return_latent : bool, default False
            Also return the latent trajectories.

        Returns
        -------
        x : ndarray, shape (n_samples, B, P, obs_dim)
        z : ndarray, shape (n_samples, B, P, latent_dim)
            Only with ``return_latent``.
        """
        self._check_theta(theta)
        batch = check_batch(t_obs, x_obs, mask, self.obs_dim, t0)
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) \
                or n_samples < 1:
            raise ValueError(f"`n_samples` must be a positive integer; got {n_samples!r}.")
        mu, logvar = (np.asarray(a) for a in self._encode(theta, batch))
        n = mu.shape[0]
        if mean:
            z0 = np.broadcast_to(mu, (n_samples,) + mu.shape)
        else:
            eps = _rng(seed).standard_normal((n_samples,) + mu.shape)
            z0 = mu + np.exp(0.5 * logvar) * eps
        zs = self._trajectories(theta, z0.reshape(-1, self.latent_dim), batch.t0, t_pred)
        zs = np.transpose(zs.reshape(len(zs), n_samples, n, self.latent_dim), (1, 2, 0, 3))
        xs = np.asarray(self.decode(theta, zs))
        return (xs, zs) if return_latent else xs

    def _trajectories(self, theta, z0, t0, t_pred):
        t_pred = np.asarray(t_pred, dtype=np.float64)
        if t_pred.ndim != 1 or t_pred.size < 1 or not np.all(np.isfinite(t_pred)):
            raise ValueError(f"`t_pred` must be a non-empty finite 1-D array; got {t_pred!r}.")
        d = np.diff(np.concatenate([[t0], t_pred]))
        if not (np.all(d[1:] > 0) and d[0] >= 0) and not (np.all(d[1:] < 0) and d[0] <= 0):
            raise ValueError(f"`t_pred` must be strictly monotone and start at or beyond "
                             f"t0 = {t0!r} in its direction; got {t_pred!r}.")
        grid, skip = _solve_grid(t0, t_pred)
        if grid.size == 1:
            return np.asarray(z0)[None]
        return np.asarray(self.latent_trajectory(theta, z0, grid))[skip:]

    def sample_prior(self, theta, t, n, seed=0, *, return_latent=False):
        """Sequences generated from the prior: ``z0 ~ N(0, I)`` at ``t[0]``.

        Returns
        -------
        x : ndarray, shape (n, len(t), obs_dim)
            The decoded means (no observation noise added).
        z : ndarray, shape (n, len(t), latent_dim)
            Only with ``return_latent``.
        """
        self._check_theta(theta)
        t = np.asarray(t, dtype=np.float64)
        z0 = _rng(seed).standard_normal((int(n), self.latent_dim))
        zs = np.transpose(self._trajectories(theta, z0, t[0], t), (1, 0, 2))
        xs = np.asarray(self.decode(theta, zs))
        return (xs, zs) if return_latent else xs

    def __repr__(self):
        return (f"LatentODE(obs_dim={self.obs_dim}, latent_dim={self.latent_dim}, "
                f"hidden={self.hidden}, rnn_hidden={self.rnn_hidden}, "
                f"encoder={self.encoder!r}, noise_std={self.noise_std})")


def _reduce(value, reduction):
    if reduction == "mean":
        return anp.mean(value)
    if reduction == "sum":
        return anp.sum(value)
    if reduction == "none":
        return value
    raise ValueError(f"Unknown `reduction` {reduction!r}; valid values are "
                     "['mean', 'sum', 'none'].")


# ----------------------------------------------------------------------------
# The RNN baseline


class RNNBaseline:
    """The paper's RNN baseline: a recurrent net fed time gaps, predicting ahead.

    At each observation ``i`` of a sequence the cell reads the previous
    observation and the gap ``t_i - t_{i-1}`` (zeros and ``t_i - t0`` at the
    first) and its output layer predicts ``x_i``; trained by the Gaussian
    log-likelihood of these one-step-ahead predictions (fixed
    ``noise_std``, so it is the squared error up to constants).  Beyond the
    last observation it predicts by feeding back its own predictions
    (:meth:`predict`).

    Parameters
    ----------
    obs_dim : int, default 2
    rnn_hidden : int, default 25
    cell : {'rnn', 'gru'}, default 'rnn'
    noise_std : float, default 0.3
    compiled_cells : bool, default True
        As for :class:`LatentODE`.
    """

    def __init__(self, obs_dim=2, rnn_hidden=25, cell="rnn", noise_std=0.3, *,
                 compiled_cells=True):
        self.obs_dim, self.rnn_hidden = int(obs_dim), int(rnn_hidden)
        self.cell = _check_cell(cell, "cell")
        self.compiled_cells = bool(compiled_cells)
        self.noise_std = float(noise_std)
        P = self.parts = Parts()
        _add_cell(P, "rnn", self.cell, self.obs_dim + 1, self.rnn_hidden)
        P.add("out", Chain(Dense(self.rnn_hidden, self.obs_dim)))

    @property
    def n_params(self):
        return self.parts.size

    def init(self, seed=0):
        """Initial parameters (PyTorch's ``nn.Linear`` default)."""
        return self.parts.init(seed)

    def _check_theta(self, theta):
        check_theta_shape(theta, self.n_params, self)

    def _run(self, theta, batch):
        """One-step-ahead predictions (B, T, D) and the final state and input."""
        p = cell_params(self.parts, theta, "rnn", self.cell, self.obs_dim + 1)
        W, b = self.parts.dense("out", theta)
        n, T = batch.mask.shape
        prev = np.zeros((n, T, self.obs_dim))     # the observation before each time
        last = np.zeros((n, self.obs_dim))
        for j in range(T):
            prev[:, j] = last
            last = np.where(batch.mask[:, j][:, None], batch.x[:, j], last)
        inputs = np.concatenate([prev, time_gaps(batch)[:, :, None]], axis=2)
        hs, h = run_cells(self.cell, p, inputs, batch.mask, compiled=self.compiled_cells)
        preds = anp.reshape(anp.dot(anp.reshape(hs, (n * T, -1)), W) + b,
                            (n, T, self.obs_dim))
        return preds, h, last

    def log_likelihood(self, theta, t_obs, x_obs, mask, *, t0=None, reduction="mean"):
        """Gaussian log-likelihood of the one-step-ahead predictions (the training objective)."""
        self._check_theta(theta)
        batch = check_batch(t_obs, x_obs, mask, self.obs_dim, t0)
        preds = self._run(theta, batch)[0]
        return _reduce(gaussian_log_likelihood(batch.x, preds, self.noise_std, batch.mask),
                       reduction)

    def predict(self, theta, t_obs, x_obs, mask, t_pred, *, t0=None):
        """Predict at times after every sequence's last observation, feeding back predictions.

        Returns
        -------
        ndarray, shape (B, len(t_pred), obs_dim)
        """
        self._check_theta(theta)
        batch = check_batch(t_obs, x_obs, mask, self.obs_dim, t0)
        t_pred = np.asarray(t_pred, dtype=np.float64)
        last = np.array([batch.t[np.flatnonzero(r)[-1]] for r in batch.mask])
        if t_pred.ndim != 1 or t_pred.size < 1 or np.any(np.diff(t_pred) <= 0) \
                or t_pred[0] <= last.max():
            raise ValueError(f"`t_pred` must be strictly increasing and after every "
                             f"sequence's last observation (t = {last.max()!r}); got "
                             f"{t_pred!r}.")
        _, h, prev = self._run(theta, batch)
        cell = _CELLS[self.cell][0]
        p = cell_params(self.parts, theta, "rnn", self.cell, self.obs_dim + 1)
        W, b = self.parts.dense("out", theta)
        out = []
        for tp in t_pred:
            h = cell(p, np.concatenate([prev, (tp - last)[:, None]], axis=1), h)
            prev = np.asarray(anp.dot(h, W) + b)
            last = np.full_like(last, tp)
            out.append(prev)
        return np.stack(out, axis=1)

    def __repr__(self):
        return (f"RNNBaseline(obs_dim={self.obs_dim}, rnn_hidden={self.rnn_hidden}, "
                f"cell={self.cell!r}, noise_std={self.noise_std})")


# ----------------------------------------------------------------------------
# Poisson processes driven by a latent ODE


class PoissonProcess:
    """Event times whose intensity ``lambda(z(t))`` follows a latent trajectory.

    The log-likelihood of events ``t_1 < ... < t_n`` in ``[t0, t_end]`` is
    ``sum_i log lambda(z(t_i)) - int_{t0}^{t_end} lambda(z(t)) dt``.  The
    integral is one more ODE state: the solve carries ``[z, Lambda]`` with
    ``dLambda/dt = lambda(z)``, so a single solve (and its adjoint) gives the
    trajectory at the event times and the compensator at ``t_end``.

    Parameters
    ----------
    dynamics : callable
        ``dynamics(t, z, theta) -> dz/dt`` on a batch ``z`` (B, latent_dim),
        written with autograd-NumPy (e.g. ``nk.nn.Sequential.apply``).
    intensity : callable
        ``intensity(z, theta) -> lambda`` of shape (B,), positive, autograd-NumPy.
    latent_dim : int
    **solver_options
        For :func:`nodekit.odeint` (default dopri5, rtol 1e-7, atol 1e-9).

    Notes
    -----
    The augmented right-hand side is a Python function: autograd forms its
    VJPs at every step of the backward pass.  That is fine for a few
    sequences; it is not the compiled path of :class:`LatentODE`.
    """

    def __init__(self, dynamics, intensity, latent_dim, **solver_options):
        if not (callable(dynamics) and callable(intensity)):
            raise TypeError("`dynamics` and `intensity` must be callables.")
        self.dynamics, self.intensity = dynamics, intensity
        self.latent_dim = int(latent_dim)
        check_options(solver_options, tuple(o for o in _ODEINT_OPTIONS if o != "stats"),
                      "PoissonProcess")
        self.solver_options = {**DEFAULT_SOLVER, **solver_options}

    def _augmented(self, t, y, theta):
        z = y[:, :self.latent_dim]
        lam = self.intensity(z, theta)
        return anp.concatenate([self.dynamics(t, z, theta), anp.reshape(lam, (-1, 1))],
                               axis=1)

    def log_likelihood(self, theta, z0, t_events, mask, t_end, *, t0=0.0, stats=None):
        """Log-likelihood of the events of every sequence of a batch.

        Parameters
        ----------
        theta : array
            Parameters of ``dynamics`` and ``intensity``.
        z0 : array, shape (B, latent_dim)
            Latent states at ``t0``.
        t_events : array_like, shape (T,)
            Sorted union of the event times of the batch, in ``(t0, t_end]``.
        mask : array_like of bool, shape (B, T)
            True where sequence ``b`` has an event at ``t_events[j]``.
        t_end : float
            End of the observation window.

        Returns
        -------
        array, shape (B,)
            Differentiable in ``theta`` and ``z0``.
        """
        te = np.asarray(t_events, dtype=np.float64)
        mask = np.asarray(mask, dtype=bool)
        b = np.shape(z0)[0]
        if te.ndim != 1 or np.any(np.diff(te) <= 0) or (te.size and (te[0] <= t0
                                                                      or te[-1] > t_end)):
            raise ValueError(f"`t_events` must be strictly increasing in (t0, t_end] = "
                             f"({t0!r}, {t_end!r}]; got {te!r}.")
        if mask.shape != (b, te.size):
            raise ValueError(f"`mask` must have shape {(b, te.size)}; got {mask.shape}.")
        grid = np.concatenate([[t0], te, [] if te.size and te[-1] == t_end else [t_end]])
        y0 = anp.concatenate([z0, np.zeros((b, 1))], axis=1)
        ys = odeint(self._augmented, y0, grid, theta, stats=stats, **self.solver_options)
        lam = anp.stack([self.intensity(ys[1 + j, :, :self.latent_dim], theta)
                         for j in range(te.size)], axis=1) if te.size else np.zeros((b, 0))
        log_lam = anp.log(anp.where(mask, lam, 1.0))
        return anp.sum(log_lam * mask, axis=1) - ys[-1, :, self.latent_dim]


def sample_poisson_process(intensity, rate_bound, t_end, seed=0, *, t0=0.0):
    """Event times of a Poisson process with a known intensity, by thinning.

    Lewis and Shedler's method: candidates from a homogeneous process of rate
    ``rate_bound``, each kept with probability ``intensity(t) / rate_bound``.

    Parameters
    ----------
    intensity : callable
        ``intensity(t) -> lambda(t)`` for an array of times.
    rate_bound : float
        An upper bound of the intensity on ``[t0, t_end]``.
    t_end : float
    seed : int or Generator, default 0
    t0 : float, default 0.0

    Returns
    -------
    ndarray
        Sorted event times in ``(t0, t_end)``.

    References
    ----------
    .. [1] P. A. W. Lewis, G. S. Shedler, "Simulation of nonhomogeneous Poisson
       processes by thinning", Naval Research Logistics Quarterly, 1979.
    """
    rng = _rng(seed)
    n = rng.poisson(rate_bound * (t_end - t0))
    cand = np.sort(rng.uniform(t0, t_end, n))
    lam = np.asarray(intensity(cand), dtype=np.float64)
    if np.any(lam > rate_bound * (1 + 1e-12)):
        raise ValueError(f"`rate_bound` = {rate_bound!r} is below the intensity "
                         f"(max {lam.max()!r} at the candidates); raise it.")
    return cand[rng.uniform(0.0, rate_bound, n) < lam]


__all__ = [
    "DEFAULT_SOLVER",
    "ENCODERS",
    "LatentODE",
    "PoissonProcess",
    "RNNBaseline",
    "check_batch",
    "gaussian_log_likelihood",
    "gru_cell",
    "kl_to_standard_normal",
    "rnn_cell",
    "run_cells",
    "run_final",
    "sample_poisson_process",
    "time_gaps",
]
