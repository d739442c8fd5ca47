"""Models of the paper's experiments, trainable with autograd on a CPU.

:mod:`nodekit.models.odenet`: the four classifiers of Table 1 (MLP, ResNet,
ODE-Net, RK-Net) for flat inputs such as the 8x8 digits.
"""
from .odenet import (
    MODELS,
    Classifier,
    MLPClassifier,
    ODENet,
    ResNet,
    RKNet,
    accuracy,
    build,
    cross_entropy,
    mlp_hidden_for,
)

__all__ = [
    "MODELS",
    "Classifier",
    "MLPClassifier",
    "ODENet",
    "RKNet",
    "ResNet",
    "accuracy",
    "build",
    "cross_entropy",
    "mlp_hidden_for",
]


def __getattr__(name):
    # the deprecated alias ``MLP`` (see nodekit.models.odenet)
    if name == "MLP":
        from . import odenet
        return odenet.__getattr__(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
