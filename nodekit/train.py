"""Training loops for flat parameter vectors: optimisers, :func:`fit`, and
:func:`save`/:func:`load` of parameters with their model description.

The optimisers are small stateful objects with ``step(theta, grad) -> theta``,
so a loop can change batches, log, checkpoint or stop between steps.
(``autograd.misc.optimizers`` runs its own loop and hands out the state only
through callbacks, which does not fit a step-wise loop.)

>>> import numpy as np
>>> from nodekit.train import Adam, fit
>>> res = fit(lambda th: (np.sum((th - 3.0) ** 2), 2 * (th - 3.0)), np.zeros(2),
...           optimizer=Adam(lr=0.1), iters=500, progress=False)
>>> bool(np.allclose(res.theta, 3.0, atol=1e-3))
True
"""
import json
import math
import time

import numpy as np

__all__ = ["Optimizer", "SGD", "RMSprop", "Adam", "FitResult", "fit", "save", "load"]


def _check_lr(lr):
    if not (isinstance(lr, (int, float, np.floating)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"`lr` must be a positive finite number; got lr={lr!r}.")
    return float(lr)


def _check_unit(x, name):
    if not (isinstance(x, (int, float, np.floating)) and 0 <= x < 1):
        raise ValueError(f"`{name}` must be in [0, 1); got {name}={x!r}.")
    return float(x)


class Optimizer:
    """Base class: ``step(theta, grad) -> new theta``; state kept between steps.

    The state is sized on the first step; :meth:`reset` forgets it.  ``theta``
    is never modified in place.
    """

    def __init__(self, lr):
        self.lr = _check_lr(lr)
        self.t = 0

    def reset(self):
        """Forget the state (moments, step count)."""
        self.t = 0

    def _check(self, theta, grad):
        theta = np.asarray(theta, dtype=np.float64)
        grad = np.asarray(grad, dtype=np.float64)
        if grad.shape != theta.shape:
            raise ValueError(f"`grad` must have the shape of `theta`, {theta.shape}; got "
                             f"{grad.shape}.")
        return theta, grad

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
    momentum : float in [0, 1), default 0.0
    nesterov : bool, default False
    """

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False):
        super().__init__(lr)
        self.momentum = _check_unit(momentum, "momentum")
        self.nesterov = bool(nesterov)
        self._v = None

    def reset(self):
        super().reset()
        self._v = None

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
    alpha : float in [0, 1), default 0.99
    eps : float, default 1e-8

    References
    ----------
    .. [1] T. Tieleman, G. Hinton, Lecture 6.5 of "Neural Networks for Machine
       Learning", Coursera, 2012.
    """

    def __init__(self, lr=0.01, alpha=0.99, eps=1e-8):
        super().__init__(lr)
        self.alpha = _check_unit(alpha, "alpha")
        self.eps = float(eps)
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
    beta1, beta2 : float in [0, 1), defaults 0.9, 0.999
    eps : float, default 1e-8

    References
    ----------
    .. [1] D. P. Kingma, J. Ba, "Adam: A Method for Stochastic Optimization",
       ICLR 2015.
    """

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        self.beta1 = _check_unit(beta1, "beta1")
        self.beta2 = _check_unit(beta2, "beta2")
        self.eps = float(eps)
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
        After success, the parameters after the last step; after a failure,
        the last parameters whose loss and gradient were finite.
    loss : ndarray, shape (iterations,)
        Loss at every completed iteration (before its step).
    nfev_forward, nfev_backward : ndarray, shape (iterations,)
        Evaluations reported by the loss through ``stats`` (zeros if none).
    iterations : int
        Completed iterations (steps taken).
    success : bool
        False if training stopped on a non-finite loss or gradient or a
        failed solve.
    message : str
    seconds, seconds_per_iter : float
        Wall time of the loop, and per iteration.
    """

    def __init__(self, theta, loss, nfev_forward, nfev_backward, success, message, seconds):
        self.theta = theta
        self.loss = np.asarray(loss, dtype=np.float64)
        self.nfev_forward = np.asarray(nfev_forward, dtype=np.int64)
        self.nfev_backward = np.asarray(nfev_backward, dtype=np.int64)
        self.iterations = int(self.loss.size)
        self.success = bool(success)
        self.message = message
        self.seconds = float(seconds)
        self.seconds_per_iter = self.seconds / max(self.iterations, 1)

    def __repr__(self):
        last = f"{self.loss[-1]:.4g}" if self.loss.size else "-"
        return (f"FitResult(iterations={self.iterations}, loss={last}, "
                f"success={self.success}, seconds_per_iter={self.seconds_per_iter:.3g})")


def _batch_source(batches):
    if batches is None:
        return lambda i: ()
    if callable(batches):
        return lambda i: _as_args(batches(i))
    if isinstance(batches, (list, tuple)):
        if not batches:
            raise ValueError("`batches` must not be empty.")
        return lambda i: _as_args(batches[i % len(batches)])
    it = iter(batches)
    return lambda i: _as_args(next(it))


def _as_args(batch):
    return tuple(batch) if isinstance(batch, tuple) else (batch,)


def fit(fun, theta0, *, optimizer, iters, batches=None, callback=None, progress=True,
        stats=None, value_and_grad=None, schedule=None):
    """Minimise a loss over a flat parameter vector, step by step.

    Parameters
    ----------
    fun : callable
        ``fun(theta, *batch)`` returning either ``(loss, grad)`` or just the
        loss (then its gradient comes from ``autograd.value_and_grad``; the
        loss must be written with ``autograd.numpy``, e.g. around
        ``nk.odeint``).  Which one is detected on the first call, or set by
        ``value_and_grad``.
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
    value_and_grad : bool, optional
        True if ``fun`` returns ``(loss, grad)``, False if only the loss.
    schedule : callable, optional
        ``schedule(i) -> lr``: the optimiser's learning rate for step ``i``
        (set on ``optimizer.lr`` before the step).

    Returns
    -------
    FitResult

    Notes
    -----
    A non-finite loss or gradient, or a failed ODE solve (``nk.SolveError``,
    ``nk.GradientError``), stops training with ``success=False`` and a
    message; ``theta`` is then the last parameters whose loss and gradient
    were finite.  Nothing is raised, so a long run keeps what it learned.
    """
    from .adjoint import GradientError
    from .primitive import SolveError

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
    next_batch = _batch_source(batches)
    mode = value_and_grad
    vg = None

    def evaluate(th, args):
        nonlocal mode, vg
        if mode is None:
            out = fun(th, *args)
            if isinstance(out, tuple) and len(out) == 2:
                mode = True
                return out
            mode = False
        if mode:
            return fun(th, *args)
        if vg is None:
            import autograd
            vg = autograd.value_and_grad(fun)
        return vg(th, *args)

    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm
            bar = tqdm(total=iters, desc="fit", leave=True)
        except ImportError:  # pragma: no cover - tqdm is optional
            bar = None
    losses, nf, nb = [], [], []
    last_good = theta
    success, message = True, f"Finished {iters} iterations."
    start = time.perf_counter()
    try:
        for i in range(iters):
            if stats is not None:
                stats.clear()
            args = next_batch(i)
            try:
                loss, grad = evaluate(theta, args)
            except (SolveError, GradientError) as exc:
                success = False
                message = (f"Stopped at iteration {i}: the ODE solve failed ({exc}). Returning "
                           "the last parameters with a finite loss and gradient. Try a "
                           "smaller learning rate or other tolerances.")
                theta = last_good
                break
            loss = float(loss)
            grad = np.asarray(grad, dtype=np.float64)
            if not math.isfinite(loss) or not np.all(np.isfinite(grad)):
                success = False
                what = f"loss {loss!r}" if not math.isfinite(loss) else "non-finite gradient"
                message = (f"Stopped at iteration {i}: {what}. Returning the parameters of "
                           f"the last iteration with a finite loss and gradient. Try a "
                           f"smaller learning rate.")
                theta = last_good
                break
            last_good = theta
            f_fwd = int(stats.get("nfev_forward", 0)) if stats is not None else 0
            f_bwd = int(stats.get("nfev_backward", 0)) if stats is not None else 0
            losses.append(loss)
            nf.append(f_fwd)
            nb.append(f_bwd)
            if schedule is not None:
                optimizer.lr = _check_lr(schedule(i))
            theta = np.asarray(optimizer.step(theta, grad), dtype=np.float64)
            if bar is not None:
                post = {"loss": f"{loss:.4g}"}
                if stats is not None:
                    post["nfe"] = f"{f_fwd}+{f_bwd}"
                bar.set_postfix(post, refresh=False)
                bar.update(1)
            if callback is not None:
                stop = callback(i, theta, loss, {"nfev_forward": f_fwd,
                                                 "nfev_backward": f_bwd, "grad": grad})
                if stop is True:
                    message = f"Stopped by the callback after iteration {i}."
                    break
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    return FitResult(theta, losses, nf, nb, success, message, seconds)


def save(path, theta, model=None, **arrays):
    """Save ``theta`` and the model's description to ``path`` (``.npz``).

    Parameters
    ----------
    path : str or path-like
    theta : array_like, shape (p,)
    model : nk.nn.Sequential, optional
        Its :meth:`spec` is stored as JSON; :func:`load` rebuilds the model.
    **arrays
        Further arrays to store (e.g. a loss history).
    """
    theta = np.asarray(theta, dtype=np.float64)
    if model is not None:
        n = getattr(model, "n_params", None)
        if n is not None and theta.shape != (n,):
            raise ValueError(f"`theta` must have shape ({n},) for {model!r}; got "
                             f"{theta.shape}.")
        spec = json.dumps(model.spec())
    else:
        spec = ""
    for reserved in ("theta", "model_spec"):
        if reserved in arrays:
            raise ValueError(f"`{reserved}` is reserved; choose another name.")
    np.savez(path, theta=theta, model_spec=np.array(spec), **arrays)


def load(path):
    """Load what :func:`save` wrote.

    Returns
    -------
    theta : ndarray
    model : nk.nn.Sequential or None
    extra : dict
        The further arrays.
    """
    with np.load(path, allow_pickle=False) as data:
        theta = data["theta"].copy()
        spec = str(data["model_spec"]) if "model_spec" in data else ""
        extra = {k: data[k].copy() for k in data.files if k not in ("theta", "model_spec")}
    model = None
    if spec:
        from .nn import Sequential
        model = Sequential.from_spec(json.loads(spec))
    return theta, model, extra
