"""Training loops for flat parameter vectors: optimisers, :func:`fit`, and
:func:`save`/:func:`load` of parameters with their model description.

The optimisers are small stateful objects with ``step(theta, grad) -> theta``,
so a loop can change batches, log, checkpoint or stop between steps.
(``autograd.misc.optimizers`` runs its own loop and hands out the state only
through callbacks, which does not fit a step-wise loop.)

>>> import numpy as np
>>> from nodekit.train import Adam, fit
>>> res = fit(lambda th: (np.sum((th - 3.0) ** 2), 2 * (th - 3.0)), np.zeros(2),
...           optimizer=Adam(lr=0.1), iters=500, progress=False, value_and_grad=True)
>>> bool(np.allclose(res.theta, 3.0, atol=1e-3))
True
"""
import json
import math
import os
import time
import zipfile
from typing import NamedTuple

import numpy as np

from .nn.model import check_theta_shape

__all__ = ["SGD", "Adam", "FitResult", "Optimizer", "RMSprop", "fit", "load", "save"]


def _real(x):
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(
        x, (bool, np.bool_))


def _check_lr(lr, name="lr"):
    if not (_real(lr) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"`{name}` must be a positive finite number; got {name}={lr!r}.")
    return float(lr)


def _check_unit(x, name):
    if not (_real(x) and 0 <= x < 1):
        raise ValueError(f"`{name}` must be in [0, 1); got {name}={x!r}.")
    return float(x)


def _check_eps(eps):
    if not (_real(eps) and math.isfinite(eps) and eps >= 0):
        raise ValueError(f"`eps` must be a finite number >= 0 (added to the denominator); "
                         f"got eps={eps!r}.")
    return float(eps)


