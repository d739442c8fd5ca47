"""Layers of ``nk.nn``: each one is data (sizes, parameter shapes) plus three
renderings of the same math.

* ``apply(t, h, params)``: autograd-NumPy on a batch ``h`` of shape (B, n_in);
* ``forward(c)``: Numba source lines computing one row, reading its input from
  the scratch slice ``s[c.zi : c.zi + n_in]`` and writing ``s[c.zo : ...]``;
* ``backward(c)``: Numba source lines turning the cotangent of the output
  ``s[c.go : ...]`` into that of the input ``s[c.gi : ...]`` and accumulating
  ``a . df/dtheta`` into ``out_theta`` (and ``a . df/dt`` into ``dt``);
* ``forward_batch(c)``, ``backward_batch(c)``: the same for all rows at once,
  on 2-D arrays of shape (rows, width) named ``c.zi``, ``c.zo``, ``c.gi``,
  ``c.go`` (with 1-D views of the same memory named with the suffix
  ``_f``); affine layers are matrix products (``np.dot``, which Numba
  hands to BLAS), elementwise maps loops over the flat views.

A layer never allocates: all rows share the scratch buffers of one kernel call
(and the batch renderings one small buffer ``dw`` for a weight gradient and
``col`` for the column sums of a cotangent).
"""
import math

import autograd.numpy as anp
from autograd.extend import defvjp, primitive
import numpy as np

#: Affine layers with at most this many outputs keep them in registers.
_UNROLL = 4


class Layer:
    """Base class: a map from ``n_in`` to ``n_out`` features, applied row by row."""

    #: Name used in descriptions, saved files and messages.
    kind = "layer"

    def out_width(self, n_in):
        """Output width given the input width (``n_in`` may be None if unknown)."""
        return n_in

    @property
    def in_width(self):
        """Input width if fixed by the layer itself, else None (elementwise)."""
        return None

    def param_shapes(self, n_in):
        """``[(name, shape), ...]`` of this layer's parameters."""
        return []

    def init(self, rng, n_in, scheme, std):
        """Initial values of the parameters, in the order of :meth:`param_shapes`."""
        return []

    def spec(self):
        """A JSON-able description from which :func:`layer_from_spec` rebuilds it."""
        return {"kind": self.kind}

    def __repr__(self):
        return f"{type(self).__name__}()"

    def __eq__(self, other):
        return type(self) is type(other) and self.spec() == other.spec()

    def __hash__(self):
        return hash(repr(self.spec()))


# ----------------------------------------------------------------------------
# Affine layers


