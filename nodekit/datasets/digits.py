"""scikit-learn's bundled 8x8 digits with a fixed, seeded train/test split."""
import numpy as np


class Dataset:
    """A train/test split of a classification data set.

    Attributes
    ----------
    x_train, x_test : ndarray, float64, shape (n, features)
        Inputs (for images: flattened, scaled to [0, 1]).
    y_train, y_test : ndarray, int64, shape (n,)
        Class labels ``0 .. n_classes - 1``.
    n_classes : int
    image_shape : tuple
        Shape of one image before flattening (``(8, 8)`` for the digits).
    name : str
    """

    def __init__(self, x_train, y_train, x_test, y_test, n_classes, image_shape, name):
        self.x_train, self.y_train = x_train, y_train
        self.x_test, self.y_test = x_test, y_test
        self.n_classes = int(n_classes)
        self.image_shape = tuple(image_shape)
        self.name = name

    @property
    def n_features(self):
        return self.x_train.shape[1]

    def one_hot(self, split="train"):
        """One-hot labels of ``split`` ('train' or 'test'), float64 (n, n_classes)."""
        if split not in ("train", "test"):
            raise ValueError(f"`split` must be 'train' or 'test'; got {split!r}.")
        return one_hot(self.y_train if split == "train" else self.y_test, self.n_classes)

    def __repr__(self):
        return (f"Dataset({self.name!r}: {len(self.y_train)} train, {len(self.y_test)} test, "
                f"{self.n_features} features, {self.n_classes} classes)")


def one_hot(labels, n_classes=None):
    """One-hot encoding of integer ``labels``: float64 array (n, n_classes).

    Raises
    ------
    ValueError
        For non-integer, negative or out-of-range labels.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"`labels` must be 1-D; got shape {labels.shape}.")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        if not np.all(labels == np.round(labels)):
            raise ValueError("`labels` must be integers.")
        labels = labels.astype(np.int64)
    labels = labels.astype(np.int64)
    if n_classes is None:
        n_classes = int(labels.max()) + 1 if labels.size else 0
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"`labels` must lie in [0, {n_classes}); got range "
                         f"[{labels.min()}, {labels.max()}].")
    out = np.zeros((labels.size, n_classes))
    out[np.arange(labels.size), labels] = 1.0
    return out


def load_digits(seed=0, test_fraction=0.2):
    """The 1797 8x8 digits of ``sklearn.datasets.load_digits``, split in two.

    The split is stratified by class and depends only on ``seed``; pixels
    (0..16 in the source) are scaled to [0, 1] as float64.

    Parameters
    ----------
    seed : int, default 0
    test_fraction : float in (0, 1), default 0.2

    Returns
    -------
    Dataset
        ``x_*`` of shape (n, 64), ``y_*`` int64 labels 0..9.
    """
    if not (isinstance(test_fraction, (int, float, np.floating)) and 0 < test_fraction < 1):
        raise ValueError(f"`test_fraction` must be in (0, 1); got {test_fraction!r}.")
    from sklearn.datasets import load_digits as _sk_digits
    raw = _sk_digits()
    x = np.asarray(raw.data, dtype=np.float64) / 16.0
    y = np.asarray(raw.target, dtype=np.int64)
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        test.append(idx[:int(round(test_fraction * idx.size))])
    test = np.sort(np.concatenate(test))
    mask = np.zeros(y.size, dtype=bool)
    mask[test] = True
    train = np.flatnonzero(~mask)
    return Dataset(x[train], y[train], x[test], y[test], 10, (8, 8), "digits")


def minibatches(n, batch_size, rng):
    """Index arrays of one epoch: a random permutation of ``range(n)`` cut into
    batches of ``batch_size`` (the last one may be smaller)."""
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be positive; got {batch_size!r}.")
    perm = rng.permutation(n)
    return [perm[i:i + batch_size] for i in range(0, n, batch_size)]


def shift_images(x, rng, image_shape=(8, 8), max_shift=1):
    """Data augmentation: every flattened image of ``x`` moved by a random whole
    number of pixels in ``[-max_shift, max_shift]`` along each axis, zero-filled.

    Returns a new array of the shape of ``x``.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    rows, cols = image_shape
    imgs = x.reshape(n, rows, cols)
    pad = np.zeros((n, rows + 2 * max_shift, cols + 2 * max_shift))
    pad[:, max_shift:max_shift + rows, max_shift:max_shift + cols] = imgs
    dr = rng.integers(-max_shift, max_shift + 1, n)
    dc = rng.integers(-max_shift, max_shift + 1, n)
    r = max_shift - dr[:, None] + np.arange(rows)[None, :]          # (n, rows)
    c = max_shift - dc[:, None] + np.arange(cols)[None, :]          # (n, cols)
    out = pad[np.arange(n)[:, None, None], r[:, :, None], c[:, None, :]]
    return out.reshape(x.shape)
