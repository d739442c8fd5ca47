"""Reading and writing IDX files (the format of MNIST), gzipped or raw.

An IDX file is a 4-byte magic number ``0x00 0x00 <type> <ndim>``, then
``ndim`` big-endian uint32 sizes, then the data in C order, big-endian.
Type codes: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
0x0E float64.
"""
import gzip
import os

import numpy as np

#: IDX type code -> big-endian NumPy dtype.
IDX_TYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
             0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CODES = {dt.newbyteorder("=").str[1:]: code for code, dt in IDX_TYPES.items()}

MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


class IDXError(ValueError):
    """A file is not a valid IDX file (or not the one expected)."""


def _read_bytes(path):
    path = os.fspath(path)
    with open(path, "rb") as fh:
        head = fh.read(2)
    opener = gzip.open if head == b"\x1f\x8b" else open
    try:
        with opener(path, "rb") as fh:
            return fh.read()
    except (OSError, EOFError) as exc:  # corrupt gzip stream
        raise IDXError(f"{path}: could not read the file ({exc}).") from exc


def load_idx(path):
    """Read an IDX file (gzipped or raw; detected from its first bytes).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    ndarray
        Native byte order; dtype from the file's type code (uint8 for MNIST),
        shape from its header.

    Raises
    ------
    IDXError
        Bad magic number (first two bytes not zero, unknown type code, zero
        dimensions), a truncated header, or a data size that disagrees with
        the header.
    FileNotFoundError
        If ``path`` does not exist.
    """
    data = _read_bytes(path)
    path = os.fspath(path)
    if len(data) < 4:
        raise IDXError(f"{path}: too short for an IDX file ({len(data)} bytes; the magic "
                       "number alone is 4).")
    if data[0] != 0 or data[1] != 0:
        raise IDXError(f"{path}: bad magic number 0x{data[:4].hex()}: an IDX file starts "
                       "with two zero bytes (is this an IDX file?).")
    code, ndim = data[2], data[3]
    if code not in IDX_TYPES:
        raise IDXError(f"{path}: bad magic number 0x{data[:4].hex()}: unknown type code "
                       f"0x{code:02x}; valid codes are "
                       f"{', '.join(f'0x{c:02x}' for c in IDX_TYPES)}.")
    if ndim == 0:
        raise IDXError(f"{path}: bad magic number 0x{data[:4].hex()}: zero dimensions.")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXError(f"{path}: truncated header: {ndim} dimensions need {header} bytes; "
                       f"the file has {len(data)}.")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_TYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header
    if got != expected:
        raise IDXError(f"{path}: the header says shape {shape} of {dtype.name} "
                       f"({expected} bytes of data) but the file holds {got} bytes of data "
                       f"({'truncated' if got < expected else 'trailing bytes'}).")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))


def save_idx(path, array, compress=None):
    """Write ``array`` as an IDX file (gzipped if ``compress`` or if ``path`` ends in .gz).

    Supported dtypes: uint8, int8, int16, int32, float32, float64.
    """
    arr = np.ascontiguousarray(array)
    key = arr.dtype.newbyteorder("=").str[1:]
    if key not in _CODES:
        raise TypeError(f"IDX cannot store dtype {arr.dtype}; use one of uint8, int8, "
                        "int16, int32, float32, float64.")
    if arr.ndim == 0 or arr.ndim > 255:
        raise ValueError(f"IDX stores 1 to 255 dimensions; got {arr.ndim}.")
    code = _CODES[key]
    payload = (bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
               + arr.astype(IDX_TYPES[code]).tobytes())
    path = os.fspath(path)
    if compress is None:
        compress = path.endswith(".gz")
    with (gzip.open if compress else open)(path, "wb") as fh:
        fh.write(payload)


def _find(folder, stem):
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"),
                 stem.replace("-idx", ".idx") + ".gz"):
        p = os.path.join(folder, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(f"{folder}: no {stem} or {stem}.gz (MNIST's file names).")


def load_images_labels(images_path, labels_path):
    """Images (n, rows, cols) scaled to [0, 1] float64 and labels (n,) int64 from two
    IDX files, checked against each other."""
    images = load_idx(images_path)
    labels = load_idx(labels_path)
    if images.ndim != 3:
        raise IDXError(f"{os.fspath(images_path)}: images must have 3 dimensions (n, rows, "
                       f"cols); got shape {images.shape}.")
    if labels.ndim != 1:
        raise IDXError(f"{os.fspath(labels_path)}: labels must have 1 dimension; got shape "
                       f"{labels.shape}.")
    if images.shape[0] != labels.shape[0]:
        raise IDXError(f"{len(images)} images in {os.fspath(images_path)} but {len(labels)} "
                       f"labels in {os.fspath(labels_path)}.")
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    return images.astype(np.float64) / scale, labels.astype(np.int64)


def load_mnist(folder):
    """MNIST from the four IDX files in ``folder`` (names as distributed, ``.gz`` or not).

    Returns
    -------
    nodekit.datasets.Dataset
        Flattened images (n, 784) in [0, 1], labels 0..9.
    """
    from .digits import Dataset
    xtr, ytr = load_images_labels(*(_find(folder, s) for s in MNIST_FILES["train"]))
    xte, yte = load_images_labels(*(_find(folder, s) for s in MNIST_FILES["test"]))
    shape = xtr.shape[1:]
    return Dataset(xtr.reshape(len(xtr), -1), ytr, xte.reshape(len(xte), -1), yte, 10,
                   shape, "mnist")
