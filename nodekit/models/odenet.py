"""The four classifiers of Table 1 of Chen et al. (2018), for flat inputs.

Every model is a function ``logits(theta, x)`` of one flat parameter vector,
written in autograd-NumPy, with a softmax cross-entropy :meth:`Classifier.loss`:

``MLPClassifier`` (the table's "MLP")
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

Every layer is an ``nk.nn`` layer: the input and output layers and the
residual blocks are :class:`nodekit.nn.Chain` parts of one flat ``theta``.
The ODE block is a compiled :class:`nodekit.nn.Sequential` (``model.ode``:
Numba kernels with analytic VJPs); ``compiled=False`` uses its autograd
``apply`` as a Python right-hand side instead (slower; for checks).
"""
import autograd.numpy as anp
import numpy as np

from ..nn import Chain, Dense, Sequential, TimeDense
from ..nn.model import check_theta_shape
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


class Classifier:
    """Base class: a flat-parameter classifier ``logits(theta, x)`` made of ``nk.nn`` parts.

    ``theta`` is the concatenation of the parameters of the parts, in the
    order they were added (:meth:`add_part`); each part is an
    :class:`nodekit.nn.Chain` (feed-forward layers) or a
    :class:`nodekit.nn.Sequential` (ODE dynamics).

    Attributes
    ----------
    name : str
    n_params : int
    parts : dict
        The parts by name, in the order of ``theta``.
    stats : dict
        Filled by the ODE block with ``nfev_forward``/``nfev_backward`` (empty
        for models without one).
    """

    name = "classifier"
    has_ode = False

    def __init__(self, n_in, n_out):
        self.n_in, self.n_out = int(n_in), int(n_out)
        self.parts = {}
        self._slices = {}
        self.n_params = 0
        self.stats = {}

    def add_part(self, name, net):
        """Append the parameters of ``net`` (an ``nk.nn`` network) to ``theta``."""
        self.parts[name] = net
        self._slices[name] = slice(self.n_params, self.n_params + net.n_params)
        self.n_params += net.n_params
        return net

    def part_slice(self, name):
        """Where the parameters of part ``name`` sit in ``theta``."""
        return self._slices[name]

    @property
    def blocks(self):
        """``[(name, offset, shape), ...]``: every parameter block of ``theta``."""
        return [(f"{part}.{name}", self._slices[part].start + off, tuple(shape))
                for part, net in self.parts.items()
                for entries in net.layout for name, off, shape in entries]

    def _check(self, theta):
        check_theta_shape(theta, self.n_params, self)

    def init(self, seed=0):
        """Initial parameters (PyTorch-style uniform), reproducible from ``seed``.

        The parts draw in turn from one generator seeded with ``seed``.
        """
        rng = np.random.default_rng(seed)
        theta = np.empty(self.n_params)
        for name, net in self.parts.items():
            theta[self._slices[name]] = self._init_part(name, net, rng, seed)
        return theta

    def _init_part(self, name, net, rng, seed):
        return net.init(rng, scheme="torch")

    def apply_part(self, name, theta, h, t=0.0):
        """Part ``name`` applied to ``h`` with its parameters from ``theta``."""
        return self.parts[name].apply(t, h, theta[self._slices[name]])

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


class MLPClassifier(Classifier):
    """One hidden layer: ``Dense(n_in, hidden) -> tanh -> Dense(hidden, n_out)``.

    (Called ``MLP`` in the paper's Table 1; not to be confused with
    :func:`nodekit.nn.MLP`, which builds ODE dynamics.)
    """

    name = "MLP"

    def __init__(self, n_in=64, hidden=62, n_out=10):
        super().__init__(n_in, n_out)
        self.hidden = int(hidden)
        self.add_part("net", Chain(Dense(n_in, hidden), "tanh", Dense(hidden, n_out)))

    def logits(self, theta, x):
        self._check(theta)
        return self.apply_part("net", theta, x)

    def describe(self):
        return f"MLP {self.n_in}-{self.hidden}-{self.n_out}, {self.n_params} parameters"


def mlp_hidden_for(n_params, n_in=64, n_out=10):
    """The hidden width of an MLP with about ``n_params`` parameters."""
    return max(1, round((n_params - n_out) / (n_in + 1 + n_out)))


class ResNet(Classifier):
    """Input layer, ``n_blocks`` residual blocks ``h + f_k(h)``, output layer."""

    name = "ResNet"

    def __init__(self, n_in=64, width=32, n_out=10, n_blocks=6):
        super().__init__(n_in, n_out)
        self.width, self.n_blocks = int(width), int(n_blocks)
        self.add_part("in", Chain(Dense(n_in, width)))
        for k in range(self.n_blocks):
            self.add_part(f"block{k}", Chain(Dense(width, width), "tanh", Dense(width, width)))
        self.add_part("out", Chain(Dense(width, n_out)))

    def block(self, theta, k, h):
        """``f_k(h) = tanh(h W1 + b1) W2 + b2``."""
        return self.apply_part(f"block{k}", theta, h)

    def logits(self, theta, x):
        self._check(theta)
        h = self.apply_part("in", theta, x)
        for k in range(self.n_blocks):
            h = h + self.block(theta, k, h)
        self.stats.clear()
        self.stats.update(nfev_forward=self.n_blocks, nfev_backward=self.n_blocks)
        return self.apply_part("out", theta, h)

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
        self.add_part("in", Chain(Dense(n_in, width)))
        self.dynamics = self.add_part(
            "ode", Sequential(TimeDense(width, width), "tanh", TimeDense(width, width)))
        self.add_part("out", Chain(Dense(width, n_out)))
        self.options = dict(method=method, rtol=rtol, atol=atol, gradient=gradient, **options)
        if step_size is not None:
            self.options["step_size"] = step_size
        self.compiled = bool(compiled)
        self.t = np.array([0.0, float(t1)])

    def _init_part(self, name, net, rng, seed):
        # the dynamics draw from their own generator (seed + 1): the input and
        # output layers keep the same values whatever the ODE block's size
        if name == "ode":
            return net.init(seed=seed + 1, scheme="torch")
        return super()._init_part(name, net, rng, seed)

    @property
    def fun(self):
        return self.dynamics.ode if self.compiled else self.dynamics.apply

    def features(self, theta, x, **options):
        """``h(1)``: the state at the end of the ODE block, shape (n, width)."""
        self._check(theta)
        h0 = self.apply_part("in", theta, x)
        opts = dict(self.options, **options)
        opts.setdefault("stats", self.stats)
        th_ode = theta[self.part_slice("ode")]
        return odeint(self.fun, h0, self.t, th_ode, **opts)[-1]

    def logits(self, theta, x, **options):
        """Logits; ``options`` override the solver options for this call (e.g. ``rtol``)."""
        return self.apply_part("out", theta, self.features(theta, x, **options))

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
MODELS = {"mlp": MLPClassifier, "resnet": ResNet, "odenet": ODENet, "rknet": RKNet}


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
        return MLPClassifier(n_in, n_out=n_out, **kwargs)
    if key == "resnet":
        return ResNet(n_in, width, n_out, **kwargs)
    return MODELS[key](n_in, width, n_out, **kwargs)


def __getattr__(name):
    # ``MLP`` was the classifier's name before it was renamed to MLPClassifier
    # (``nodekit.nn.MLP`` builds ODE dynamics)
    if name == "MLP":
        import warnings
        warnings.warn("nodekit.models.MLP is deprecated; use nodekit.models.MLPClassifier "
                      "(nodekit.nn.MLP builds ODE dynamics, not a classifier).",
                      DeprecationWarning, stacklevel=2)
        return MLPClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
