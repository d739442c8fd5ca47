"""Models of the paper's experiments, trainable with autograd on a CPU.

:mod:`nodekit.models.odenet`: the four classifiers of Table 1 (MLP, ResNet,
ODE-Net, RK-Net) for flat inputs such as the 8x8 digits.
"""
from .odenet import (MODELS, MLP, ODENet, ResNet, RKNet, Classifier, accuracy, build,
                     cross_entropy, mlp_hidden_for)

__all__ = ["MODELS", "MLP", "ODENet", "ResNet", "RKNet", "Classifier", "accuracy", "build",
           "cross_entropy", "mlp_hidden_for"]