class Optimizer:
    """Base class: ``step(theta, grad) -> new theta``; state kept between steps.

    The state is sized on the first step; :meth:`reset` forgets it.  ``theta``
    is never modified in place.
    """

    def __init__(self, lr):
        self.lr = _check_lr(lr)
        self.t = 0
        self._shape = None

    def reset(self):
        """Forget the state (moments, step count)."""
        self.t = 0
        self._shape = None

    def _check(self, theta, grad):
        theta = np.asarray(theta, dtype=np.float64)
        grad = np.asarray(grad, dtype=np.float64)
        if grad.shape != theta.shape:
            raise ValueError(f"`grad` must have the shape of `theta`, {theta.shape}; got "
                             f"{grad.shape}.")
        if self._shape is not None and theta.shape != self._shape and self._stateful():
            raise ValueError(f"`theta` has shape {theta.shape} but this {type(self).__name__} "
                             f"holds state (step count, moments) for parameters of shape "
                             f"{self._shape} from earlier steps; call optimizer.reset() or "
                             f"use a new optimiser for different parameters.")
        self._shape = theta.shape
        return theta, grad

    def _stateful(self):
        """Whether the state depends on the parameters' shape (moments)."""
        return True

    def step(self, theta, grad):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items()
                         if not k.startswith("_") and k != "t")
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with (optionally Nesterov) momentum, as
    ``torch.optim.SGD``: ``v = momentum v + g``; ``theta -= lr v`` (or
    ``lr (g + momentum v)`` with Nesterov).

    Parameters
    ----------
    lr : float, default 0.01
        Positive.
    momentum : float in [0, 1), default 0.0
    nesterov : bool, default False
        Needs ``momentum > 0``.

    Raises
    ------
    ValueError
        An argument out of its range (the message names it).
    """

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False):
        super().__init__(lr)
        self.momentum = _check_unit(momentum, "momentum")
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"`nesterov` must be True or False; got nesterov={nesterov!r}.")
        if nesterov and self.momentum == 0.0:
            raise ValueError("`nesterov=True` needs a momentum in (0, 1); got momentum=0.0.")
        self.nesterov = bool(nesterov)
        self._v = None

    def reset(self):
        super().reset()
        self._v = None

    def _stateful(self):
        return self.momentum != 0.0

    def step(self, theta, grad):
        theta, g = self._check(theta, grad)
        self.t += 1
        if self.momentum == 0.0:
            return theta - self.lr * g
        self._v = g.copy() if self._v is None else self.momentum * self._v + g
        d = g + self.momentum * self._v if self.nesterov else self._v
        return theta - self.lr * d


class RMSprop(Optimizer):
    """RMSprop as ``torch.optim.RMSprop`` (the spiral demo's optimiser):
    ``s = alpha s + (1 - alpha) g**2``; ``theta -= lr g / (sqrt(s) + eps)``.

    Parameters
    ----------
    lr : float, default 0.01
        Positive.
    alpha : float in [0, 1), default 0.99
    eps : float >= 0, default 1e-8

    Raises
    ------
    ValueError
        An argument out of its range (the message names it).

    References
    ----------
    .. [1] T. Tieleman, G. Hinton, Lecture 6.5 of "Neural Networks for Machine
       Learning", Coursera, 2012.
    """

    def __init__(self, lr=0.01, alpha=0.99, eps=1e-8):
        super().__init__(lr)
        self.alpha = _check_unit(alpha, "alpha")
        self.eps = _check_eps(eps)
        self._s = None

    def reset(self):
        super().reset()
        self._s = None

    def step(self, theta, grad):
        theta, g = self._check(theta, grad)
        self.t += 1
        if self._s is None:
            self._s = np.zeros_like(g)
        self._s = self.alpha * self._s + (1.0 - self.alpha) * g * g
        return theta - self.lr * g / (np.sqrt(self._s) + self.eps)


class Adam(Optimizer):
    """Adam with bias correction, as ``torch.optim.Adam``.

    Parameters
    ----------
    lr : float, default 0.001
        Positive.
    beta1, beta2 : float in [0, 1), defaults 0.9, 0.999
    eps : float >= 0, default 1e-8

    Raises
    ------
    ValueError
        An argument out of its range (the message names it).

    References
    ----------
    .. [1] D. P. Kingma, J. Ba, "Adam: A Method for Stochastic Optimization",
       ICLR 2015.
    """

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        self.beta1 = _check_unit(beta1, "beta1")
        self.beta2 = _check_unit(beta2, "beta2")
        self.eps = _check_eps(eps)
        self._m = self._v = None

    def reset(self):
        super().reset()
        self._m = self._v = None

    def step(self, theta, grad):
        theta, g = self._check(theta, grad)
        self.t += 1
        if self._m is None:
            self._m, self._v = np.zeros_like(g), np.zeros_like(g)
        self._m = self.beta1 * self._m + (1.0 - self.beta1) * g
        self._v = self.beta2 * self._v + (1.0 - self.beta2) * g * g
        m_hat = self._m / (1.0 - self.beta1 ** self.t)
        v_hat = self._v / (1.0 - self.beta2 ** self.t)
        return theta - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class FitResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    theta : ndarray
        After success or an interruption (Ctrl-C), the parameters after the
        last completed step; after a failure, the last parameters whose loss
        and gradient were finite.
    loss : ndarray, shape (iterations,)
        Loss at every completed iteration (before its step).
    nfev_forward, nfev_backward : ndarray, shape (iterations,)
        Evaluations reported by the loss through ``stats`` (zeros if none).
    iterations : int
        Completed iterations (steps taken).
    success : bool
        False if training stopped on a non-finite loss or gradient, a failed
        solve, batches that ran out, or an interruption.
    interrupted : bool
        True if training was stopped by ``KeyboardInterrupt`` (Ctrl-C).
    message : str
    seconds, seconds_per_iter : float
        Wall time of the loop, and per iteration.
    """

    def __init__(self, theta, loss, nfev_forward, nfev_backward, success, message, seconds,
                 interrupted=False):
        self.theta = theta
        self.loss = np.asarray(loss, dtype=np.float64)
        self.nfev_forward = np.asarray(nfev_forward, dtype=np.int64)
        self.nfev_backward = np.asarray(nfev_backward, dtype=np.int64)
        self.iterations = int(self.loss.size)
        self.success = bool(success)
        self.interrupted = bool(interrupted)
        self.message = message
        self.seconds = float(seconds)
        self.seconds_per_iter = self.seconds / max(self.iterations, 1)

    def __repr__(self):
        last = f"{self.loss[-1]:.4g}" if self.loss.size else "-"
        return (f"FitResult(iterations={self.iterations}, loss={last}, "
                f"success={self.success}, seconds_per_iter={self.seconds_per_iter:.3g})")


# ----------------------------------------------------------------------------
# fit: its pieces


class _BatchesExhausted(Exception):
    """The iterator given as ``batches`` ran out."""


def _batch_source(batches):
    """``next_batch(i) -> tuple of extra arguments of fun`` for every form of ``batches``."""
    if batches is None:
        return lambda i: ()
    if callable(batches):
        return lambda i: _as_args(batches(i))
    if isinstance(batches, (list, tuple)):
        if not batches:
            raise ValueError("`batches` must not be empty.")
        return lambda i: _as_args(batches[i % len(batches)])
    try:
        it = iter(batches)
    except TypeError:
        raise TypeError(f"`batches` must be None, a callable batches(i), a list or tuple, or "
                        f"an iterator; got {type(batches).__name__}.") from None

    def next_batch(i):
        try:
            return _as_args(next(it))
        except StopIteration:
            raise _BatchesExhausted from None
    return next_batch


def _as_args(batch):
    return tuple(batch) if isinstance(batch, tuple) else (batch,)


def _loss_value(loss, where):
    """The loss as a float, or a TypeError saying that ``fun`` must return a scalar."""
    if isinstance(loss, (tuple, list)):
        raise TypeError(
            f"{where} a {type(loss).__name__} of length {len(loss)}; fit expects a scalar "
            "loss, or (loss, grad) with value_and_grad=True. If fun returns extra values "
            "(e.g. (loss, aux)), return only the loss.")
    size = np.size(loss)
    if size != 1:
        raise TypeError(f"{where} a loss of shape {np.shape(loss)}; fit expects a scalar. "
                        "Reduce it to one number (e.g. anp.mean or anp.sum).")
    return loss


def _loss_and_grad(fun, value_and_grad, shape):
    """``evaluate(theta, args) -> (float loss, float64 grad)`` for ``fun``'s convention."""
    if value_and_grad:
        def evaluate(theta, args):
            out = fun(theta, *args)
            if not (isinstance(out, (tuple, list)) and len(out) == 2):
                got = (f"a {type(out).__name__} of length {len(out)}"
                       if isinstance(out, (tuple, list)) else f"{type(out).__name__} {out!r}"[:80])
                raise TypeError(f"`fun` must return a pair (loss, grad) with "
                                f"value_and_grad=True; it returned {got}. For a fun that "
                                f"returns only the loss, use value_and_grad=False.")
            loss, grad = out
            _loss_value(loss, "`fun` returned (as its loss)")
            return float(np.reshape(loss, ())), _grad_value(grad, shape)
        return evaluate

    import autograd

    def checked(theta, *args):
        return _loss_value(fun(theta, *args), "`fun` returned")

    vg = autograd.value_and_grad(checked)

    def evaluate(theta, args):
        loss, grad = vg(theta, *args)
        return float(np.reshape(loss, ())), _grad_value(grad, shape)
    return evaluate


def _grad_value(grad, shape):
    g = np.asarray(grad, dtype=np.float64)
    if g.shape != shape:
        raise ValueError(f"The gradient returned by `fun` must have the shape of `theta`, "
                         f"{shape}; got {g.shape}.")
    return g


def _check_fit_arguments(theta0, iters, optimizer, stats, schedule):
    theta = np.array(theta0, dtype=np.float64)
    if theta.ndim != 1:
        raise ValueError(f"`theta0` must be a flat (1-D) parameter vector; got shape "
                         f"{theta.shape}.")
    if not np.all(np.isfinite(theta)):
        raise ValueError("`theta0` must be finite.")
    if isinstance(iters, bool) or not isinstance(iters, (int, np.integer)) or iters < 0:
        raise ValueError(f"`iters` must be a non-negative integer; got iters={iters!r}.")
    if not hasattr(optimizer, "step"):
        raise TypeError(f"`optimizer` must have a step(theta, grad) method (e.g. "
                        f"nk.train.Adam()); got {optimizer!r}.")
    if stats is not None and not isinstance(stats, dict):
        raise TypeError(f"`stats` must be a dict; got {type(stats).__name__}.")
    if schedule is not None and not (callable(schedule) and hasattr(optimizer, "lr")):
        raise TypeError("`schedule` must be a callable schedule(i) -> lr for an optimiser "
                        f"with an `lr`; got schedule={schedule!r} for {optimizer!r}.")
    return theta


class _History:
    """Loss and evaluation counts of the completed iterations."""

    def __init__(self, stats):
        self.stats = stats
        self.loss, self.nfev_forward, self.nfev_backward = [], [], []

    def begin(self):
        if self.stats is not None:
            self.stats.clear()

    def nfev(self):
        if self.stats is None:
            return 0, 0
        return int(self.stats.get("nfev_forward", 0)), int(self.stats.get("nfev_backward", 0))

    def record(self, loss, nfev):
        self.loss.append(loss)
        self.nfev_forward.append(nfev[0])
        self.nfev_backward.append(nfev[1])


class _Bar:
    """A tqdm bar showing the loss and the NFE, or nothing."""

    def __init__(self, iters, enabled, show_nfe):
        self.bar, self.show_nfe = None, show_nfe
        if enabled:
            try:
                from tqdm.auto import tqdm
                self.bar = tqdm(total=iters, desc="fit", leave=True)
            except ImportError:  # pragma: no cover - tqdm is optional
                pass

    def update(self, loss, nfev):
        if self.bar is None:
            return
        post = {"loss": f"{loss:.4g}"}
        if self.show_nfe:
            post["nfe"] = f"{nfev[0]}+{nfev[1]}"
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()


class _Outcome(NamedTuple):
    success: bool
    message: str
    theta: np.ndarray
    interrupted: bool = False


def _failure(i, what, theta):
    returned = ("the initial parameters (the first evaluation failed: check the model "
                "and data at `theta0`)" if i == 0 else
                "the last parameters with a finite loss and gradient")
    return _Outcome(False, f"Stopped at iteration {i}: {what}. Returning {returned}.", theta)


def _loop(evaluate, theta, *, optimizer, iters, next_batch, history, bar, schedule, callback):
    """The training iterations; returns how they ended."""
    from .adjoint import GradientError
    from .primitive import SolveError

    last_good, i = theta, 0
    try:
        for i in range(iters):
            history.begin()
            try:
                args = next_batch(i)
            except _BatchesExhausted:
                return _Outcome(False, f"Stopped at iteration {i}: the iterator given as "
                                       f"`batches` ran out after {i} batches (iters={iters}). "
                                       "Give at least `iters` batches, or a list (cycled) or a "
                                       "callable batches(i).", theta)
            try:
                loss, grad = evaluate(theta, args)
            except (SolveError, GradientError) as exc:
                return _failure(i, f"the ODE solve failed ({exc}); try a smaller learning "
                                   "rate or other tolerances", last_good)
            if not math.isfinite(loss):
                return _failure(i, f"loss {loss!r}; try a smaller learning rate", last_good)
            if not np.all(np.isfinite(grad)):
                return _failure(i, "non-finite gradient; try a smaller learning rate",
                                last_good)
            last_good = theta
            if schedule is not None:
                optimizer.lr = _check_lr(schedule(i))
            theta = np.asarray(optimizer.step(theta, grad), dtype=np.float64)
            nfev = history.nfev()
            history.record(loss, nfev)
            bar.update(loss, nfev)
            if callback is not None and callback(
                    i, theta, loss, {"nfev_forward": nfev[0], "nfev_backward": nfev[1],
                                     "grad": grad}) is True:
                return _Outcome(True, f"Stopped by the callback after iteration {i}.", theta)
    except KeyboardInterrupt:
        return _Outcome(False, f"Interrupted (KeyboardInterrupt) during iteration {i}; "
                               f"returning the parameters after the {len(history.loss)} "
                               "completed steps.", theta, interrupted=True)
    return _Outcome(True, f"Finished {iters} iterations.", theta)


def fit(fun, theta0, *, optimizer, iters, batches=None, callback=None, progress=True,
        stats=None, value_and_grad=False, schedule=None):
    """Minimise a loss over a flat parameter vector, step by step.

    Parameters
    ----------
    fun : callable
        ``fun(theta, *batch)``.  By default it returns the scalar loss,
        written with ``autograd.numpy`` (e.g. around ``nk.odeint``), and its
        gradient comes from ``autograd.value_and_grad``.  With
        ``value_and_grad=True`` it returns the pair ``(loss, grad)``.
    theta0 : array_like, shape (p,)
    optimizer : Optimizer
        :class:`Adam`, :class:`RMSprop`, :class:`SGD` or any object with
        ``step(theta, grad) -> theta``.
    iters : int
        Number of steps.
    batches : None, callable, sequence or iterator, optional
        Extra arguments of ``fun`` per iteration: ``batches(i)``,
        ``batches[i % len(batches)]`` or ``next(batches)``.  A tuple is
        unpacked into several arguments.
    callback : callable, optional
        ``callback(i, theta, loss, info)`` after every step (``info``: dict
        with ``nfev_forward``, ``nfev_backward``, ``grad``); returning True
        stops training.
    progress : bool, default True
        Show a tqdm bar with the loss and the NFE (if tqdm is installed).
    stats : dict, optional
        The dict your loss passes to ``nk.odeint(..., stats=stats)``; it is
        cleared before each iteration and its ``nfev_forward`` and
        ``nfev_backward`` are recorded.
    value_and_grad : bool, default False
        False: ``fun`` returns the loss and ``fit`` differentiates it with
        autograd.  True: ``fun`` returns ``(loss, grad)`` itself.  (Never
        guessed from what ``fun`` returns: a loss returning a pair is an
        error, not a gradient.)
    schedule : callable, optional
        ``schedule(i) -> lr``: the optimiser's learning rate for step ``i``
        (set on ``optimizer.lr`` before the step).

    Returns
    -------
    FitResult

    Raises
    ------
    TypeError, ValueError
        Bad arguments, or a ``fun`` that returns something other than a
        scalar loss (or, with ``value_and_grad=True``, a pair ``(loss,
        grad)`` with ``grad`` shaped like ``theta``); an optimiser already
        used for parameters of another size.

    Notes
    -----
    A non-finite loss or gradient, or a failed ODE solve (``nk.SolveError``,
    ``nk.GradientError``), stops training with ``success=False`` and a
    message; ``theta`` is then the last parameters whose loss and gradient
    were finite.  An iterator given as ``batches`` that runs out stops
    training the same way.  Ctrl-C (``KeyboardInterrupt``) during training
    is not raised: ``fit`` returns with ``interrupted=True``,
    ``success=False`` and the parameters after the last completed step.
    So a long run always keeps what it learned; check ``success``.
    """
    theta = _check_fit_arguments(theta0, iters, optimizer, stats, schedule)
    evaluate = _loss_and_grad(fun, value_and_grad, theta.shape)
    next_batch = _batch_source(batches)
    history = _History(stats)
    bar = _Bar(iters, progress, stats is not None)
    start = time.perf_counter()
    try:
        outcome = _loop(evaluate, theta, optimizer=optimizer, iters=iters,
                        next_batch=next_batch, history=history, bar=bar, schedule=schedule,
                        callback=callback)
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    return FitResult(outcome.theta, history.loss, history.nfev_forward, history.nfev_backward,
                     outcome.success, outcome.message, seconds, interrupted=outcome.interrupted)


# ----------------------------------------------------------------------------
# save and load


def _npz_path(path):
    """The file :func:`save` writes for ``path``: ``.npz`` appended if missing (as NumPy does)."""
    path = os.fspath(path)
    return path if path.endswith(".npz") else path + ".npz"


def save(path, theta, model=None, **arrays):
    """Save ``theta`` and the model's description to an ``.npz`` file.

    Parameters
    ----------
    path : str or path-like
        ``.npz`` is appended if ``path`` does not end with it (as
        ``numpy.savez`` does); :func:`load` accepts either form.
    theta : array_like, shape (p,)
    model : nk.nn.Sequential or nk.nn.Chain, optional
        Its :meth:`spec` is stored as JSON; :func:`load` rebuilds the model.
    **arrays
        Further arrays to store (e.g. a loss history).

    Returns
    -------
    str
        The path written.

    Raises
    ------
    ValueError
        ``theta`` does not fit ``model``, or an array is named ``theta`` or
        ``model_spec`` (reserved).
    """
    theta = np.asarray(theta, dtype=np.float64)
    if model is not None:
        if hasattr(model, "n_params"):
            check_theta_shape(theta, model.n_params, model)
        spec = json.dumps(model.spec())
    else:
        spec = ""
    for reserved in ("theta", "model_spec"):
        if reserved in arrays:
            raise ValueError(f"`{reserved}` is reserved; choose another name.")
    path = _npz_path(path)
    np.savez(path, theta=theta, model_spec=np.array(spec), **arrays)
    return path


def _resolve_load_path(path):
    path = os.fspath(path)
    if os.path.exists(path):
        return path
    if os.path.exists(_npz_path(path)):
        return _npz_path(path)
    raise FileNotFoundError(f"`path`: no file {path!r}"
                            + (f" (nor {_npz_path(path)!r})" if path != _npz_path(path) else "")
                            + ".")


def _read_npz(path):
    """The arrays of a file written by :func:`save`, or a ValueError saying what is wrong."""
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path!r} is empty; it is not a file written by nk.train.save "
                         "(an interrupted save?).")
    try:
        data = np.load(path, allow_pickle=False)
    except (EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path!r} is truncated or corrupt: it starts like an .npz archive "
                         f"but cannot be read ({type(exc).__name__}: {exc}). Save it "
                         "again.") from None
    except (ValueError, OSError) as exc:
        reason = ("it is neither an .npz archive nor a .npy array"
                  if "pickle" in str(exc) else str(exc))
        raise ValueError(f"{path!r} is not a file written by nk.train.save: {reason}. "
                         "(Do not load untrusted files with allow_pickle=True.)") from None
    if not hasattr(data, "files"):
        raise ValueError(f"{path!r} holds a single array (a .npy file), not the archive of "
                         "arrays that nk.train.save writes.")
    try:
        return {k: data[k].copy() for k in data.files}
    except (EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ValueError(f"{path!r} is truncated or corrupt: an array in it cannot be read "
                         f"({type(exc).__name__}: {exc}). Save it again.") from None
    finally:
        data.close()


def _model_from_file(spec_text, path):
    from .nn.model import network_from_spec
    try:
        spec = json.loads(spec_text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"The model description (`model_spec`) in {path!r} is not valid "
                         f"JSON: {exc}.") from None
    try:
        return network_from_spec(spec)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"The model description (`model_spec`) in {path!r} is invalid: "
                         f"{exc}") from None


