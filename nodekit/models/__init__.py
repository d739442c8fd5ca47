"""Models of the paper's experiments, trainable with autograd on a CPU.

:mod:`nodekit.models.odenet`: the four classifiers of Table 1 (MLP, ResNet,
ODE-Net, RK-Net) for flat inputs such as the 8x8 digits.

:mod:`nodekit.models.cnf`: continuous normalizing flows (:class:`CNF`), with
:class:`Normal` base distributions and the planar-flow baseline
(:class:`PlanarFlow`).
"""
from .cnf import CNF
from .distributions import Normal
from .odenet import (MODELS, MLP, ODENet, ResNet, RKNet, Classifier, accuracy, build,
                     cross_entropy, mlp_hidden_for)
from .planar import PlanarFlow

__all__ = ["MODELS", "MLP", "ODENet", "ResNet", "RKNet", "Classifier", "accuracy", "build",
           "cross_entropy", "mlp_hidden_for", "CNF", "Normal", "PlanarFlow"]
