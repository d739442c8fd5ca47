"""nodekit's warning classes, so that users can filter them or turn them into
errors (``warnings.simplefilter("error", nk.AdjointDriftWarning)``)."""


class NodekitWarning(UserWarning):
    """Base class of every warning nodekit emits."""


class AccuracyWarning(NodekitWarning):
    """A result is likely much less accurate than the tolerances ask."""


class AdjointDriftWarning(AccuracyWarning):
    """The continuous adjoint's backwards integration of ``y`` drifted from the
    forward solution (chaotic or dissipative problem): its gradient is
    unreliable; ``gradient="interpolated"`` or ``"discrete"`` are not affected."""


class UntracedFunctionWarning(NodekitWarning):
    """A Python right-hand side returned values that autograd cannot follow
    (plain NumPy inside), so its derivatives read as zero."""


class StiffnessWarning(NodekitWarning):
    """An explicit method's stiffness test fired: the step size is held at the
    method's stability boundary, not by accuracy, so a stiff method (``rodas5``,
    ``kvaerno5``) would take far fewer steps."""