def load(path):
    """Load what :func:`save` wrote.

    Parameters
    ----------
    path : str or path-like
        The path given to :func:`save` (with or without ``.npz``).

    Returns
    -------
    theta : ndarray
    model : nk.nn.Sequential, nk.nn.Chain or None
    extra : dict
        The further arrays.

    Raises
    ------
    FileNotFoundError
        No such file (with or without ``.npz``).
    ValueError
        The file is empty, truncated, not an ``.npz`` archive, has no
        ``theta``, an invalid model description, or a ``theta`` that does
        not fit its model; the message names the file and the problem.
    """
    path = _resolve_load_path(path)
    arrays = _read_npz(path)
    if "theta" not in arrays:
        raise ValueError(f"{path!r} has no `theta` array (it holds {sorted(arrays)}); it was "
                         "not written by nk.train.save.")
    theta = arrays.pop("theta")
    spec = arrays.pop("model_spec", np.array(""))
    if theta.ndim != 1 or theta.dtype.kind != "f":
        raise ValueError(f"`theta` in {path!r} must be a flat float vector; got "
                         f"{theta.dtype} of shape {theta.shape}.")
    model = _model_from_file(str(spec), path) if str(spec) else None
    if model is not None and theta.shape != (model.n_params,):
        raise ValueError(f"{path!r} is inconsistent: its `theta` has {theta.size} entries but "
                         f"its model {model!r} has {model.n_params} parameters.")
    return theta, model, arrays