class Dense(Layer):
    """Affine layer ``h @ W + b``: ``W`` of shape (n_in, n_out), ``b`` of shape (n_out,).

    Parameters
    ----------
    n_in, n_out : int
        Input and output widths.

    Notes
    -----
    ``W`` is stored input-major (the transpose of ``torch.nn.Linear.weight``),
    so that the compiled loops read it contiguously.
    """

    kind = "dense"
    has_time = False

    def __init__(self, n_in, n_out):
        self.n_in = _positive_int(n_in, "n_in", type(self).__name__)
        self.n_out = _positive_int(n_out, "n_out", type(self).__name__)

    @property
    def in_width(self):
        return self.n_in

    def out_width(self, n_in):
        return self.n_out

    @property
    def n_rows(self):
        """Rows of ``W``: the inputs (plus one for time in :class:`TimeDense`)."""
        return self.n_in + int(self.has_time)

    def param_shapes(self, n_in):
        return [("W", (self.n_rows, self.n_out)), ("b", (self.n_out,))]

    def init(self, rng, n_in, scheme, std):
        fan_in, fan_out = self.n_rows, self.n_out
        shape = (self.n_rows, self.n_out)
        if scheme == "torch":
            bound = 1.0 / math.sqrt(fan_in)
            return [rng.uniform(-bound, bound, shape), rng.uniform(-bound, bound, fan_out)]
        if scheme == "normal":
            return [rng.normal(0.0, std, shape), np.zeros(fan_out)]
        bound = math.sqrt(6.0 / (fan_in + fan_out))  # glorot
        return [rng.uniform(-bound, bound, shape), np.zeros(fan_out)]

    def spec(self):
        return {"kind": self.kind, "n_in": self.n_in, "n_out": self.n_out}

    def __repr__(self):
        return f"{type(self).__name__}({self.n_in}, {self.n_out})"

    def apply(self, t, h, params):
        W, b = params
        out = anp.dot(h, W[:self.n_in]) + b
        if self.has_time:
            out = out + t * W[self.n_in]
        return out

    def forward(self, c):
        ni, no, w, b = self.n_in, self.n_out, c.params[0], c.params[1]
        wt = w + ni * no   # the time row of TimeDense
        if no <= _UNROLL:
            # narrow output: one register accumulator per output, reduce over inputs
            lines = [f"acc{j} = theta[{b + j}]" for j in range(no)]
            if self.has_time:
                lines += [f"acc{j} += t * theta[{wt + j}]" for j in range(no)]
            lines += [f"for i in range({ni}):",
                      f"    zi = s[{c.zi} + i]"]
            lines += [f"    acc{j} += zi * theta[{w + j} + i * {no}]" for j in range(no)]
            lines += [f"s[{c.zo + j}] = acc{j}" for j in range(no)]
            return lines
        # wide output: accumulate rows of W (contiguous, vectorised over outputs)
        lines = [f"for j in range({no}):",
                 f"    s[{c.zo} + j] = theta[{b} + j]"]
        if self.has_time:
            lines += [f"for j in range({no}):",
                      f"    s[{c.zo} + j] += t * theta[{wt} + j]"]
        lines += [f"for i in range({ni}):",
                  f"    zi = s[{c.zi} + i]",
                  f"    for j in range({no}):",
                  f"        s[{c.zo} + j] += zi * theta[{w} + i * {no} + j]"]
        return lines

    def backward(self, c):
        ni, no, w, b = self.n_in, self.n_out, c.params[0], c.params[1]
        wt = w + ni * no
        lines = [f"for j in range({no}):",
                 f"    out_theta[{b} + j] += s[{c.go} + j]"]
        if self.has_time:
            lines += [f"for j in range({no}):",
                      f"    gj = s[{c.go} + j]",
                      f"    out_theta[{wt} + j] += t * gj",
                      f"    dt += theta[{wt} + j] * gj"]
        if no <= _UNROLL:
            lines += [f"g{j} = s[{c.go + j}]" for j in range(no)]
            lines += [f"for i in range({ni}):",
                      f"    zi = s[{c.zi} + i]"]
            lines += [f"    out_theta[{w + j} + i * {no}] += zi * g{j}" for j in range(no)]
            if c.need_input_grad:
                lines += [f"    s[{c.gi} + i] = " + " + ".join(
                    f"theta[{w + j} + i * {no}] * g{j}" for j in range(no))]
            return lines
        lines += [f"for i in range({ni}):",
                  f"    zi = s[{c.zi} + i]",
                  "    acc = 0.0",
                  f"    for j in range({no}):",
                  f"        gj = s[{c.go} + j]",
                  f"        acc += theta[{w} + i * {no} + j] * gj",
                  f"        out_theta[{w} + i * {no} + j] += zi * gj"]
        if c.need_input_grad:
            lines += [f"    s[{c.gi} + i] = acc"]
        return lines


    def _weights(self, c):
        """Source of the (n_in, n_out) weight matrix as a view of ``theta``."""
        w, ni, no = c.params[0], self.n_in, self.n_out
        return f"theta[{w}:{w + ni * no}].reshape(({ni}, {no}))"

    def bias_batch(self, c):
        """Source of the bias of output ``j`` (``t``-dependent for a time layer)."""
        b, wt = c.params[1], c.params[0] + self.n_in * self.n_out
        return f"theta[{b} + j]" + (f" + t * theta[{wt} + j]" if self.has_time else "")

    def forward_batch(self, c, bias=True):
        """``bias=False``: the matrix product only (the next layer adds the bias)."""
        lines = [f"np.dot({c.zi}, {self._weights(c)}, {c.zo})"]
        if bias:
            lines += [f"for r in range({c.zo}.shape[0]):",
                      f"    for j in range({self.n_out}):",
                      f"        {c.zo}[r, j] += {self.bias_batch(c)}"]
        return lines

    def backward_batch(self, c, summed=False):
        """``summed=True``: ``col`` already holds the column sums of the output
        cotangent (the next layer's backward summed them)."""
        ni, no, w, b = self.n_in, self.n_out, c.params[0], c.params[1]
        wt = w + ni * no
        lines = [f"np.dot({c.zi}.T, {c.go}, dw[:{ni * no}].reshape(({ni}, {no})))",
                 f"for k in range({ni * no}):",
                 f"    out_theta[{w} + k] += dw[k]"]
        if not summed:
            lines += [f"for j in range({no}):",
                      "    col[j] = 0.0",
                      f"for r in range({c.go}.shape[0]):",
                      f"    for j in range({no}):",
                      f"        col[j] += {c.go}[r, j]"]
        lines += [f"for j in range({no}):",
                  f"    out_theta[{b} + j] += col[j]"]
        if self.has_time:
            lines += [f"for j in range({no}):",
                      f"    out_theta[{wt} + j] += t * col[j]",
                      f"    dt += theta[{wt} + j] * col[j]"]
        if c.need_input_grad:
            lines += [f"np.dot({c.go}, np.ascontiguousarray({self._weights(c)}.T), {c.gi})"]
        return lines


