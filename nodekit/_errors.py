"""The exceptions of :func:`nodekit.odeint`."""


class SolveError(RuntimeError):
    """A solve inside :func:`nodekit.odeint` failed (see the message): the
    forward solve, or (as its subclass :class:`GradientError`) a backward one."""


class GradientError(SolveError):
    """A backward (gradient) pass of :func:`nodekit.odeint` failed."""
