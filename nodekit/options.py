"""The options of :func:`nodekit.solve` and :func:`nodekit.odeint`: each
default written once.

:class:`Options` is a frozen record of every option with its default;
:data:`DEFAULTS` is the record of the defaults.  The public entry points
spell their options out as keyword-only parameters whose defaults are read
from :data:`DEFAULTS` (so ``help()`` and editors show them), and pass the
record on; every other place that needs a default (ensembles, events,
checkpoints, the backward passes) reads it here too.

An unknown keyword is rejected by Python itself; :func:`explain_unknown`
turns that rejection into nodekit's message, which lists the valid options
and, for SciPy's names (``t_eval``, ``args``, ...), says what to use
instead.
"""
import functools
import math
from typing import NamedTuple

from . import _checks
from .controllers import PIController


class Options(NamedTuple):
    """Every option of :func:`nodekit.solve` and :func:`nodekit.odeint`, with
    its default (see those functions for what each means)."""

    method: object = "dopri5"
    rtol: object = 1e-6
    atol: object = 1e-9
    first_step: object = None      #: None: Hairer's starting-step rule
    max_step: float = math.inf
    max_steps: int = 100_000
    step_size: object = None       #: None: adaptive steps
    controller: object = None      #: None: :data:`DEFAULT_CONTROLLER`
    dense: bool = False            #: solve only
    events: object = None          #: solve only
    gradient: str = "adjoint"      #: odeint only, from here on
    adjoint_method: object = None  #: None: the forward `method`
    adjoint_rtol: object = None    #: None: the tightest forward rtol
    adjoint_atol: object = None    #: None: the tightest forward atol
    seminorm: bool = False
    checkpoints: object = None     #: None: at most ``_checkpoint.DEFAULT_CHECKPOINTS``
    stats: object = None


#: The defaults.
DEFAULTS = Options()
#: The step-size controller ``controller=None`` stands for (SciPy's).
DEFAULT_CONTROLLER = PIController()

#: The options of the forward solve, shared by ``solve`` and ``odeint``.
FORWARD = ("method", "rtol", "atol", "first_step", "max_step", "max_steps", "step_size",
           "controller")
#: The options of :func:`nodekit.solve`.
SOLVE = FORWARD + ("dense", "events")
#: The options of :func:`nodekit.odeint`.
ODEINT = FORWARD + ("gradient", "adjoint_method", "adjoint_rtol", "adjoint_atol",
                    "seminorm", "checkpoints", "stats")


#: The most entries a memo of checked options holds (see :func:`remember`).
MEMO_SIZE = 256


def remember(memo, key, value):
    """``memo[key] = value``, emptying ``memo`` first when it holds
    :data:`MEMO_SIZE` entries (the memos of checked options stay small
    whatever a program passes)."""
    if len(memo) >= MEMO_SIZE:
        memo.clear()
    memo[key] = value


def explain_unknown(names):
    """Decorate a public entry point whose options ``names`` are keyword-only
    parameters: Python's ``TypeError`` for an unknown keyword becomes
    nodekit's message (the valid options, and the nodekit equivalent of a
    SciPy option).

    Only the failing call pays: the wrapper adds one frame to a good call.
    The wrapped function keeps its name, docstring and signature
    (``inspect.signature`` and ``help()`` follow ``__wrapped__``).
    """
    def decorate(fn):
        code = fn.__code__
        params = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]

        @functools.wraps(fn)
        def entry(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except TypeError:
                message = _checks.options_message(
                    [k for k in kwargs if k not in params], names, fn.__name__)
                if message is None:
                    raise  # not an unknown keyword: the function's own error
            raise TypeError(message) from None

        return entry

    return decorate
