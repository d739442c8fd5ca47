"""2-D toy data sets (scikit-learn's generators, seeded, float64)."""
import numpy as np


def two_circles(n=512, noise=0.06, factor=0.5, seed=0):
    """Points on two concentric circles (torchdiffeq's CNF setting): (n, 2), labels (n,)."""
    from sklearn.datasets import make_circles
    x, y = make_circles(n_samples=n, noise=noise, factor=factor, random_state=seed)
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.int64)


def two_moons(n=512, noise=0.05, seed=0):
    """Points on two interleaved half circles: (n, 2), labels (n,)."""
    from sklearn.datasets import make_moons
    x, y = make_moons(n_samples=n, noise=noise, random_state=seed)
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.int64)
