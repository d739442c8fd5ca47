"""The four classifiers of Table 1 of Chen et al. (2018), for flat inputs.

Every model is a function ``logits(theta, x)`` of one flat parameter vector,
written in autograd-NumPy, with a softmax cross-entropy :meth:`Classifier.loss`:

``MLP``
    ``x -> Dense(n_in, hidden) -> tanh -> Dense(hidden, n_out)``.
``ResNet``
    ``h0 = Dense(n_in, width)(x)``; six residual blocks ``h <- h + f_k(h)``,
    ``f_k = Dense(width, width) -> tanh -> Dense(width, width)`` with separate
    parameters per block; ``logits = Dense(width, n_out)(h6)``.
``ODENet``
    The same input and output layers around one ODE block: ``dh/dt = f(t, h)``,
    ``f = TimeDense(width, width) -> tanh -> TimeDense(width, width)`` (input
    ``[h, t]``, one set of parameters), integrated over [0, 1] by ``nk.odeint``
    (adaptive dopri5) with the adjoint gradient: memory independent of NFE.
``RKNet``
    The ODE-Net with ``gradient="discrete"``: reverse mode through the
    recorded Runge-Kutta steps (same forward computation; memory grows with
    NFE).

The ODE block is a compiled :class:`nodekit.nn.Sequential` (``model.ode``:
Numba kernels with analytic VJPs); ``compiled=False`` uses its autograd
``apply`` as a Python right-hand side instead (slower; for checks).
"""
import autograd.numpy as anp
import numpy as np

from ..nn import Sequential, TimeDense
from ..primitive import odeint


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy of ``logits`` (n, k) against integer ``labels`` (n,)."""
    m = anp.max(logits, axis=1, keepdims=True)
    z = logits - m
    logz = anp.log(anp.sum(anp.exp(z), axis=1))
    picked = z[np.arange(len(labels)), labels]
    return anp.mean(logz - picked)


def accuracy(logits, labels):
    """Fraction of rows whose arg-max is the label."""
    return float(np.mean(np.argmax(np.asarray(logits), axis=1) == np.asarray(labels)))


class _Layout:
    """Named blocks of a flat parameter vector."""

    def __init__(self):
        self.blocks = []   # (name, offset, shape)
        self.size = 0

    def add(self, name, shape):
        shape = tuple(int(s) for s in shape)
        self.blocks.append((name, self.size, shape))
        self.size += int(np.prod(shape))
        return self.blocks[-1]

    def get(self, theta, name):
        for n, off, shape in self.blocks:
            if n == name:
                return anp.reshape(theta[off:off + int(np.prod(shape))], shape)
        raise KeyError(name)

    def slice(self, name):
        for n, off, shape in self.blocks:
            if n == name:
                return slice(off, off + int(np.prod(shape)))
        raise KeyError(name)


def _dense_init(rng, n_in, n_out):
    """PyTorch's ``nn.Linear`` default: uniform on +-1/sqrt(fan_in)."""
    bound = 1.0 / np.sqrt(n_in)
    return rng.uniform(-bound, bound, (n_in, n_out)), rng.uniform(-bound, bound, n_out)


