"""Tiny datasets written in the exact on-disk formats of MNIST (IDX, gzipped and raw), SVHN
(MATLAB .mat) and CIFAR-10 (pickled python batches), for loader and recipe tests."""
from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np


def write_idx(path, arr: np.ndarray, magic: int) -> None:
    """One gzipped IDX file (big-endian magic and dimensions, then uint8 data)."""
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape))
        f.write(arr.astype(np.uint8).tobytes())


def write_mnist(root, train_images, train_labels, test_images, test_labels,
                decompressed: bool = True) -> Path:
    """``root/MNIST/raw/`` with the four ``.gz`` files as published and, when
    ``decompressed``, their decompressed copies (what torchvision's download leaves)."""
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, x, y in (("train", train_images, train_labels), ("t10k", test_images, test_labels)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", np.asarray(x), 2051)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", np.asarray(y), 2049)
    for f in raw.glob("*.gz") if decompressed else ():
        (raw / f.stem).write_bytes(gzip.decompress(f.read_bytes()))
    return raw


def write_svhn(root, n_train: int, n_test: int, seed: int = 0, labels=None) -> Path:
    """``root/train_32x32.mat`` and ``root/test_32x32.mat``: X (32, 32, 3, N) uint8, y (N, 1)
    with 10 standing for digit 0. ``labels(split, n)`` gives the stored labels (1..10);
    default: 1, 2, ..., 10, 1, ... (so every digit appears)."""
    import scipy.io as sio

    rng = np.random.default_rng(seed)
    labels = labels or (lambda split, n: np.arange(n) % 10 + 1)
    for split, n in (("train", n_train), ("test", n_test)):
        X = rng.integers(0, 256, (32, 32, 3, n)).astype(np.uint8)
        y = np.asarray(labels(split, n)).reshape(-1, 1).astype(np.uint8)
        sio.savemat(Path(root) / f"{split}_32x32.mat", {"X": X, "y": y})
    return Path(root)


class _Python2Pickler(pickle._Pickler):
    """Pickles as Python 2's cPickle did (protocol 2, ``bytes`` as Python 2 ``str``): the
    published CIFAR-10 batches are such files, which Python 3 reads with
    ``encoding="latin1"`` (str keys) or ``encoding="bytes"`` (bytes keys), not as is."""
    dispatch = dict(pickle._Pickler.dispatch)

    def _save_bytes_as_str(self, obj: bytes) -> None:
        n = len(obj)
        head = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else \
            pickle.BINSTRING + struct.pack("<i", n)
        self.write(head + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_bytes_as_str


def _python2_pickle(obj, path: Path) -> None:
    with open(path, "wb") as f:
        _Python2Pickler(f, protocol=2).dump(obj)


def write_cifar10(root, per_batch: int, n_test: int, seed: int = 0, labels=None) -> Path:
    """``root/cifar-10-batches-py/data_batch_1..5``, ``test_batch`` and ``batches.meta`` as
    published: Python 2 pickles of dicts with bytes keys, ``b"data"`` (N, 3072) uint8
    (channel-major rows), ``b"labels"``, ``b"batch_label"``, ``b"filenames"``; the meta file's
    ``b"label_names"``. ``labels(i, name, n)`` gives batch ``i``'s labels; default: 0, 1,
    ..., 9, 0, ... counted across the training batches."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = labels or (lambda i, name, n: [int(v) for v in (np.arange(n) + i * per_batch) % 10])
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        n = n_test if name == "test_batch" else per_batch
        label = "testing batch 1 of 1" if name == "test_batch" else f"training batch {i + 1} of 5"
        d = {b"batch_label": label.encode(), b"labels": list(labels(i, name, n)),
             b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
             b"filenames": [f"image_{i}_{j}.png".encode() for j in range(n)]}
        _python2_pickle(d, folder / name)
    _python2_pickle({b"num_cases_per_batch": per_batch, b"num_vis": 3072,
                     b"label_names": [c.encode() for c in CIFAR10_CLASSES]},
                    folder / "batches.meta")
    return folder


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")


def write_image_classes(root, mode="L", value=128, n=5, size=8, names=("a", "b")) -> Path:
    """An image folder: ``n`` PNGs of one ``value`` in each class sub-folder ``names``."""
    from PIL import Image

    root = Path(root)
    for c in names:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            if mode == "I;16":
                im = Image.fromarray(np.full((size, size), value, np.uint16))
            else:
                im = Image.new(mode, (size, size), value)
            im.save(root / c / f"{i}.png")
    return root
