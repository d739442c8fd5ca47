"""Kernel source for a :class:`~nodekit.nn.Sequential` model, written to a cache
folder and imported, so that Numba caches the compiled kernels across processes.

``nk.ODE`` compiles ``numba.cfunc(sig, cache=True)(kernel.py_func)``: the
kernels must be module-level functions of a real file, with the architecture
baked into their source (sizes and parameter offsets as literals, so loops
have constant trip counts).  One module per architecture, named by a hash of
the architecture and :data:`GENERATOR_VERSION`.

The modules live in the generated-code cache (:mod:`nodekit._codecache`):
``$NODEKIT_CACHE/nn`` if ``NODEKIT_CACHE`` is set, else ``~/.cache/nodekit/nn``;
if that cannot be written, a private folder in the system's temporary
directory.  A cached file is used only if it equals the generated source.
Delete the folder to force regeneration.
"""
from pathlib import Path

from .. import _codecache
from ..ode import ODE
from . import fastmath
from .layers import Dense, Elementwise

#: Bump whenever the generated source changes for the same architecture.
GENERATOR_VERSION = 13

#: The generated-code cache's name for this generator (folder and module prefix).
KIND = "nn"

#: LLVM fast-math flags of the row loops: reassociation lets reductions and
#: the elementwise maps vectorise; no 'nnan'/'ninf', so non-finite values
#: still reach the solver's checks.
FASTMATH = {"arcp", "contract", "nsz", "reassoc"}

#: ``_tanh`` and ``_expm1`` from arithmetic only (:mod:`nodekit.nn.fastmath`,
#: whose text is pasted into every generated module).
MATH_SOURCE = Path(fastmath.__file__).read_text()

#: Flags of every generated kernel besides ``fastmath`` (source text): each flag
#: a caller could otherwise hand down is explicit (see :mod:`nodekit._jitflags`).
_FLAGS = "cache=True, _nrt=True, error_model='numpy'"


class _Slot:
    """Where one layer reads and writes inside the scratch buffer."""

    def __init__(self, n_in, n_out, zi, zo, params):
        self.n_in, self.n_out = n_in, n_out
        self.zi, self.zo = zi, zo          # forward input/output offsets
        self.gi = self.go = None           # backward input/output cotangent offsets
        self.params = params               # offsets of the layer's parameters
        self.need_input_grad = True


class _Arrays:
    """The arrays one layer reads and writes in the batched kernels: names of
    2-D arrays (rows, width), each with a flat view named with ``_f``."""

    def __init__(self, n_in, n_out, k, params):
        self.n_in, self.n_out = n_in, n_out
        self.zi, self.zo = f"z{k}", f"z{k + 1}"      # forward input/output
        self.gi, self.go = f"g{k}", f"g{k + 1}"      # backward input/output cotangents
        self.params = params
        self.need_input_grad = True


#: Batches of at least this many rows run the batched kernels (a few matrix
#: products per layer, BLAS's ``dgemm``, and elementwise loops over whole
#: layers); smaller ones the row loops, which have no call overheads.
#: Measured on the latent-ODE dynamics 4-20-20-4 (ELU) and the spiral
#: dynamics 2-50-2 (tanh); see docs/nn.md.
BATCH_MIN_ROWS = 32

#: Serial networks get batched kernels only if they have an affine layer with
#: at least this many inputs and outputs (a hidden-to-hidden matrix): the
#: batched kernels double to triple the compile time of a network, and pay
#: off where a layer's matrix product is big enough for BLAS (docs/nn.md).
BATCH_MIN_WIDTH = 16

#: Rows per chunk of the parallel row loops, at most; a batch of at least
#: two such chunks is split over Numba's threads (``NUMBA_NUM_THREADS``, or
#: ``numba.set_num_threads``), into a multiple of :data:`CHUNK_MULTIPLE`
#: chunks.
CHUNK_ROWS = 128