class TimeDense(Dense):
    """Affine layer of ``[h, t]`` (the time-concatenating layer of the paper's
    ODE-Net blocks): ``h @ W[:n_in] + t * W[n_in] + b``, ``W`` of shape
    (n_in + 1, n_out).

    Makes the dynamics non-autonomous; the compiled VJP returns
    ``a . df/dt = sum_j g_j W[n_in, j]`` summed over such layers and rows.
    """

    kind = "timedense"
    has_time = True


# ----------------------------------------------------------------------------
# Elementwise maps


class Elementwise(Layer):
    """An elementwise map ``h -> phi(h)``; subclasses give the three renderings
    of ``phi`` and of ``g * phi'`` (as Numba expressions in ``x`` (input),
    ``fx`` (output) and ``g`` (output cotangent))."""

    #: Numba expression for the output, in ``x``.
    expr = "x"
    #: Numba expression for the input cotangent, in ``x``, ``fx`` and ``g``.
    grad_expr = "g"

    def np_apply(self, h):
        raise NotImplementedError

    def apply(self, t, h, params):
        return self.np_apply(h)

    def forward(self, c):
        return [f"for i in range({c.n_in}):",
                f"    x = s[{c.zi} + i]",
                f"    s[{c.zo} + i] = {self.expr}"]

    def backward(self, c):
        if not c.need_input_grad:
            return []
        return [f"for i in range({c.n_in}):",
                f"    x = s[{c.zi} + i]",
                f"    fx = s[{c.zo} + i]",
                f"    g = s[{c.go} + i]",
                f"    s[{c.gi} + i] = {self.grad_expr}"]


    def forward_batch(self, c):
        return [f"for k in range({c.zi}_f.size):",
                f"    x = {c.zi}_f[k]",
                f"    {c.zo}_f[k] = {self.expr}"]

    def forward_batch_biased(self, c, bias):
        """The map of ``zi + bias`` (the previous affine layer's product plus
        its bias, ``bias`` a source expression in ``j``), keeping the sum in
        ``zi``: one pass instead of two."""
        return [f"for r in range({c.zi}.shape[0]):",
                f"    for j in range({c.n_in}):",
                f"        x = {c.zi}[r, j] + {bias}",
                f"        {c.zi}[r, j] = x",
                f"        {c.zo}[r, j] = {self.expr}"]

    def backward_batch_summed(self, c):
        """The input cotangent and, in ``col``, its column sums (the previous
        affine layer's bias gradient): one pass instead of two."""
        return [f"for j in range({c.n_in}):",
                "    col[j] = 0.0",
                f"for r in range({c.zi}.shape[0]):",
                f"    for j in range({c.n_in}):",
                f"        x = {c.zi}[r, j]",
                f"        fx = {c.zo}[r, j]",
                f"        g = {c.go}[r, j]",
                f"        gx = {self.grad_expr}",
                f"        {c.gi}[r, j] = gx",
                "        col[j] += gx"]

    def backward_batch(self, c):
        if not c.need_input_grad:
            return []
        return [f"for k in range({c.zi}_f.size):",
                f"    x = {c.zi}_f[k]",
                f"    fx = {c.zo}_f[k]",
                f"    g = {c.go}_f[k]",
                f"    {c.gi}_f[k] = {self.grad_expr}"]


