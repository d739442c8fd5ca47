"""Compiled dynamics of a continuous normalizing flow: ``f`` and the trace of ``df/dz``.

A continuous normalizing flow (CNF) integrates the augmented state
``[z, l]`` of every sample, where ``dz/dt = f(t, z)`` and
``dl/dt = -tr(df/dz)`` (the instantaneous change of variables: ``l`` is the
change of ``log p(z(t))``).  This module generates, for a dynamics ``f``, the
Numba kernels of that augmented right-hand side and of its vector-Jacobian
product, which contains second derivatives of the network (the state and
parameter gradients of the trace).  Everything is analytic: no finite
differences, no autograd tape per step.

Two trace modes:

* ``'exact'``: ``tr(df/dz) = sum_i (J e_i)_i``, from ``d`` forward-mode
  tangents (the columns of the Jacobian ``J``) carried through the network
  beside the values;
* ``'hutchinson'``: ``eps^T J eps`` for one noise vector ``eps`` per sample
  (one tangent), whose expectation over ``eps`` with identity covariance is
  the trace (Hutchinson 1990; FFJORD, Grathwohl et al. 2019).  The noise is
  not part of the state: it is appended to the parameter vector,
  ``theta_aug = [theta, eps.ravel()]``, so that it is held fixed through a
  solve and its backward pass.  The VJP returns the (exact) cotangent of
  ``eps`` too.

The VJP is reverse mode over that forward pass: the cotangent ``g`` of every
activation and ``G`` of every tangent are carried back; through an
elementwise map ``y = phi(x)`` with tangent ``T_y = phi'(x) T_x``,
``g_x = phi'(x) g_y + phi''(x) sum_p T_x[p] G_y[p]`` and
``G_x = phi'(x) G_y``; through an affine map the tangents transform with the
weights only, so ``dW += x g^T + T_x G^T``.

State layout: a batch of ``n`` samples is the flat vector of the ``(n, d + 1)``
array whose rows are ``[z_1, ..., z_d, l]``.

References
----------
.. [1] R. T. Q. Chen, Y. Rubanova, J. Bettencourt, D. Duvenaud, "Neural
   Ordinary Differential Equations", NeurIPS 2018, section 4.
.. [2] W. Grathwohl, R. T. Q. Chen, J. Bettencourt, I. Sutskever, D. Duvenaud,
   "FFJORD: Free-form Continuous Dynamics for Scalable Reversible Generative
   Models", ICLR 2019.
.. [3] M. F. Hutchinson, "A stochastic estimator of the trace of the influence
   matrix for Laplacian smoothing splines", 1990.
"""
from ..ode import ODE
from . import codegen
from .layers import ELU, Dense, Power, ReLU, Sigmoid, Sin, Softplus, Tanh

#: The two ways of computing ``tr(df/dz)``.
TRACES = ("exact", "hutchinson")

#: Bump whenever the generated source changes.
GENERATOR_VERSION = 1

_MODULES = {}


def check_trace(trace):
    """``trace`` if it is one of :data:`TRACES`, else a ValueError."""
    if trace not in TRACES:
        raise ValueError(f"Unknown `trace` {trace!r}; valid values are {list(TRACES)} "
                         "('exact' for small dimensions, 'hutchinson' for an unbiased "
                         "one-sample estimate).")
    return trace


def load_module(kind, payload, make_source):
    """Import the generated module described by ``payload`` (writing it if needed).

    Uses the project's generated-code cache (``$NODEKIT_CACHE/<kind>``).
    """
    try:
        from .. import _codecache
    except ImportError:   # before the shared code cache: the nn cache folder
        _codecache = None
    if _codecache is not None:
        return _codecache.load_or_write(kind, _codecache.make_key(payload), make_source)
    import hashlib
    import json
    key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]
    if key not in _MODULES:
        _MODULES[key] = _load_fallback(f"nodekit_{kind}_{key}", make_source())
    return _MODULES[key]


def _load_fallback(name, source):
    import importlib.util
    import os
    import sys
    import tempfile
    folder = codegen.cache_dir()
    path = os.path.join(folder, name + ".py")
    current = None
    if os.path.exists(path):
        with open(path) as fh:
            current = fh.read()
    if current != source:
        fd, tmp = tempfile.mkstemp(prefix=name, suffix=".tmp", dir=folder)
        with os.fdopen(fd, "w") as fh:
            fh.write(source)
        os.replace(tmp, path)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------
# First and second derivatives of the elementwise maps, as Numba expressions
# in ``x`` (input) and ``fx`` (output).


