""":class:`Chain`: layers applied in turn to rows of features; :class:`Sequential`:
a width-preserving chain, the dynamics ``f(t, y)`` of a neural ODE, compiled to an
``nk.ODE``."""
from functools import cached_property

import numpy as np

from . import codegen
from .layers import Dense, Layer, activation, layer_from_spec

INIT_SCHEMES = ("torch", "normal", "glorot")


def check_theta_shape(theta, n_params, owner):
    """Raise a ValueError unless ``theta`` is a flat vector of ``n_params`` entries.

    The one check of a parameter vector's length for every ``nk.nn`` network
    and every model built from them; ``theta`` may be an autograd box (only
    its shape is read).

    Parameters
    ----------
    theta : array_like
    n_params : int
        The expected length.
    owner : object
        What the parameters belong to (named in the message).
    """
    shape = np.shape(theta)
    if shape != (n_params,):
        got = f"got shape {shape}"
        if len(shape) == 1:
            got += (f" ({shape[0]} parameters, {abs(shape[0] - n_params)} too "
                    f"{'few' if shape[0] < n_params else 'many'})")
        raise ValueError(f"`theta` must be a flat vector of length {n_params} (the parameters "
                         f"of {owner!r}); {got}.")


class Chain:
    """Layers applied in turn to a batch of feature rows: ``h -> layer_k(...layer_1(h))``.

    A feed-forward network of any input and output widths, with one flat
    parameter vector (e.g. the input and output layers of a classifier).
    :class:`Sequential` is the chain whose output width equals its input
    width: the dynamics of a neural ODE, with compiled kernels.

    Parameters
    ----------
    *layers : Layer or str
        :class:`Dense`, :class:`TimeDense`, activations (instances or names:
        ``'tanh'``, ``'softplus'``, ``'relu'``, ``'elu'``, ``'sigmoid'``,
        ``'sin'``) and elementwise maps such as :class:`Power`.
    dim : int, optional
        The input width; needed only when no layer has a fixed width.

    Attributes
    ----------
    dim : int
        Input width.
    widths : list of int
        Widths of the input and of every layer's output.
    n_params : int
        Length of the flat parameter vector ``theta``.

    Raises
    ------
    ValueError
        Mismatched layer sizes or an unknown activation name.
    TypeError
        A layer that is not an ``nk.nn`` layer.

    Examples
    --------
    >>> import numpy as np
    >>> from nodekit.nn import Chain, Dense
    >>> head = Chain(Dense(4, 3), "tanh", Dense(3, 2))
    >>> head.n_params, head.widths
    (23, [4, 3, 3, 2])
    >>> head.apply(0.0, np.ones((5, 4)), head.init(seed=0)).shape
    (5, 2)
    """

    #: What the input is called in messages.
    _noun = "input"

    def __init__(self, *layers, dim=None):
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        if not layers:
            raise ValueError(f"`layers`: a {type(self).__name__} model needs at least one "
                             "layer; got none.")
        resolved = []
        for k, layer in enumerate(layers):
            if isinstance(layer, str):
                layer = activation(layer)
            elif isinstance(layer, type) and issubclass(layer, Layer):
                raise TypeError(f"`layers[{k}]` is the class {layer.__name__}; pass an "
                                f"instance, e.g. {layer.__name__}().")
            elif not isinstance(layer, Layer):
                raise TypeError(f"`layers[{k}]` must be an nk.nn layer or an activation "
                                f"name; got {type(layer).__name__} {layer!r}.")
            resolved.append(layer)
        self.layers = resolved
        self.widths = self._resolve_widths(dim)
        self.dim = self.widths[0]
        self.layout = []   # per layer: [(name, offset, shape), ...]
        offset = 0
        for k, layer in enumerate(self.layers):
            entries = []
            for pname, shape in layer.param_shapes(self.widths[k]):
                entries.append((f"{k}.{pname}", offset, shape))
                offset += int(np.prod(shape))
            self.layout.append(entries)
        self.n_params = offset

    def _resolve_widths(self, dim):
        fixed = [(k, layer.in_width) for k, layer in enumerate(self.layers)
                 if layer.in_width is not None]
        if dim is not None:
            if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
                raise ValueError(f"`dim` must be a positive integer; got dim={dim!r}.")
            d = int(dim)
        elif fixed:
            d = fixed[0][1]     # elementwise layers before it keep the width
        else:
            raise ValueError(f"`dim`: no layer fixes the {self._noun} width (all are "
                             f"elementwise); pass {type(self).__name__}(..., dim=d).")
        widths = [d]
        for k, layer in enumerate(self.layers):
            n_in = widths[-1]
            if layer.in_width is not None and layer.in_width != n_in:
                prev = (f"layer {k - 1} ({self.layers[k - 1]!r}) outputs {n_in}"
                        if k else f"the {self._noun} has width {n_in}")
                raise ValueError(f"`layers`: mismatched sizes: layer {k} ({layer!r}) expects "
                                 f"{layer.in_width} inputs but {prev}.")
            widths.append(layer.out_width(n_in))
        return widths

    @property
    def n_out(self):
        """Output width."""
        return self.widths[-1]

    # ------------------------------------------------------------------ parameters

    @property
    def param_names(self):
        """Names of the parameter blocks, in the order of ``theta``."""
        return [name for entries in self.layout for name, _, _ in entries]

    def check_theta(self, theta):
        """``theta`` as a flat float64 array, or a ValueError."""
        check_theta_shape(theta, self.n_params, self)
        return np.asarray(theta, dtype=np.float64)

    def unpack(self, theta):
        """Named views of ``theta``: ``{'0.W': (n_in, n_out) view, '0.b': ..., ...}``.

        Writing into a view writes into ``theta``.
        """
        th = self.check_theta(theta)
        return {name: th[off:off + int(np.prod(shape))].reshape(shape)
                for entries in self.layout for name, off, shape in entries}

    def pack(self, params):
        """The flat ``theta`` from a dict of blocks (the inverse of :meth:`unpack`)."""
        theta = np.empty(self.n_params)
        names = set(self.param_names)
        unknown = set(params) - names
        missing = names - set(params)
        if unknown or missing:
            raise ValueError(f"`params` must have exactly the keys {self.param_names}; "
                             f"missing {sorted(missing)}, unknown {sorted(unknown)}.")
        for entries in self.layout:
            for name, off, shape in entries:
                block = np.asarray(params[name], dtype=np.float64)
                if block.shape != tuple(shape):
                    raise ValueError(f"`params[{name!r}]` must have shape {tuple(shape)}; "
                                     f"got {block.shape}.")
                theta[off:off + block.size] = block.ravel()
        return theta

    def init(self, seed=0, scheme="torch", std=0.1):
        """Initial parameters.

        Parameters
        ----------
        seed : int or numpy.random.Generator, default 0
            A Generator is drawn from (and advanced), layer by layer.
        scheme : {'torch', 'normal', 'glorot'}, default 'torch'
            ``'torch'``: PyTorch's default for ``nn.Linear``, weights and
            biases uniform on ``+-1/sqrt(fan_in)``; ``'normal'``: weights
            N(0, std**2), biases zero (torchdiffeq's spiral demo);
            ``'glorot'``: weights uniform on ``+-sqrt(6/(fan_in+fan_out))``,
            biases zero.
        std : float, default 0.1
            Standard deviation for ``'normal'``.

        Returns
        -------
        theta : ndarray, shape (n_params,)
        """
        if scheme not in INIT_SCHEMES:
            raise ValueError(f"Unknown init `scheme` {scheme!r}; valid schemes are "
                             f"{list(INIT_SCHEMES)}.")
        if not (np.isfinite(std) and std >= 0):
            raise ValueError(f"`std` must be finite and non-negative; got std={std!r}.")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        theta = np.empty(self.n_params)
        for k, layer in enumerate(self.layers):
            for (name, off, shape), value in zip(self.layout[k],
                                                 layer.init(rng, self.widths[k], scheme, std)):
                theta[off:off + int(np.prod(shape))] = np.ravel(value)
        return theta

    # ------------------------------------------------------------------ evaluation

    def _check_state(self, y, name="y"):
        shape = np.shape(y)
        if len(shape) == 0 or shape[-1] != self.dim:
            raise ValueError(f"`{name}` must have last axis of width {self.dim} (the "
                             f"{self._noun} width of {self!r}); got shape {tuple(shape)}.")
        return shape

    def apply(self, t, y, theta):
        """The layers applied to the rows of ``y``, in autograd-NumPy.

        Differentiable by autograd in ``t``, ``y`` and ``theta``.

        Parameters
        ----------
        t : float
            Time, read by :class:`TimeDense` layers only.
        y : array_like, shape (..., dim)
        theta : array_like, shape (n_params,)

        Returns
        -------
        array, shape (..., n_out)
        """
        shape = self._check_state(y)
        check_theta_shape(theta, self.n_params, self)
        h = y if len(shape) == 2 else _reshape(y, (-1, self.dim))
        for k, layer in enumerate(self.layers):
            params = [_reshape(theta[off:off + int(np.prod(s))], s)
                      for _, off, s in self.layout[k]]
            h = layer.apply(t, h, params)
        return h if len(shape) == 2 else _reshape(h, tuple(shape[:-1]) + (self.n_out,))

    __call__ = apply

    # ------------------------------------------------------------------ description

    def spec(self):
        """JSON-able description (rebuild with :meth:`from_spec`)."""
        return {"type": type(self).__name__, "dim": self.dim,
                "layers": [layer.spec() for layer in self.layers]}

    @classmethod
    def from_spec(cls, spec):
        """Rebuild a model from :meth:`spec`.

        Raises
        ------
        ValueError
            If ``spec`` is not the description of a model of this class
            (each problem is named).
        """
        kind = cls.__name__
        if not isinstance(spec, dict) or spec.get("type") != kind:
            raise ValueError(f"`spec` must describe a {kind} model (a dict with "
                             f"type={kind!r}); got {spec!r}.")
        layers = spec.get("layers")
        if not isinstance(layers, list) or not layers:
            raise ValueError(f"`spec['layers']` must be a non-empty list of layer "
                             f"descriptions; got {layers!r}.")
        return cls(*[layer_from_spec(s, f"spec['layers'][{k}]")
                     for k, s in enumerate(layers)], dim=spec.get("dim"))

    def _title(self):
        return f"Chain: width {self.dim} -> {self.n_out}, {self.n_params} parameters"

    def summary(self):
        """A table of layers, widths and parameter blocks."""
        lines = [self._title()]
        for k, layer in enumerate(self.layers):
            blocks = ", ".join(f"{n} {tuple(s)}" for n, _, s in self.layout[k])
            lines.append(f"  {k}: {layer!r:<20} {self.widths[k]:>4} -> {self.widths[k + 1]:<4}"
                         f" {blocks}")
        return "\n".join(lines)

    def __repr__(self):
        return f"{type(self).__name__}(" + ", ".join(repr(layer) for layer in self.layers) + ")"

    def __eq__(self, other):
        return type(other) is type(self) and self.spec() == other.spec()

    def __hash__(self):
        return hash(repr(self.spec()))