class Tanh(Elementwise):
    """``tanh(x)``."""
    kind = "tanh"
    expr = "_tanh(x)"
    grad_expr = "g * (1.0 - fx * fx)"

    def np_apply(self, h):
        return anp.tanh(h)


class Sigmoid(Elementwise):
    """``1 / (1 + exp(-x))``, computed as ``(1 + tanh(x/2)) / 2`` (no overflow)."""
    kind = "sigmoid"
    expr = "0.5 + 0.5 * _tanh(0.5 * x)"
    grad_expr = "g * fx * (1.0 - fx)"

    def np_apply(self, h):
        return 0.5 + 0.5 * anp.tanh(0.5 * h)


class Softplus(Elementwise):
    """``log(1 + exp(x))``, computed without overflow."""
    kind = "softplus"
    expr = "(x + math.log1p(math.exp(-x))) if x > 0.0 else math.log1p(math.exp(x))"
    grad_expr = "g * (0.5 + 0.5 * _tanh(0.5 * x))"

    def np_apply(self, h):
        return anp.logaddexp(0.0, h)


class ReLU(Elementwise):
    """``max(x, 0)`` (derivative 0 at 0)."""
    kind = "relu"
    expr = "x if x > 0.0 else 0.0"
    grad_expr = "g if x > 0.0 else 0.0"

    def np_apply(self, h):
        return _relu(h)


class ELU(Elementwise):
    """``x`` for ``x > 0``, else ``alpha * (exp(x) - 1)``.

    Parameters
    ----------
    alpha : float, default 1.0
    """
    kind = "elu"

    def __init__(self, alpha=1.0):
        alpha = float(alpha)
        if not math.isfinite(alpha):
            raise ValueError(f"`alpha` of ELU must be finite; got alpha={alpha!r}.")
        self.alpha = alpha

    @property
    def expr(self):
        return f"x if x > 0.0 else {self.alpha!r} * _expm1(x)"

    @property
    def grad_expr(self):
        return f"g if x > 0.0 else g * (fx + {self.alpha!r})"

    def np_apply(self, h):
        return _elu(h, self.alpha)

    def spec(self):
        return {"kind": self.kind, "alpha": self.alpha}

    def __repr__(self):
        return f"ELU(alpha={self.alpha!r})" if self.alpha != 1.0 else "ELU()"


class Sin(Elementwise):
    """``sin(x)``."""
    kind = "sin"
    expr = "math.sin(x)"
    grad_expr = "g * math.cos(x)"

    def np_apply(self, h):
        return anp.sin(h)


