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
from .. import _codecache
from ..ode import ODE

#: Bump whenever the generated source changes for the same architecture.
GENERATOR_VERSION = 5

#: The generated-code cache's name for this generator (folder and module prefix).
KIND = "nn"

#: LLVM fast-math flags of the row loops: reassociation lets reductions and
#: the elementwise maps vectorise; no 'nnan'/'ninf', so non-finite values
#: still reach the solver's checks.
FASTMATH = {"arcp", "contract", "nsz", "reassoc"}

#: ``tanh`` from arithmetic only, so that loops over a layer vectorise (libm's
#: ``tanh`` is a scalar call, and the hot spot of a tanh network).  Cephes'
#: rational approximation for |x| < 0.625; else ``1 - 2/(exp(2|x|) + 1)`` with
#: Cephes' ``exp`` (Cody-Waite reduction, Pade form) and ``2**n`` by binary
#: powers.  Within 2 ulp of ``np.tanh`` (tested); NaN in, NaN out.
TANH_SOURCE = '''
@numba.njit(inline="always", error_model="numpy")
def _tanh(x):
    ax = abs(x)
    s = x * x
    p = (-9.64399179425052238628e-1 * s - 9.92877231001918586564e1) * s \\
        - 1.61468768441708447952e3
    q = ((s + 1.12811678491632931402e2) * s + 2.23548839060100448583e3) * s \\
        + 4.84406305325125486048e3
    small = x + x * s * (p / q)
    z = min(2.0 * ax, 40.0)
    n = np.floor(z * 1.4426950408889634073599 + 0.5)
    r = z - n * 6.93145751953125e-1 - n * 1.42860682030941723212e-6
    rr = r * r
    px = r * ((1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr
              + 9.99999999999999999910e-1)
    qx = ((3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr
          + 2.27265548208155028766e-1) * rr + 2.00000000000000000009e0
    e = 1.0 + 2.0 * px / (qx - px)
    m = n
    h = np.floor(m * 0.5)
    e *= 2.0 if m - 2.0 * h > 0.5 else 1.0
    m = h
    h = np.floor(m * 0.5)
    e *= 4.0 if m - 2.0 * h > 0.5 else 1.0
    m = h
    h = np.floor(m * 0.5)
    e *= 16.0 if m - 2.0 * h > 0.5 else 1.0
    m = h
    h = np.floor(m * 0.5)
    e *= 256.0 if m - 2.0 * h > 0.5 else 1.0
    m = h
    h = np.floor(m * 0.5)
    e *= 65536.0 if m - 2.0 * h > 0.5 else 1.0
    e *= 4294967296.0 if h > 0.5 else 1.0
    big = 1.0 - 2.0 / (e + 1.0)
    big = big if x >= 0.0 else -big
    return small if ax < 0.625 else big
'''


class _Slot:
    """Where one layer reads and writes inside the scratch buffer."""

    def __init__(self, n_in, n_out, zi, zo, params):
        self.n_in, self.n_out = n_in, n_out
        self.zi, self.zo = zi, zo          # forward input/output offsets
        self.gi = self.go = None           # backward input/output cotangent offsets
        self.params = params               # offsets of the layer's parameters
        self.need_input_grad = True


#: Rows per chunk of the parallel row loops; a batch of at least two chunks
#: is split over Numba's threads (``NUMBA_NUM_THREADS``, or
#: ``numba.set_num_threads``).
CHUNK_ROWS = 128

#: Networks with fewer parameters keep serial kernels only: their rows are too
#: cheap to pay for handing chunks to threads, and a parallel kernel takes
#: several seconds longer to compile.
PARALLEL_MIN_PARAMS = 1000

#: Entry kernels of a serial network.
SERIAL_SOURCE = '''
@numba.njit(cache=True)
def nn_rhs(t, y, theta, out):
    _rhs_rows(t, y, theta, out, 0, y.size // {d})


@numba.njit(cache=True)
def nn_vjp(t, y, theta, a, out_y, out_theta):
    for k in range({p}):
        out_theta[k] = 0.0
    return _vjp_rows(t, y, theta, a, out_y, out_theta, 0, y.size // {d})
'''

#: Entry kernels of a parallel network: fewer than two chunks of rows run in
#: one loop; more are split into ``rows // CHUNK_ROWS`` contiguous chunks, run
#: by ``prange`` on Numba's threads.  In the VJP each chunk sums
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


@numba.njit(cache=True)
def nn_rhs(t, y, theta, out):
    n = y.size // {d}
    if n < {chunk} * 2:
        _rhs_rows(t, y, theta, out, 0, n)
    else:
        _rhs_par(t, y, theta, out, n // {chunk})


@numba.njit(cache=True)
def nn_vjp(t, y, theta, a, out_y, out_theta):
    n = y.size // {d}
    for k in range({p}):
        out_theta[k] = 0.0
    if n < {chunk} * 2:
        return _vjp_rows(t, y, theta, a, out_y, out_theta, 0, n)
    n_chunks = n // {chunk}
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


def is_parallel(model):
    """Whether the kernels of ``model`` split large batches over threads."""
    return model.n_params >= PARALLEL_MIN_PARAMS


def _indent(lines, n):
    pad = " " * n
    return [pad + line for line in lines]


def generate(model):
    """Python source of the ``nn_rhs`` and ``nn_vjp`` kernels of ``model``."""
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
        "# Row loops are compiled with these options (nk.ODE recompiles the two",
        "# entry kernels from source with Numba's defaults; they only forward here).",
        "# No 'nnan'/'ninf': NaN and inf still propagate to the solver's checks.",
        f"_OPTS = dict(cache=True, error_model='numpy', fastmath=set({sorted(FASTMATH)!r}))",
        "",
        TANH_SOURCE,
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
        (PARALLEL_SOURCE if is_parallel(model) else SERIAL_SOURCE).format(
            d=d, p=model.n_params, chunk=CHUNK_ROWS),
        "",
    ]
    return "\n".join(src)


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
        super().__init__(module.nn_rhs, module.nn_vjp, name=repr(model))
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