class Sequential(Chain):
    """Layers applied in turn: the dynamics ``dy/dt = f(t, y; theta)`` of a neural ODE.

    ``f`` acts row by row on a batched state of shape (B, d) (or on a single
    state of shape (d,)), every row with the same parameters.

    Parameters
    ----------
    *layers : Layer or str
        :class:`Dense`, :class:`TimeDense`, activations (instances or names:
        ``'tanh'``, ``'softplus'``, ``'relu'``, ``'elu'``, ``'sigmoid'``,
        ``'sin'``) and elementwise input maps such as :class:`Power`.
    dim : int, optional
        The state width ``d``; needed only when no layer has a fixed width.

    Attributes
    ----------
    dim : int
        State width ``d`` (input and output width of ``f``).
    widths : list of int
        Widths of the input and of every layer's output.
    n_params : int
        Length of the flat parameter vector ``theta``.
    ode : nk.ODE
        The compiled dynamics (``rhs`` and analytic ``vjp`` kernels), built
        on first use (see :meth:`compile`).

    Raises
    ------
    ValueError
        Mismatched layer sizes, an unknown activation name, or a model whose
        output width differs from its input width.

    Notes
    -----
    The kernels are generated Python source with the architecture baked in,
    written to a cache folder (``$NODEKIT_CACHE/nn`` or ``~/.cache/nodekit/nn``)
    and compiled by Numba with ``cache=True``: a new process loads them from
    disk.  Each kernel call allocates one scratch buffer (the activations of
    one row, plus two cotangent vectors in the VJP), reused by every row;
    nothing is allocated per row or per layer.  The VJP recomputes the forward
    pass of each row (nothing is stored between calls).

    Examples
    --------
    >>> import numpy as np, nodekit as nk
    >>> from nodekit.nn import Sequential, Power, Dense
    >>> model = Sequential(Power(3), Dense(2, 50), "tanh", Dense(50, 2))
    >>> model.n_params
    252
    >>> theta = model.init(seed=0, scheme="normal", std=0.1)
    >>> ys = nk.odeint(model.ode, np.ones((20, 2)), np.linspace(0, 1, 5), theta)
    >>> ys.shape
    (5, 20, 2)
    """

    _noun = "state"

    def _resolve_widths(self, dim):
        widths = super()._resolve_widths(dim)
        if widths[-1] != widths[0]:
            raise ValueError(f"`layers`: the dynamics f(t, y) must map the state to its own "
                             f"width; the model takes width {widths[0]} but outputs width "
                             f"{widths[-1]} (last layer {self.layers[-1]!r}).")
        return widths

    def apply(self, t, y, theta):
        """``f(t, y)`` in autograd-NumPy: the same math as the kernels.

        Differentiable by autograd in ``t``, ``y`` and ``theta``; usable as a
        Python ``fun`` for ``nk.odeint`` (then autograd forms the VJPs).

        Parameters
        ----------
        t : float
        y : array_like, shape (..., d)
        theta : array_like, shape (n_params,)

        Returns
        -------
        array, shape of ``y``
        """
        return super().apply(t, y, theta)

    __call__ = apply

    @cached_property
    def kernels(self):
        """The generated module holding ``nn_rhs`` and ``nn_vjp``."""
        return codegen.load_kernels(self)

    @property
    def source(self):
        """Source text of the generated kernels."""
        return codegen.generate(self)

    def compile(self):
        """The compiled dynamics as an ``nk.ODE`` (same object as :attr:`ode`)."""
        return self.ode

    @cached_property
    def ode(self):
        return codegen.NetODE(self)

    def __getstate__(self):
        # the generated module and the compiled ODE are rebuilt on use (they
        # do not pickle); an unpickled model regenerates or loads them
        return {k: v for k, v in self.__dict__.items() if k not in ("kernels", "ode")}

    def _flat_state(self, y, name="y"):
        shape = self._check_state(y, name)
        return np.ascontiguousarray(np.asarray(y, dtype=np.float64).reshape(-1)), shape

    def rhs(self, t, y, theta):
        """Evaluate the compiled ``rhs`` kernel: ``f(t, y)`` with the shape of ``y``."""
        yf, shape = self._flat_state(y)
        th = np.ascontiguousarray(self.check_theta(theta))
        out = np.empty_like(yf)
        self.ode.rhs(float(t), yf, th, out)
        return out.reshape(shape)

    def vjp(self, t, y, theta, a):
        """Evaluate the compiled ``vjp`` kernel.

        Returns
        -------
        a_y : ndarray, shape of ``y``
            ``a^T df/dy``.
        a_theta : ndarray, shape (n_params,)
            ``a^T df/dtheta`` (summed over rows).
        a_t : float
            ``a^T df/dt``.
        """
        yf, shape = self._flat_state(y)
        af, ashape = self._flat_state(a, "a")
        if ashape != shape:
            raise ValueError(f"`a` must have the shape of `y`, {shape}; got {ashape}.")
        th = np.ascontiguousarray(self.check_theta(theta))
        out_y = np.empty_like(yf)
        out_theta = np.empty(self.n_params)
        a_t = self.ode.vjp(float(t), yf, th, af, out_y, out_theta)
        return out_y.reshape(shape), out_theta, float(a_t)

    def check_sizes(self, y0, theta):
        """Raise a ValueError unless ``y0`` has rows of width :attr:`dim` and
        ``theta`` has :attr:`n_params` entries.  ``nk.solve`` and ``nk.odeint``
        call it (through :attr:`ode`) before the kernels run: they read
        exactly these sizes and nothing checks them inside."""
        self._check_state(y0, "y0")
        check_theta_shape(theta, self.n_params, self)

    def odeint(self, y0, t, theta, **options):
        """``nk.odeint(self.ode, y0, t, theta, **options)`` after checking shapes.

        Differentiable (autograd) in ``y0``, ``t`` and ``theta``.
        """
        from ..primitive import odeint
        self.check_sizes(y0, theta)
        return odeint(self.ode, y0, t, theta, **options)

    # ------------------------------------------------------------------ description

    def _title(self):
        return f"Sequential: state width {self.dim}, {self.n_params} parameters"

    def __hash__(self):
        return hash(codegen.architecture_key(self))