class Classifier:
    """Base class: a flat-parameter classifier ``logits(theta, x)``.

    Attributes
    ----------
    name : str
    n_params : int
    stats : dict
        Filled by the ODE block with ``nfev_forward``/``nfev_backward`` (empty
        for models without one).
    """

    name = "classifier"
    has_ode = False

    def __init__(self, n_in, n_out):
        self.n_in, self.n_out = int(n_in), int(n_out)
        self.layout = _Layout()
        self.stats = {}

    @property
    def n_params(self):
        return self.layout.size

    def _check(self, theta):
        if np.shape(theta) != (self.n_params,):
            raise ValueError(f"`theta` must be a flat vector of length {self.n_params} "
                             f"(the parameters of {self.name}); got shape "
                             f"{np.shape(theta)}.")

    def init(self, seed=0):
        """Initial parameters (PyTorch-style uniform), reproducible from ``seed``."""
        rng = np.random.default_rng(seed)
        theta = np.empty(self.n_params)
        for name, off, shape in self.layout.blocks:
            if name.endswith(".W"):
                w, b = _dense_init(rng, shape[0], shape[1])
                theta[off:off + w.size] = w.ravel()
                bname = name[:-2] + ".b"
                theta[self.layout.slice(bname)] = b
        return theta

    def _dense(self, theta, prefix, h):
        return anp.dot(h, self.layout.get(theta, prefix + ".W")) + self.layout.get(
            theta, prefix + ".b")

    def logits(self, theta, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def loss(self, theta, x, labels):
        """Mean softmax cross-entropy on a batch (autograd-differentiable in ``theta``)."""
        return cross_entropy(self.logits(theta, x), labels)

    def predict(self, theta, x, batch_size=512):
        """Predicted classes (forward passes only, in batches)."""
        out = [np.argmax(np.asarray(self.logits(theta, x[i:i + batch_size])), axis=1)
               for i in range(0, len(x), batch_size)]
        return np.concatenate(out)

    def error(self, theta, x, labels):
        """Classification error in [0, 1]."""
        return float(np.mean(self.predict(theta, x) != np.asarray(labels)))

    def describe(self):
        return f"{self.name}: {self.n_params} parameters"

    def __repr__(self):
        return f"{type(self).__name__}({self.describe()})"


class MLP(Classifier):
    """One hidden layer: ``Dense(n_in, hidden) -> tanh -> Dense(hidden, n_out)``."""

    name = "MLP"

    def __init__(self, n_in=64, hidden=62, n_out=10):
        super().__init__(n_in, n_out)
        self.hidden = int(hidden)
        self.layout.add("hidden.W", (n_in, hidden))
        self.layout.add("hidden.b", (hidden,))
        self.layout.add("out.W", (hidden, n_out))
        self.layout.add("out.b", (n_out,))

    def logits(self, theta, x):
        self._check(theta)
        return self._dense(theta, "out", anp.tanh(self._dense(theta, "hidden", x)))

    def describe(self):
        return f"MLP {self.n_in}-{self.hidden}-{self.n_out}, {self.n_params} parameters"


def mlp_hidden_for(n_params, n_in=64, n_out=10):
    """The hidden width of an MLP with about ``n_params`` parameters."""
    return max(1, int(round((n_params - n_out) / (n_in + 1 + n_out))))


class ResNet(Classifier):
    """Input layer, ``n_blocks`` residual blocks ``h + f_k(h)``, output layer."""

    name = "ResNet"

    def __init__(self, n_in=64, width=32, n_out=10, n_blocks=6):
        super().__init__(n_in, n_out)
        self.width, self.n_blocks = int(width), int(n_blocks)
        self.layout.add("in.W", (n_in, width))
        self.layout.add("in.b", (width,))
        for k in range(n_blocks):
            for j in (1, 2):
                self.layout.add(f"block{k}.{j}.W", (width, width))
                self.layout.add(f"block{k}.{j}.b", (width,))
        self.layout.add("out.W", (width, n_out))
        self.layout.add("out.b", (n_out,))

    def block(self, theta, k, h):
        """``f_k(h) = tanh(h W1 + b1) W2 + b2``."""
        return self._dense(theta, f"block{k}.2", anp.tanh(self._dense(theta, f"block{k}.1", h)))

    def logits(self, theta, x):
        self._check(theta)
        h = self._dense(theta, "in", x)
        for k in range(self.n_blocks):
            h = h + self.block(theta, k, h)
        self.stats.clear()
        self.stats.update(nfev_forward=self.n_blocks, nfev_backward=self.n_blocks)
        return self._dense(theta, "out", h)

    def describe(self):
        return (f"ResNet {self.n_in}-{self.width}x{self.n_blocks} blocks-{self.n_out}, "
                f"{self.n_params} parameters")


class ODENet(Classifier):
    """Input layer, one ODE block ``dh/dt = f(t, h)`` on [0, 1], output layer.

    Parameters
    ----------
    n_in, width, n_out : int
    rtol, atol : float
        Tolerances of the forward (and adjoint) solve.
    method : str, default 'dopri5'
    step_size : float, optional
        For a fixed-step ``method`` (e.g. ``'rk4'``).
    gradient : {'adjoint', 'interpolated', 'discrete'}, default 'adjoint'
    compiled : bool, default True
        Use the compiled ``nk.nn`` dynamics (else their autograd ``apply``).
    t1 : float, default 1.0
        End of the integration interval.
    """

    name = "ODE-Net"
    has_ode = True

    def __init__(self, n_in=64, width=32, n_out=10, *, rtol=1e-3, atol=1e-3, method="dopri5",
                 step_size=None, gradient="adjoint", compiled=True, t1=1.0, **options):
        super().__init__(n_in, n_out)
        self.width = int(width)
        self.dynamics = Sequential(TimeDense(width, width), "tanh", TimeDense(width, width))
        self.layout.add("in.W", (n_in, width))
        self.layout.add("in.b", (width,))
        self.layout.add("ode", (self.dynamics.n_params,))
        self.layout.add("out.W", (width, n_out))
        self.layout.add("out.b", (n_out,))
        self.options = dict(method=method, rtol=rtol, atol=atol, gradient=gradient, **options)
        if step_size is not None:
            self.options["step_size"] = step_size
        self.compiled = bool(compiled)
        self.t = np.array([0.0, float(t1)])

    def init(self, seed=0):
        theta = super().init(seed)
        theta[self.layout.slice("ode")] = self.dynamics.init(seed=seed + 1, scheme="torch")
        return theta

    @property
    def fun(self):
        return self.dynamics.ode if self.compiled else self.dynamics.apply

    def features(self, theta, x, **options):
        """``h(1)``: the state at the end of the ODE block, shape (n, width)."""
        self._check(theta)
        h0 = self._dense(theta, "in", x)
        opts = dict(self.options, **options)
        opts.setdefault("stats", self.stats)
        th_ode = theta[self.layout.slice("ode")]
        return odeint(self.fun, h0, self.t, th_ode, **opts)[-1]

    def logits(self, theta, x, **options):
        """Logits; ``options`` override the solver options for this call (e.g. ``rtol``)."""
        return self._dense(theta, "out", self.features(theta, x, **options))

    def describe(self):
        o = self.options
        solver = o["method"] + (f" h={o['step_size']}" if "step_size" in o else
                                f" rtol={o['rtol']:g} atol={o['atol']:g}")
        return (f"{self.name} {self.n_in}-[{self.width} ODE block, {solver}, "
                f"{o['gradient']}]-{self.n_out}, {self.n_params} parameters")


class RKNet(ODENet):
    """The ODE-Net trained by backpropagating through the solver's steps
    (``gradient='discrete'``)."""

    name = "RK-Net"

    def __init__(self, n_in=64, width=32, n_out=10, **kwargs):
        kwargs.setdefault("gradient", "discrete")
        super().__init__(n_in, width, n_out, **kwargs)


#: The models of Table 1 by name.
MODELS = {"mlp": MLP, "resnet": ResNet, "odenet": ODENet, "rknet": RKNet}


def build(name, n_in=64, n_out=10, width=32, **kwargs):
    """A Table 1 model by name ('mlp', 'resnet', 'odenet', 'rknet').

    The MLP's hidden width defaults to one giving about the ODE-Net's
    parameter count at the same ``width``.
    """
    key = name.lower().replace("-", "").replace("_", "")
    if key not in MODELS:
        raise ValueError(f"Unknown model {name!r}; valid names are {sorted(MODELS)}.")
    if key == "mlp":
        if "hidden" not in kwargs:
            kwargs["hidden"] = mlp_hidden_for(ODENet(n_in, width, n_out).n_params, n_in, n_out)
        return MLP(n_in, n_out=n_out, **kwargs)
    if key == "resnet":
        return ResNet(n_in, width, n_out, **kwargs)
    return MODELS[key](n_in, width, n_out, **kwargs)
