"""Data sets for nodekit's experiments.

* :func:`load_digits`: scikit-learn's bundled 8x8 handwritten digits (1797
  images, the stand-in for MNIST on machines without a download), with a
  fixed, seeded, stratified train/test split, pixels scaled to [0, 1].
* :func:`load_idx` / :func:`load_mnist`: MNIST's IDX files (gzipped or raw),
  for users who have them.
* :func:`one_hot`, :func:`minibatches`: helpers for training loops.
* :func:`two_circles`, :func:`two_moons`: 2-D toy data (the CNF experiments).
* :mod:`toy2d`: 2-D samplers ``f(n, seed) -> (n, 2)`` by name
  (:data:`SAMPLERS`), :func:`eight_gaussians` with its exact log density,
  Rezende and Mohamed's potentials ``U1``-``U4``.

>>> from nodekit.datasets import load_digits
>>> d = load_digits(seed=0)
>>> d.x_train.shape[1], d.n_classes
(64, 10)
"""
from .digits import Dataset, load_digits, minibatches, one_hot, shift_images
from .idx import IDXError, load_idx, load_mnist, save_idx
from . import toy2d
from .toy import two_circles, two_moons
from .toy2d import (POTENTIALS, SAMPLERS, U1, U2, U3, U4, eight_gaussians,
                    eight_gaussians_log_prob)

__all__ = ["Dataset", "IDXError", "load_digits", "load_idx", "load_mnist", "minibatches",
           "one_hot", "save_idx", "shift_images", "two_circles", "two_moons",
           "POTENTIALS", "SAMPLERS", "U1", "U2", "U3", "U4", "eight_gaussians",
           "eight_gaussians_log_prob", "toy2d"]
from .spirals import Irregular, Spirals, spirals, subsample, union_batch

__all__ += ["Irregular", "Spirals", "spirals", "subsample", "union_batch"]