def derivatives(layer):
    """``(phi', phi'')`` of an elementwise layer as Numba expressions in ``x``, ``fx``.

    Raises
    ------
    TypeError
        For a layer whose second derivative is not known here.
    """
    if isinstance(layer, Tanh):
        return "1.0 - fx * fx", "-2.0 * fx * (1.0 - fx * fx)"
    if isinstance(layer, Sigmoid):
        return "fx * (1.0 - fx)", "fx * (1.0 - fx) * (1.0 - 2.0 * fx)"
    if isinstance(layer, Softplus):
        sig = "(0.5 + 0.5 * _tanh(0.5 * x))"
        return sig, f"{sig} * (1.0 - {sig})"
    if isinstance(layer, ReLU):
        return "1.0 if x > 0.0 else 0.0", "0.0"
    if isinstance(layer, ELU):
        return f"1.0 if x > 0.0 else fx + {layer.alpha!r}", f"0.0 if x > 0.0 else fx + {layer.alpha!r}"
    if isinstance(layer, Sin):
        return "math.cos(x)", "-fx"
    if isinstance(layer, Power):
        p = layer.p
        d1 = "0.0" if p == 0 else f"{p!r} * {layer._pow('x', p - 1)}"
        d2 = "0.0" if p in (0.0, 1.0) else f"{p * (p - 1)!r} * {layer._pow('x', p - 2)}"
        return d1, d2
    raise TypeError(f"The CNF trace kernels do not know the second derivative of "
                    f"{layer!r}; supported layers are Dense, TimeDense, Tanh, Sigmoid, "
                    "Softplus, ReLU, ELU, Sin and Power.")


def _header(title, fastmath):
    return [
        f"# Generated by nodekit.nn.trace (generator version {GENERATOR_VERSION}); do not edit.",
        f"# {title}",
        "import math",
        "",
        "import numba",
        "import numpy as np",
        "",
        f"_OPTS = dict(cache=True, error_model='numpy', fastmath=set({sorted(fastmath)!r}))",
        "",
        codegen.TANH_SOURCE,
        "",
    ]


def _entry_points():
    return [
        "",
        "@numba.njit(cache=True)",
        "def cnf_rhs(t, y, theta, out):",
        "    _rhs_rows(t, y, theta, out)",
        "",
        "",
        "@numba.njit(cache=True)",
        "def cnf_vjp(t, y, theta, a, out_y, out_theta):",
        "    return _vjp_rows(t, y, theta, a, out_y, out_theta)",
        "",
    ]


def _indent(lines, n):
    pad = " " * n
    return [pad + line for line in lines]


# ----------------------------------------------------------------------------
# Sequential models


class _Plan:
    """Offsets of every layer's value and tangent block in the scratch buffer."""

    def __init__(self, model, n_tan):
        w = model.widths
        self.P = n_tan
        self.val, self.tan = [], []
        off = 0
        for width in w:
            self.val.append(off)
            off += width
            self.tan.append(off)
            off += width * n_tan
        gmax = max(w)
        self.g = (off, off + gmax)
        off += 2 * gmax
        self.G = (off, off + gmax * n_tan)
        off += 2 * gmax * n_tan
        self.n_forward = self.g[0]
        self.size = off


def _dense_forward(layer, k, plan, params):
    ni, no, P = layer.n_in, layer.n_out, plan.P
    w, b = params
    wt = w + ni * no
    zi, zo, ti, to = plan.val[k], plan.val[k + 1], plan.tan[k], plan.tan[k + 1]
    lines = [f"for j in range({no}):",
             f"    s[{zo} + j] = theta[{b} + j]" + (f" + t * theta[{wt} + j]"
                                                    if layer.has_time else "")]
    lines += [f"for j in range({no * P}):",
              f"    s[{to} + j] = 0.0",
              f"for i in range({ni}):",
              f"    zi = s[{zi} + i]",
              f"    for j in range({no}):",
              f"        wij = theta[{w} + i * {no} + j]",
              f"        s[{zo} + j] += zi * wij"]
    lines += [f"        s[{to} + j * {P} + {p}] += wij * s[{ti} + i * {P} + {p}]"
              for p in range(P)]
    return lines


