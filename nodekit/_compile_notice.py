"""One line on standard error when nodekit spends a while compiling.

The first run of a program that uses nodekit compiles its machine code (the
integration loop, the model's kernels) and stores it on disk; later runs load
it.  That first compile takes from seconds to a minute or more, with nothing
else to show for it, so nodekit says once what it is doing::

    nodekit: compiling kernels (first run only; cached afterwards) ...

The line is printed by a listener on Numba's ``numba:compile`` event, which
Numba fires only when it actually compiles (not when it loads from its disk
cache): a run whose code is cached never calls the listener and prints
nothing.  The line appears only after nodekit's compiles have taken
:data:`DELAY` seconds together (so a quick compile of one small kernel stays
silent), at most once per process.  Compiles of functions outside nodekit
(your own ``numba.njit`` code, unless called from nodekit's) are not counted.

Importing this module (``nodekit`` does) installs the listener.  Set the
environment variable ``NODEKIT_COMPILE_NOTICE=0`` before importing
nodekit to turn the line off, or call :func:`uninstall`.
"""
import os
import sys
import threading
import time

from numba.core import event

#: The line printed.
MESSAGE = "nodekit: compiling kernels (first run only; cached afterwards) ..."
#: Seconds of compiling after which the line is printed.
DELAY = 1.0
#: Environment variable that turns the line off when set to ``0``.
ENV = "NODEKIT_COMPILE_NOTICE"
#: Module prefixes of nodekit's compiled functions (the package and the
#: modules it generates, named ``nk_<kind>_<key>``).
PREFIXES = ("nodekit.", "nk_")


class CompileNotice(event.Listener):
    """A ``numba:compile`` listener that prints :data:`MESSAGE` once, when
    the compiles of nodekit's functions have taken ``delay`` seconds.

    Parameters
    ----------
    stream : file-like, optional
        Where to write; default ``sys.stderr`` at the time of printing.
    delay : float, default DELAY
        Seconds of compiling before the line is printed; 0 prints it when
        the first compile starts.
    prefixes : tuple of str, default PREFIXES
        Module-name prefixes of the functions whose compiles count.
    """

    def __init__(self, stream=None, delay=DELAY, prefixes=PREFIXES):
        self.stream, self.delay, self.prefixes = stream, float(delay), tuple(prefixes)
        self.shown = False
        self._depth = 0        # nesting of the compiles being counted
        self._spent = 0.0      # seconds of finished counted compiles
        self._started = 0.0
        self._timer = None
        self._lock = threading.Lock()

    def _ours(self, data):
        fn = getattr(data.get("dispatcher"), "py_func", None)
        return (getattr(fn, "__module__", None) or "").startswith(self.prefixes)

    def on_start(self, ev):
        if self.shown:
            return
        if self._depth:
            self._depth += 1
            return
        if not self._ours(ev.data):
            return
        self._depth = 1
        self._started = time.perf_counter()
        remaining = self.delay - self._spent
        if remaining <= 0:
            self.show()
        else:
            self._timer = threading.Timer(remaining, self.show)
            self._timer.daemon = True
            self._timer.start()

    def on_end(self, ev):
        if not self._depth:
            return
        self._depth -= 1
        if self._depth:
            return
        self._spent += time.perf_counter() - self._started
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def show(self):
        """Print :data:`MESSAGE` (once)."""
        with self._lock:
            if self.shown:
                return
            self.shown = True
        stream = self.stream if self.stream is not None else sys.stderr
        try:
            print(MESSAGE, file=stream, flush=True)
        except (OSError, ValueError):  # closed or broken stream: say nothing
            pass


_INSTALLED = []


def install(listener=None):
    """Register ``listener`` (default: a new :class:`CompileNotice`) on
    Numba's ``numba:compile`` event, unless ``NODEKIT_COMPILE_NOTICE=0`` or
    one is registered already.  Returns the listener registered, or None."""
    if os.environ.get(ENV, "").strip() == "0" or _INSTALLED:
        return None
    listener = listener if listener is not None else CompileNotice()
    event.register("numba:compile", listener)
    _INSTALLED.append(listener)
    return listener


def uninstall():
    """Remove the listener installed by :func:`install` (no more notice)."""
    while _INSTALLED:
        listener = _INSTALLED.pop()
        if listener._timer is not None:
            listener._timer.cancel()
        event.unregister("numba:compile", listener)


install()
