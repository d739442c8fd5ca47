"""Ctrl-C inside compiled loops.

A compiled loop holds no Python frame, so Python's ``KeyboardInterrupt``
only fires when the loop returns, which for a long solve can be many seconds
later (and then inside Numba's return path, as a ``SystemError``).  nodekit
therefore chains a small native handler in front of the process's
``SIGINT`` handler.  While a compiled solve runs (between :func:`arm` and
:func:`disarm`) the handler only sets a process-wide flag; at any other time
it calls the handler it replaced (Python's own, which raises
``KeyboardInterrupt`` as usual).  Every compiled loop reads the flag once per
step through :func:`interrupted` (one memory load) and, when it is set,
stops with status :data:`INTERRUPTED`; :func:`disarm` then raises
``KeyboardInterrupt`` in the caller.

The flag and the saved handler live in memory owned by this module and are
registered with LLVM under fixed symbol names, so compiled code refers to
them by name and stays cacheable across processes.  The handler is installed
on the first compiled solve, on Linux, and only when ``SIGINT`` is handled by
a function (Python's default or a user's): an ignored or default ``SIGINT``
is left alone.  A later ``signal.signal(SIGINT, ...)`` replaces the chained
handler; compiled solves are then interruptible only between calls again.
"""
import ctypes
import signal
import sys
import threading

import llvmlite.binding as llvm
import numba as nb
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

#: Status of a loop stopped by Ctrl-C (``SIGINT``).
INTERRUPTED = -5

_FLAG = ctypes.c_int64(0)      # SIGINT arrived during a compiled solve
_ARMED = ctypes.c_int64(0)     # number of compiled solves running
_PREVIOUS = ctypes.c_void_p(0)
_FLAG_SYMBOL = "nodekit_interrupt_flag"
_ARMED_SYMBOL = "nodekit_interrupt_armed"
_PREVIOUS_SYMBOL = "nodekit_previous_sigint_handler"
llvm.add_symbol(_FLAG_SYMBOL, ctypes.addressof(_FLAG))
llvm.add_symbol(_ARMED_SYMBOL, ctypes.addressof(_ARMED))
llvm.add_symbol(_PREVIOUS_SYMBOL, ctypes.addressof(_PREVIOUS))
_LOCK = threading.Lock()

_I64 = ir.IntType(64)


def _global(builder, name):
    """The external 64-bit global ``name`` declared in the current module."""
    gv = builder.module.globals.get(name)
    if gv is None:
        gv = ir.GlobalVariable(builder.module, _I64, name)
        gv.linkage = "external"
    return gv


@intrinsic
def interrupted(typingctx):
    """Nonzero once ``SIGINT`` arrived since the solve started (compiled code only)."""
    def codegen(context, builder, sig, args):
        return builder.load_atomic(_global(builder, _FLAG_SYMBOL), "monotonic", 8)
    return types.int64(), codegen


def never():
    """:func:`interrupted` for the interpreted loops, which Python interrupts itself."""
    return 0


@intrinsic
def _flag_or_chain(typingctx, signum):
    """During a compiled solve set the flag; otherwise call the saved handler."""
    def codegen(context, builder, sig, args):
        zero = ir.Constant(_I64, 0)
        armed = builder.load_atomic(_global(builder, _ARMED_SYMBOL), "monotonic", 8)
        with builder.if_else(builder.icmp_signed(">", armed, zero)) as (solving, idle):
            with solving:
                builder.store_atomic(ir.Constant(_I64, 1), _global(builder, _FLAG_SYMBOL),
                                     "monotonic", 8)
            with idle:
                address = builder.load_atomic(_global(builder, _PREVIOUS_SYMBOL),
                                              "monotonic", 8)
                # 0 and 1 are SIG_DFL and SIG_IGN, never saved behind this handler
                with builder.if_then(builder.icmp_unsigned(">", address,
                                                           ir.Constant(_I64, 1))):
                    fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(32)])
                    builder.call(builder.inttoptr(address, fnty.as_pointer()), [args[0]])
        return context.get_dummy_value()
    return types.void(signum), codegen


def _on_sigint(signum):  # pragma: no cover - compiled, runs in a signal handler
    _flag_or_chain(signum)


# Linux's struct sigaction: the handler (8 bytes), the mask (128), the flags
# (int) at offset 136, then the restorer; copied whole so that flags, mask and
# restorer stay exactly those Python installed.
_SIGACTION_SIZE = 256
_FLAGS_OFFSET = 136
_SA_SIGINFO = 4
_STATE = {"installed": None, "handler": None}


def _install():
    """Chain the native handler in front of the current ``SIGINT`` handler;
    ``True`` when it is installed."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        old = ctypes.create_string_buffer(_SIGACTION_SIZE)
        if libc.sigaction(signal.SIGINT, None, old) != 0:
            return False
        previous = ctypes.c_void_p.from_buffer(old, 0).value or 0
        flags = ctypes.c_int.from_buffer(old, _FLAGS_OFFSET).value
        if previous <= 1 or flags & _SA_SIGINFO:
            return False  # SIGINT ignored or default, or a handler we cannot chain
        handler = nb.cfunc(types.void(types.int32), cache=True)(_on_sigint)
        if previous == handler.address:
            return True
        _PREVIOUS.value = previous
        new = ctypes.create_string_buffer(old.raw, _SIGACTION_SIZE)
        ctypes.c_void_p.from_buffer(new, 0).value = handler.address
        if libc.sigaction(signal.SIGINT, new, None) != 0:
            return False
        _STATE["handler"] = handler  # keep the compiled handler alive
        return True
    except (OSError, AttributeError, RuntimeError):  # pragma: no cover - exotic libc
        return False


def arm():
    """Before a compiled solve: install the handler (once), and from now on
    until :func:`disarm` let ``SIGINT`` only set the flag the loops read."""
    if _STATE["installed"] is None:
        _STATE["installed"] = _install()
    with _LOCK:
        if _ARMED.value == 0:
            _FLAG.value = 0
        _ARMED.value += 1


def disarm():
    """After a compiled solve (also when it raised): ``SIGINT`` reaches Python
    again, and ``KeyboardInterrupt`` is raised if one arrived meanwhile."""
    with _LOCK:
        _ARMED.value -= 1
        hit = _FLAG.value != 0
        if _ARMED.value == 0:
            _FLAG.value = 0
    if hit:
        raise KeyboardInterrupt("nodekit: the compiled solve was interrupted (SIGINT)")


class _Armed:
    """The context manager :func:`armed` returns: a class rather than a
    generator context, which costs more than a short compiled call."""

    __slots__ = ("compiled",)

    def __init__(self, compiled):
        self.compiled = compiled

    def __enter__(self):
        if self.compiled:
            arm()

    def __exit__(self, *exc_info):
        if self.compiled:
            disarm()
        return False


_ARMED_CONTEXT = {True: _Armed(True), False: _Armed(False)}


def armed(compiled=True):
    """``arm()`` ... ``disarm()`` around a compiled call (no-op when not ``compiled``)."""
    return _ARMED_CONTEXT[bool(compiled)]