def _dense_backward(layer, k, plan, params, gi, go, Gi, Go):
    ni, no, P = layer.n_in, layer.n_out, plan.P
    w, b = params
    wt = w + ni * no
    zi, ti = plan.val[k], plan.tan[k]
    lines = [f"for j in range({no}):",
             f"    out_theta[{b} + j] += s[{go} + j]"]
    if layer.has_time:
        lines += [f"for j in range({no}):",
                  f"    gj = s[{go} + j]",
                  f"    out_theta[{wt} + j] += t * gj",
                  f"    dt += theta[{wt} + j] * gj"]
    lines += [f"for i in range({ni}):",
              f"    zi = s[{zi} + i]"]
    lines += [f"    ti{p} = s[{ti} + i * {P} + {p}]" for p in range(P)]
    lines += ["    acc = 0.0"]
    lines += [f"    acc{p} = 0.0" for p in range(P)]
    lines += [f"    for j in range({no}):",
              f"        wij = theta[{w} + i * {no} + j]",
              f"        gj = s[{go} + j]",
              "        acc += wij * gj"]
    upd = " + ".join(f"ti{p} * s[{Go} + j * {P} + {p}]" for p in range(P))
    lines += [f"        out_theta[{w} + i * {no} + j] += zi * gj + {upd}"]
    lines += [f"        acc{p} += wij * s[{Go} + j * {P} + {p}]" for p in range(P)]
    lines += [f"    s[{gi} + i] = acc"]
    lines += [f"    s[{Gi} + i * {P} + {p}] = acc{p}" for p in range(P)]
    return lines


def _elementwise_forward(layer, k, plan):
    n, P = plan_width(plan, k), plan.P
    d1, _ = derivatives(layer)
    zi, zo, ti, to = plan.val[k], plan.val[k + 1], plan.tan[k], plan.tan[k + 1]
    lines = [f"for i in range({n}):",
             f"    x = s[{zi} + i]",
             f"    fx = {layer.expr}",
             f"    s[{zo} + i] = fx",
             f"    d1 = {d1}"]
    lines += [f"    s[{to} + i * {P} + {p}] = d1 * s[{ti} + i * {P} + {p}]" for p in range(P)]
    return lines


def _elementwise_backward(layer, k, plan, gi, go, Gi, Go):
    n, P = plan_width(plan, k), plan.P
    d1, d2 = derivatives(layer)
    zi, zo, ti = plan.val[k], plan.val[k + 1], plan.tan[k]
    cross = " + ".join(f"s[{ti} + i * {P} + {p}] * s[{Go} + i * {P} + {p}]" for p in range(P))
    lines = [f"for i in range({n}):",
             f"    x = s[{zi} + i]",
             f"    fx = s[{zo} + i]",
             f"    d1 = {d1}",
             f"    d2 = {d2}",
             f"    s[{gi} + i] = d1 * s[{go} + i] + d2 * ({cross})"]
    lines += [f"    s[{Gi} + i * {P} + {p}] = d1 * s[{Go} + i * {P} + {p}]" for p in range(P)]
    return lines


def plan_width(plan, k):
    """Width of the input of layer ``k`` (from the offsets of the plan)."""
    return (plan.tan[k] - plan.val[k])


