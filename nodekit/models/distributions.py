"""Base distributions of normalizing flows."""
import math

import autograd.numpy as anp
import numpy as np


class Normal:
    """A diagonal Gaussian ``N(mean, diag(std**2))`` in ``dim`` dimensions.

    Parameters
    ----------
    mean : float or array_like, shape (dim,), default 0.0
    std : float or array_like, shape (dim,), default 1.0
        Positive.
    dim : int, optional
        Needed when ``mean`` and ``std`` are scalars (the flows pass it).

    Examples
    --------
    >>> from nodekit.models import Normal
    >>> base = Normal(0.0, 1.0, dim=2)
    >>> round(float(base.log_prob([[0.0, 0.0]])[0]), 6)
    -1.837877
    """

    def __init__(self, mean=0.0, std=1.0, dim=None):
        mean = np.asarray(mean, dtype=np.float64)
        std = np.asarray(std, dtype=np.float64)
        if mean.ndim > 1 or std.ndim > 1:
            raise ValueError(f"`mean` and `std` must be scalars or 1-D; got shapes "
                             f"{mean.shape} and {std.shape}.")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
            raise ValueError(f"`mean` must be finite and `std` finite and positive; got "
                             f"mean={mean!r}, std={std!r}.")
        sizes = {s for s in (mean.size if mean.ndim else None, std.size if std.ndim else None,
                             dim) if s is not None}
        if len(sizes) > 1:
            raise ValueError(f"`mean`, `std` and `dim` disagree on the dimension: {sorted(sizes)}.")
        self.dim = sizes.pop() if sizes else None
        self.mean, self.std = mean, std

    def with_dim(self, dim):
        """This distribution in ``dim`` dimensions (a ValueError if it has another)."""
        if self.dim is not None and self.dim != dim:
            raise ValueError(f"`base` has dimension {self.dim}; the flow needs {dim}.")
        return Normal(self.mean, self.std, dim=dim)

    def _d(self):
        if self.dim is None:
            raise ValueError("This Normal has no dimension: pass `dim` or array `mean`/`std`.")
        return self.dim

    def log_prob(self, x):
        """Log density of the rows of ``x`` (shape (n, dim)): shape (n,), autograd-NumPy."""
        d = self._d()
        if np.ndim(x) == 1:
            x = anp.reshape(x, (1, -1))
        if np.shape(x)[-1] != d:
            raise ValueError(f"`x` must have rows of width {d}; got shape {np.shape(x)}.")
        u = (x - self.mean) / self.std
        const = -0.5 * d * math.log(2.0 * math.pi) - float(np.sum(np.log(self.std) * np.ones(d)))
        return const - 0.5 * anp.sum(u * u, axis=1)

    def sample(self, n, seed=None):
        """``n`` samples, shape (n, dim)."""
        d = self._d()
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        return self.mean + self.std * rng.standard_normal((int(n), d))

    def entropy(self):
        """Differential entropy (nats)."""
        d = self._d()
        return 0.5 * d * (1.0 + math.log(2.0 * math.pi)) + float(np.sum(np.log(self.std)
                                                                          * np.ones(d)))

    def __repr__(self):
        return f"Normal(mean={self.mean.tolist()!r}, std={self.std.tolist()!r}, dim={self.dim})"
