"""Models of the paper's experiments, trainable with autograd on a CPU.

:mod:`nodekit.models.odenet`: the four classifiers of Table 1 (MLP, ResNet,
ODE-Net, RK-Net) for flat inputs such as the 8x8 digits.

:mod:`nodekit.models.cnf`: continuous normalizing flows (:class:`CNF`), with
:class:`Normal` base distributions and the planar-flow baseline
(:class:`PlanarFlow`).
"""
from .cnf import CNF
from .distributions import Normal
from .odenet import (MODELS, MLPClassifier, ODENet, ResNet, RKNet, Classifier, accuracy,
                     build, cross_entropy, mlp_hidden_for)
from .planar import PlanarFlow

__all__ = ["MODELS", "MLPClassifier", "ODENet", "ResNet", "RKNet", "Classifier", "accuracy",
           "build", "cross_entropy", "mlp_hidden_for", "CNF", "Normal", "PlanarFlow"]
from .latent import LatentODE, PoissonProcess, RNNBaseline

__all__ += ["LatentODE", "PoissonProcess", "RNNBaseline"]


def __getattr__(name):
    # the deprecated alias ``MLP`` (see nodekit.models.odenet)
    if name == "MLP":
        from . import odenet
        return odenet.__getattr__(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