def sequential_source(model, trace):
    """Source of the augmented CNF kernels ``cnf_rhs`` and ``cnf_vjp`` of a Sequential."""
    check_trace(trace)
    d = model.dim
    hutch = trace == "hutchinson"
    P = 1 if hutch else d
    plan = _Plan(model, P)
    L = len(model.layers)
    params = [[off for _, off, _ in model.layout[k]] for k in range(L)]
    npar = model.n_params
    forward, backward = [], []
    for k, layer in enumerate(model.layers):
        forward.append(f"# layer {k}: {layer!r}")
        if isinstance(layer, Dense):
            forward += _dense_forward(layer, k, plan, params[k])
        else:
            forward += _elementwise_forward(layer, k, plan)
    g, G = plan.g, plan.G
    for j, k in enumerate(reversed(range(L))):
        go, gi = g[j % 2], g[(j + 1) % 2]
        Go, Gi = G[j % 2], G[(j + 1) % 2]
        layer = model.layers[k]
        backward.append(f"# layer {k}: {layer!r}")
        if isinstance(layer, Dense):
            backward += _dense_backward(layer, k, plan, params[k], gi, go, Gi, Go)
        else:
            backward += _elementwise_backward(layer, k, plan, gi, go, Gi, Go)
    g0, G0 = g[L % 2], G[L % 2]            # cotangents of the input
    gL, GL = g[0], G[0]                    # seeds at the output
    zL, tL = plan.val[L], plan.tan[L]
    t0 = plan.tan[0]
    # tangent seeds: identity columns (exact) or the sample's noise (hutchinson)
    if hutch:
        seed = [f"for i in range({d}):",
                f"    s[{t0} + i] = theta[{npar} + r * {d} + i]"]
        trace_expr = ["tr = 0.0",
                      f"for i in range({d}):",
                      f"    tr += theta[{npar} + r * {d} + i] * s[{tL} + i]"]
        cot_seed = [f"for i in range({d}):",
                    f"    s[{GL} + i] = ct * theta[{npar} + r * {d} + i]"]
        noise_grad = [f"for i in range({d}):",
                      f"    out_theta[{npar} + r * {d} + i] = ct * s[{tL} + i] + s[{G0} + i]"]
    else:
        seed = [f"for i in range({d * d}):",
                f"    s[{t0} + i] = 0.0",
                f"for i in range({d}):",
                f"    s[{t0} + i * {d + 1}] = 1.0"]
        trace_expr = ["tr = 0.0",
                      f"for i in range({d}):",
                      f"    tr += s[{tL} + i * {d + 1}]"]
        cot_seed = [f"for i in range({d * d}):",
                    f"    s[{GL} + i] = 0.0",
                    f"for i in range({d}):",
                    f"    s[{GL} + i * {d + 1}] = ct"]
        noise_grad = []
    row_in = [f"base = r * {d + 1}",
              f"for i in range({d}):",
              "    s[i] = y[base + i]",
              *seed,
              *forward]
    src = _header(f"CNF of {model!r}, trace={trace!r}; state rows [z ({d}), l]; "
                  f"{npar} parameters" + (" + noise (n x d)" if hutch else ""),
                  codegen.FASTMATH)
    src += [
        "@numba.njit(**_OPTS)",
        "def _rhs_rows(t, y, theta, out):",
        f"    s = np.empty({plan.n_forward})",
        f"    for r in range(y.size // {d + 1}):",
        *_indent(row_in, 8),
        *_indent(trace_expr, 8),
        f"        for i in range({d}):",
        f"            out[base + i] = s[{zL} + i]",
        f"        out[base + {d}] = -tr",
        "",
        "",
        "@numba.njit(**_OPTS)",
        "def _vjp_rows(t, y, theta, a, out_y, out_theta):",
        f"    s = np.empty({plan.size})",
        "    for k in range(out_theta.size):",
        "        out_theta[k] = 0.0",
        "    dt = 0.0",
        f"    for r in range(y.size // {d + 1}):",
        *_indent(row_in, 8),
        f"        ct = -a[base + {d}]",
        f"        for i in range({d}):",
        f"            s[{gL} + i] = a[base + i]",
        *_indent(cot_seed, 8),
        *_indent(backward, 8),
        f"        for i in range({d}):",
        f"            out_y[base + i] = s[{g0} + i]",
        f"        out_y[base + {d}] = 0.0",
        *_indent(noise_grad, 8),
        "    return dt",
        "",
    ]
    src += _entry_points()
    return "\n".join(src)


def cnf_ode(dynamics, trace="exact"):
    """The augmented CNF dynamics of ``dynamics`` as an ``nk.ODE``.

    Parameters
    ----------
    dynamics : nodekit.nn.Sequential or nodekit.nn.hyper.PlanarHyper
        The network ``f(t, z; theta)``.
    trace : {'exact', 'hutchinson'}

    Returns
    -------
    nk.ODE
        ``rhs`` and ``vjp`` kernels of ``[z, l]' = [f, -tr(df/dz)]`` acting on
        the flat ``(n, d + 1)`` state, with parameters ``theta`` (exact) or
        ``[theta, eps.ravel()]`` (Hutchinson).
    """
    check_trace(trace)
    from .hyper import PlanarHyper
    from .model import Sequential
    if isinstance(dynamics, PlanarHyper):
        make = lambda: dynamics.trace_source(trace)
    elif isinstance(dynamics, Sequential):
        for layer in dynamics.layers:
            if not isinstance(layer, Dense):
                derivatives(layer)   # raises for an unsupported layer
        make = lambda: sequential_source(dynamics, trace)
    else:
        raise TypeError(f"`dynamics` must be an nk.nn Sequential model or a PlanarHyper; "
                        f"got {type(dynamics).__name__} {dynamics!r}.")
    payload = {"generator": "nodekit.nn.trace", "version": GENERATOR_VERSION,
               "trace": trace, "model": dynamics.spec()}
    module = load_module("cnf", payload, make)
    return ODE(module.cnf_rhs, module.cnf_vjp, name=f"CNF[{dynamics!r}, {trace}]")