class Power(Elementwise):
    """Elementwise power ``x ** p``, an input map (the spiral demo's ``y**3``).

    Parameters
    ----------
    p : float
        The exponent.  Integer exponents are expanded into products (exact
        for negative ``x``); a non-integer exponent of a negative ``x`` gives
        NaN, which the solver reports as a non-finite derivative.
    """
    kind = "power"

    def __init__(self, p):
        try:
            p = float(p)
        except (TypeError, ValueError):
            raise TypeError(f"`p` of Power must be a real number; got {p!r}.") from None
        if not math.isfinite(p):
            raise ValueError(f"`p` of Power must be finite; got p={p!r}.")
        self.p = p

    @staticmethod
    def _pow(var, p):
        if p == int(p) and 0 <= p <= 8:
            k = int(p)
            return "1.0" if k == 0 else " * ".join([var] * k)
        return f"{var} ** {p!r}"

    @property
    def expr(self):
        return self._pow("x", self.p)

    @property
    def grad_expr(self):
        if self.p == 0:
            return "0.0"
        return f"g * {self.p!r} * {self._pow('x', self.p - 1)}"

    def np_apply(self, h):
        p = self.p
        return h ** int(p) if p == int(p) else h ** p

    def spec(self):
        return {"kind": self.kind, "p": self.p}

    def __repr__(self):
        p = int(self.p) if self.p == int(self.p) else self.p
        return f"Power({p})"


#: Activations (and other elementwise maps without arguments) by name.
@primitive
def _relu(h):
    """ReLU as one autograd primitive, with derivative 0 at 0 as the compiled
    kernels (``anp.maximum``'s VJP would split it, and costs more)."""
    return np.maximum(h, 0.0)


defvjp(_relu, lambda ans, h: lambda g: g * (h > 0))


@primitive
def _elu(h, alpha):
    """ELU as one autograd primitive (``expm1`` of the clipped input, so the
    branch not taken never overflows), with the derivative the compiled
    kernels use: 1 for ``h > 0``, else ``ELU(h) + alpha``.  Its VJP is
    autograd-NumPy of the output, so higher derivatives work."""
    return np.where(h > 0, h, alpha * np.expm1(np.minimum(h, 0.0)))


defvjp(_elu, lambda ans, h, alpha: lambda g: g * anp.where(h > 0, 1.0, ans + alpha))


ACTIVATIONS = {cls.kind: cls for cls in (Tanh, Softplus, ReLU, ELU, Sigmoid, Sin)}

_KINDS = {cls.kind: cls for cls in (Dense, TimeDense, Tanh, Softplus, ReLU, ELU, Sigmoid,
                                    Sin, Power)}


def activation(name):
    """The activation layer called ``name`` (``'tanh'``, ``'softplus'``, ...).

    Raises
    ------
    ValueError
        For an unknown name; the message lists the valid ones.
    """
    if isinstance(name, Layer):
        return name
    key = str(name).lower()
    if key not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {name!r}; valid activations are "
                         f"{sorted(ACTIVATIONS)}.")
    return ACTIVATIONS[key]()


def layer_from_spec(spec, where="spec"):
    """Rebuild a layer from :meth:`Layer.spec`.

    Parameters
    ----------
    spec : dict
        ``{'kind': ..., **arguments}``.
    where : str, default 'spec'
        How to name ``spec`` in messages (e.g. ``"spec['layers'][2]"``).

    Raises
    ------
    ValueError
        If ``spec`` is not a dict, names an unknown kind, or holds arguments
        that kind does not take or values it rejects.
    """
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ValueError(f"`{where}` must be a layer description (a dict with a 'kind'); "
                         f"got {spec!r}.")
    args = dict(spec)
    kind = args.pop("kind", None)
    if kind not in _KINDS:
        raise ValueError(f"Unknown layer kind {kind!r} in `{where}`; known kinds are "
                         f"{sorted(_KINDS)}.")
    cls = _KINDS[kind]
    try:
        return cls(**args)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`{where}` does not describe a valid {cls.__name__} layer "
                         f"({spec!r}): {exc}") from None


def _positive_int(n, name, owner):
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"`{name}` of {owner} must be a positive integer; got {name}={n!r}.")
    return int(n)