#: The number of chunks is a multiple of this, so that 1, 2 or 4 threads
#: get equal shares (414 rows in 3 chunks gave 2 threads a 2:1 split).
CHUNK_MULTIPLE = 4


def n_chunks(rows):
    """The chunks a parallel kernel cuts ``rows`` rows into (0: one serial
    loop): ``CHUNK_MULTIPLE * ceil(rows / (CHUNK_MULTIPLE * CHUNK_ROWS))``
    chunks of at most ``CHUNK_ROWS`` rows, for at least two full chunks."""
    if rows < 2 * CHUNK_ROWS:
        return 0
    per = CHUNK_MULTIPLE * CHUNK_ROWS
    return CHUNK_MULTIPLE * ((rows + per - 1) // per)

#: Networks with fewer parameters keep serial kernels only: their rows are too
#: cheap to pay for handing chunks to threads, and a parallel kernel takes
#: several seconds longer to compile.
PARALLEL_MIN_PARAMS = 1000

#: Entry kernels of a serial network.  The first row is passed as
#: ``np.int64(0)``, not ``0``: Numba types a literal argument as
#: ``Literal[int](0)`` and compiles the row loops a second time for it, next
#: to the ``int64`` of the interpreted first call and of the chunks.
SERIAL_SOURCE = '''
@numba.njit(**_ENTRY)
def nn_rhs(t, y, theta, out):
    {rhs}(t, y, theta, out, np.int64(0), y.size // {d})


@numba.njit(**_ENTRY)
def nn_vjp(t, y, theta, a, out_y, out_theta):
    for k in range({p}):
        out_theta[k] = 0.0
    return {vjp}(t, y, theta, a, out_y, out_theta, np.int64(0), y.size // {d})
'''

#: Rows ``r0:r1`` by the row loops or the batched kernels, by their number.
RANGE_SOURCE = '''
@numba.njit(**_OPTS)
def _rhs_range(t, y, theta, out, r0, r1):
    if r1 - r0 < {batch_min}:
        _rhs_rows(t, y, theta, out, r0, r1)
    else:
        _rhs_batch(t, y, theta, out, r0, r1)


@numba.njit(**_OPTS)
def _vjp_range(t, y, theta, a, out_y, out_theta, r0, r1):
    if r1 - r0 < {batch_min}:
        return _vjp_rows(t, y, theta, a, out_y, out_theta, r0, r1)
    return _vjp_batch(t, y, theta, a, out_y, out_theta, r0, r1)
'''

#: Entry kernels of a parallel network: fewer than two chunks of rows run in
#: one loop; more are split into :func:`n_chunks` contiguous chunks, run by
#: ``prange`` on Numba's threads.  In the VJP each chunk sums
#: ``a . df/dtheta`` over its rows into its own row of ``partial`` and the
#: chunks are added in order.  The chunks depend on the number of rows only,
#: never on the number of threads, so results are the same bit for bit
#: whatever the thread count (and differ from one serial sum by round-off).
#: The thread count is not read inside (``numba.get_num_threads`` would keep
#: the kernels out of Numba's disk cache).
PARALLEL_SOURCE = '''
# Start Numba's thread pool now: a parallel kernel loaded from Numba's disk
# cache into a process whose pool has not started yet aborts it ("LLVM
# ERROR: Symbol not found: allocate_sched").
_launch_threads()


@numba.njit(parallel=True, **_OPTS)
def _rhs_par(t, y, theta, out, n_chunks):
    n = y.size // {d}
    for c in numba.prange(n_chunks):
        _rhs_rows(t, y, theta, out, c * n // n_chunks, (c + 1) * n // n_chunks)


@numba.njit(parallel=True, **_OPTS)
def _vjp_par(t, y, theta, a, out_y, partial, dts):
    n = y.size // {d}
    n_chunks = dts.size
    for c in numba.prange(n_chunks):
        row = partial[c]
        for k in range({p}):
            row[k] = 0.0
        dts[c] = _vjp_rows(t, y, theta, a, out_y, row, c * n // n_chunks,
                           (c + 1) * n // n_chunks)


@numba.njit(**_ENTRY)
def nn_rhs(t, y, theta, out):
    n = y.size // {d}
    if n < {chunk} * 2:
        _rhs_rows(t, y, theta, out, np.int64(0), n)
    else:
        _rhs_par(t, y, theta, out, {multiple} * ((n + {per} - 1) // {per}))


@numba.njit(**_ENTRY)
def nn_vjp(t, y, theta, a, out_y, out_theta):
    n = y.size // {d}
    for k in range({p}):
        out_theta[k] = 0.0
    if n < {chunk} * 2:
        return _vjp_rows(t, y, theta, a, out_y, out_theta, np.int64(0), n)
    n_chunks = {multiple} * ((n + {per} - 1) // {per})
    partial = np.empty((n_chunks, {p}))
    dts = np.empty(n_chunks)
    _vjp_par(t, y, theta, a, out_y, partial, dts)
    dt = 0.0
    for c in range(n_chunks):
        dt += dts[c]
        for k in range({p}):
            out_theta[k] += partial[c, k]
    return dt
'''


#: The exact Jacobian, for the stiff methods.  The rows of the state are
#: independent, so ``df/dy`` is block diagonal with (d, d) blocks, and one VJP
#: with the cotangent ``e_i`` in every row gives row ``i`` of every block:
#: ``d`` VJPs whatever the number of rows (a difference Jacobian would take
#: ``n`` evaluations and carry a ``sqrt(eps)`` error).
JAC_SOURCE = '''
@numba.njit(**_ENTRY)
def nn_jac(t, y, theta, out):
    n = y.size
    rows = n // {d}
    a = np.zeros(n)
    gy = np.empty(n)
    gth = np.empty({p})
    for i in range(n):
        for j in range(n):
            out[i, j] = 0.0
    for i in range({d}):
        for r in range(rows):
            a[r * {d} + i] = 1.0
        nn_vjp(t, y, theta, a, gy, gth)
        for r in range(rows):
            a[r * {d} + i] = 0.0
            for j in range({d}):
                out[r * {d} + i, r * {d} + j] = gy[r * {d} + j]
'''


def is_parallel(model):
    """Whether the kernels of ``model`` split large batches over threads."""
    return model.n_params >= PARALLEL_MIN_PARAMS


def is_batched(model):
    """Whether the kernels of ``model`` run batches of :data:`BATCH_MIN_ROWS`
    rows or more as matrix products (serial networks with a layer of at
    least :data:`BATCH_MIN_WIDTH` inputs and outputs)."""
    return not is_parallel(model) and any(
        isinstance(layer, Dense) and min(layer.n_in, layer.n_out) >= BATCH_MIN_WIDTH
        for layer in model.layers)


def _indent(lines, n):
    pad = " " * n
    return [pad + line for line in lines]


def _batch_source(model):
    """Source of ``_rhs_batch`` and ``_vjp_batch``: rows ``r0:r1`` all at once.

    Layer ``k`` maps ``z{k}`` (rows, widths[k]) to ``z{k+1}``; ``z0`` is a view
    of the rows of ``y``, the others views of one buffer allocated per call.
    Backwards, layer ``k`` maps the cotangent ``g{k+1}`` to ``g{k}``
    (``g{L}`` a view of ``a``; the others alternate between two halves of a
    second buffer).  The results are copied to ``out`` and ``out_y`` at the
    end, so these may alias the inputs as with the row loops.
    """
    widths, n_layers = model.widths, len(model.layers)
    d = widths[0]
    slots = [_Arrays(widths[k], widths[k + 1], k, [off for _, off, _ in model.layout[k]])
             for k in range(n_layers)]
    z_off = [0]
    for w in widths[1:]:
        z_off.append(z_off[-1] + w)
    views = [f"z0_f = y[r0 * {d}:r1 * {d}]", f"z0 = z0_f.reshape((n, {d}))"]
    views += [line for k, w in enumerate(widths[1:], 1) for line in (
        f"z{k}_f = buf[n * {z_off[k - 1]}:n * {z_off[k]}]",
        f"z{k} = z{k}_f.reshape((n, {w}))")]
    # an affine layer followed by an elementwise map: the map's loops also add
    # the bias (forward) and sum the bias gradient (backward)
    fused = {k for k in range(n_layers - 1) if isinstance(model.layers[k], Dense)
             and isinstance(model.layers[k + 1], Elementwise)}
    forward = []
    for k, layer in enumerate(model.layers):
        forward.append(f"# layer {k}: {layer!r}")
        if k in fused:
            forward += layer.forward_batch(slots[k], bias=False)
        elif k - 1 in fused:
            forward += layer.forward_batch_biased(
                slots[k], model.layers[k - 1].bias_batch(slots[k - 1]))
        else:
            forward += layer.forward_batch(slots[k])
    g_max = max(widths)
    gviews = [f"g{n_layers}_f = a[r0 * {d}:r1 * {d}]",
              f"g{n_layers} = g{n_layers}_f.reshape((n, {d}))"]
    for k in range(n_layers):
        half = (k % 2) * 1
        gviews += [f"g{k}_f = gbuf[n * {half * g_max}:n * {half * g_max + widths[k]}]",
                   f"g{k} = g{k}_f.reshape((n, {widths[k]}))"]
    backward = []
    for k in reversed(range(n_layers)):
        backward.append(f"# layer {k}: {model.layers[k]!r}")
        if k in fused:
            backward += model.layers[k].backward_batch(slots[k], summed=True)
        elif k - 1 in fused:
            backward += model.layers[k].backward_batch_summed(slots[k])
        else:
            backward += model.layers[k].backward_batch(slots[k])
    n_dw = max([widths[k] * widths[k + 1] for k, layer in enumerate(model.layers)
                if isinstance(layer, Dense)] + [1])
    head = ["    n = r1 - r0",
            f"    buf = np.empty(n * {z_off[-1]})",
            *_indent(views, 4)]
    return "\n".join([
        "@numba.njit(**_OPTS)",
        "def _rhs_batch(t, y, theta, out, r0, r1):",
        *head,
        *_indent(forward, 4),
        f"    for k in range(z{n_layers}_f.size):",
        f"        out[r0 * {d} + k] = z{n_layers}_f[k]",
        "",
        "",
        "@numba.njit(**_OPTS)",
        "def _vjp_batch(t, y, theta, a, out_y, out_theta, r0, r1):",
        "    # adds a . df/dtheta over rows r0:r1 to out_theta; returns a . df/dt",
        *head,
        *_indent(forward, 4),
        f"    gbuf = np.empty(n * {2 * g_max})",
        f"    dw = np.empty({n_dw})",
        f"    col = np.empty({g_max})",
        "    dt = 0.0",
        *_indent(gviews, 4),
        *_indent(backward, 4),
        "    for k in range(g0_f.size):",
        f"        out_y[r0 * {d} + k] = g0_f[k]",
        "    return dt",
    ])


def generate(model):
    """Python source of the ``nn_rhs``, ``nn_vjp`` and ``nn_jac`` kernels of ``model``."""
    batched = is_batched(model)
    widths = model.widths
    d, n_layers = widths[0], len(model.layers)
    z_off = [0]
    for w in widths:
        z_off.append(z_off[-1] + w)
    n_z = z_off[-1]
    g_max = max(widths)
    g_buf = (n_z, n_z + g_max)
    slots = []
    for k, layer in enumerate(model.layers):
        slots.append(_Slot(widths[k], widths[k + 1], z_off[k], z_off[k + 1],
                           [off for _, off, _ in model.layout[k]]))
    # backward: layer k reads its output cotangent from go, writes gi; ping-pong
    for j, k in enumerate(reversed(range(n_layers))):
        slots[k].go, slots[k].gi = g_buf[j % 2], g_buf[(j + 1) % 2]
    g_in_final = slots[0].gi if n_layers else g_buf[0]
    g_out_first = slots[-1].go if n_layers else g_buf[0]

    forward = []
    for k, layer in enumerate(model.layers):
        forward.append(f"# layer {k}: {layer!r}")
        forward += layer.forward(slots[k])
    backward = []
    for k in reversed(range(n_layers)):
        backward.append(f"# layer {k}: {model.layers[k]!r}")
        backward += model.layers[k].backward(slots[k])

    src = [
        f"# Generated by nodekit.nn (generator version {GENERATOR_VERSION}); do not edit.",
        f"# Model: {model!r}",
        (f"# State rows of width {d}; {model.n_params} parameters; scratch of "
         f"{n_z} (rhs) and {n_z + 2 * g_max} (vjp) floats per call."),
        "import math",
        "",
        "import numba",
        "import numpy as np",
        *(["from numba.np.ufunc.parallel import _launch_threads"] if is_parallel(model)
          else []),
        "",
        "# Row loops are compiled with these options (nk.ODE recompiles the entry",
        "# kernels from source with its own; they only forward here).  Every flag a",
        "# caller could hand down is set, so the code never depends on who called first.",
        "# No 'nnan'/'ninf': NaN and inf still propagate to the solver's checks.",
        f"_OPTS = dict({_FLAGS}, fastmath=set({sorted(FASTMATH)!r}))",
        f"_ENTRY = dict({_FLAGS}, fastmath=False)",
        "",
        MATH_SOURCE,
        "",
        "@numba.njit(**_OPTS)",
        "def _rhs_rows(t, y, theta, out, r0, r1):",
        f"    s = np.empty({n_z})",
        "    for r in range(r0, r1):",
        f"        base = r * {d}",
        f"        for i in range({d}):",
        "            s[i] = y[base + i]",
        *_indent(forward, 8),
        f"        for i in range({d}):",
        f"            out[base + i] = s[{z_off[n_layers]} + i]",
        "",
        "",
        "@numba.njit(**_OPTS)",
        "def _vjp_rows(t, y, theta, a, out_y, out_theta, r0, r1):",
        "    # adds a . df/dtheta over rows r0:r1 to out_theta; returns a . df/dt",
        f"    s = np.empty({n_z + 2 * g_max})",
        "    dt = 0.0",
        "    for r in range(r0, r1):",
        f"        base = r * {d}",
        f"        for i in range({d}):",
        "            s[i] = y[base + i]",
        *_indent(forward, 8),
        f"        for i in range({d}):",
        f"            s[{g_out_first} + i] = a[base + i]",
        *_indent(backward, 8),
        f"        for i in range({d}):",
        f"            out_y[base + i] = s[{g_in_final} + i]",
        "    return dt",
        "",
        "",
        *([_batch_source(model), "", RANGE_SOURCE.format(batch_min=BATCH_MIN_ROWS), ""]
          if batched else []),
        (PARALLEL_SOURCE if is_parallel(model) else SERIAL_SOURCE).format(
            d=d, p=model.n_params, chunk=CHUNK_ROWS, multiple=CHUNK_MULTIPLE,
            per=CHUNK_MULTIPLE * CHUNK_ROWS,
            rhs="_rhs_range" if batched else "_rhs_rows",
            vjp="_vjp_range" if batched else "_vjp_rows"),
        "",
        JAC_SOURCE.format(d=d, p=model.n_params),
        "",
        _callees_source(model, batched),
    ]
    return "\n".join(src)


#: Argument types of the row loops, as source text (``V``: a C-contiguous
#: float64 vector; see :func:`callees_source`).
_ROWS_TYPES = "(float64, V, V, V, int64, int64)"
_VJP_ROWS_TYPES = "(float64, V, V, V, V, V, int64, int64)"


def _callees_source(model, batched):
    """``_CALLEES`` of a network's module (see :func:`callees_source`)."""
    pairs = [("_rhs_rows", _ROWS_TYPES), ("_vjp_rows", _VJP_ROWS_TYPES)]
    if batched:
        pairs += [("_rhs_batch", _ROWS_TYPES), ("_vjp_batch", _VJP_ROWS_TYPES),
                  ("_rhs_range", _ROWS_TYPES), ("_vjp_range", _VJP_ROWS_TYPES)]
    if is_parallel(model):
        pairs += [("_rhs_par", "(float64, V, V, V, int64)"),
                  ("_vjp_par", "(float64, V, V, V, V, M, V)")]
    # (nn_jac's call of nn_vjp needs no entry: without fast-math flags, a
    # copy optimised again computes the same bits)
    return callees_source(pairs)


def callees_source(pairs):
    """Source of ``_CALLEES`` and of its compile at import: ``(function,
    argument types)`` of every compiled function with fast-math flags of a
    generated module that another compiled function calls, with the types it
    is called with (text over ``float64``, ``int64``, ``V`` =
    ``float64[::1]`` and ``M`` = ``float64[:, ::1]``), callees before their
    callers.

    The module compiles these, or loads them from Numba's cache, when it is
    imported, before any kernel that calls them can run.  A compiled caller
    carries its own copy of each function it calls, optimised again inside
    the caller; with the row loops' fast-math flags that copy can round
    differently from the function compiled on its own.  Numba's JIT links a
    call to a function already loaded in the process to that function, and
    loading the caller from the disk cache loads only the caller.  So
    without this, a process that compiled the kernels (every callee compiled
    on its own first) and one that loaded them from the cache (the callers'
    copies) computed results that differ in the last bits.  Loading the
    callees first makes every process run the same code, however the module
    is reached (a model, an unpickled ODE, an import).
    """
    return "\n".join([
        "# The compiled functions the kernels call, with the types they are called",
        "# with, callees first; compiled (or loaded from Numba's cache) now, before",
        "# any kernel that calls them (see nodekit.nn.codegen.callees_source).",
        "float64, int64 = numba.float64, numba.int64",
        "V, M = numba.float64[::1], numba.float64[:, ::1]",
        "_CALLEES = (",
        *[f"    ({name}, {types})," for name, types in pairs],
        ")",
        "for _fn, _types in _CALLEES:",
        "    _fn.compile(_types)",
    ])


def cache_dir():
    """The folder holding generated kernel modules (see :mod:`nodekit._codecache`)."""
    return _codecache.cache_folder(KIND)


def architecture_key(model):
    """Hash of the architecture and the generator version (names the module)."""
    return _codecache.make_key({"generator": "nodekit.nn", "version": GENERATOR_VERSION,
                                "model": model.spec()})


def load_kernels(model):
    """Import (generating if needed) the kernel module of ``model``."""
    return _codecache.load_or_write(KIND, architecture_key(model), generate(model))


class NetODE(ODE):
    """The ``nk.ODE`` of a :class:`~nodekit.nn.Sequential` model (its ``.ode``).

    Pickles by the model's spec: another process rebuilds the model and
    loads (or regenerates) its kernel module from its own cache.

    Attributes
    ----------
    spec : dict
        ``model.spec()`` of the model the kernels were generated for.
    n_theta : int
        The length of ``theta``.
    state_width : int
        The state is rows of this width (``y`` of shape (d,) or (B, d)).
    """

    def __init__(self, model):
        module = load_kernels(model)
        self.spec = model.spec()
        self._model = model
        super().__init__(module.nn_rhs, module.nn_vjp, module.nn_jac, name=repr(model))
        # theta has n_params entries; y holds rows of width dim (any number of rows)
        self.n_theta, self.state_width = model.n_params, model.dim

    def check_sizes(self, y0, theta):
        """``y0`` must have rows of the model's width, ``theta`` its parameters."""
        self._model.check_sizes(y0, theta)

    def __reduce__(self):
        return _ode_of_spec, (self.spec,)


def _ode_of_spec(spec):
    from .model import Sequential
    return Sequential.from_spec(spec).ode