def network_from_spec(spec):
    """Rebuild a :class:`Chain` or :class:`Sequential` from its :meth:`~Chain.spec`.

    Raises
    ------
    ValueError
        If ``spec`` describes neither (the message says what is wrong).
    """
    kinds = {cls.__name__: cls for cls in (Chain, Sequential)}
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind not in kinds:
        raise ValueError(f"`spec` must describe an nk.nn network (a dict with 'type' one of "
                         f"{sorted(kinds)}); got {spec!r}"[:300] + ".")
    return kinds[kind].from_spec(spec)


def _reshape(x, shape):
    import autograd.numpy as anp
    return anp.reshape(x, shape)


def MLP(dim, hidden, activation="tanh", *, input_map=None, time=False):
    """A multilayer perceptron ``dim -> hidden... -> dim`` as dynamics.

    Parameters
    ----------
    dim : int
        State width.
    hidden : int or sequence of int
        Hidden widths.
    activation : str or Layer, default 'tanh'
        Between affine layers (not after the last).
    input_map : Layer, optional
        Applied to the state first (e.g. ``Power(3)``).
    time : bool, default False
        Use :class:`TimeDense` (input ``[h, t]``) for every affine layer.
    """
    from .layers import TimeDense
    from .layers import activation as _act
    hidden = [hidden] if np.isscalar(hidden) else list(hidden)
    widths = [dim] + hidden + [dim]
    affine = TimeDense if time else Dense
    layers = [] if input_map is None else [input_map]
    for k in range(len(widths) - 1):
        layers.append(affine(widths[k], widths[k + 1]))
        if k < len(widths) - 2:
            layers.append(_act(activation) if isinstance(activation, str) else activation)
    return Sequential(*layers)
