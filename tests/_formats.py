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


def write_cifar10(root, per_batch: int, n_test: int, seed: int = 0, labels=None) -> Path:
    """``root/cifar-10-batches-py/data_batch_1..5`` and ``test_batch``: pickled dicts with
    ``data`` (N, 3072) uint8 (channel-major rows) and ``labels``. ``labels(i, name, n)`` gives
    batch ``i``'s labels; default: 0, 1, ..., 9, 0, ... counted across the training batches."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = labels or (lambda i, name, n: [int(v) for v in (np.arange(n) + i * per_batch) % 10])
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        n = n_test if name == "test_batch" else per_batch
        d = {"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
             "labels": list(labels(i, name, n))}
        with open(folder / name, "wb") as f:
            pickle.dump(d, f)
    return folder
