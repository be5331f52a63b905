"""Write the team's CIFAR-10 subset as an image folder that ``ganaug train --dataset
folder:DIR`` reads, so that the conv nets and the folder loader can be checked on real
colour images where the full CIFAR-10 is not available.

    python benchmarks/cifar_subset.py OUT [--source ../shared/data/cifar10_subset]

The source holds ``train_first4000.npz`` and ``test_first1000.npz`` (arrays ``x`` (N, 32, 32,
3) uint8 and ``y`` (N,) int, labels 0 airplane ... 9 truck: the first 4000 training and
first 1000 test images of CIFAR-10 in torchvision's order). OUT gets ``train/CLASS/NNNNN.png``
and ``test/CLASS/NNNNN.png`` (PNG: lossless, so the loader reads back the same bytes), built
in a temporary folder beside OUT and renamed into place: an interrupted run leaves no
half-written OUT. Numbers measured on it are for "CIFAR-10 subset, 4000 train / 1000
test", not for the CIFAR-10 benchmark (no 46,000 unlabeled images).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from _common import DATA_ROOT

from ganaug.data.sources import _CIFAR_NAMES as CLASSES   # label i's folder: CIFAR-10's names
FILES = {"train": "train_first4000.npz", "test": "test_first1000.npz"}


def read_split(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of one .npz, checked: x (N, 32, 32, 3) uint8, y (N,) labels in 0..9."""
    with np.load(path) as f:
        missing = {"x", "y"} - set(f.files)
        if missing:
            raise ValueError(f"{path} lacks the array(s) {sorted(missing)}; expected x (N, 32, "
                             f"32, 3) uint8 and y (N,) labels 0..9")
        x, y = f["x"], f["y"]
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3):
        raise ValueError(f"{path}: x must be (N, 32, 32, 3) uint8, got {x.shape} {x.dtype}")
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{path}: y must be {len(x)} integer labels, got {y.shape} {y.dtype}")
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise ValueError(f"{path}: labels must be in 0..9, got {y.min()}..{y.max()}")
    return x, y


def write_folder(source: Path, out: Path) -> dict[str, int]:
    """Write ``out/{train,test}/CLASS/NNNNN.png``; returns the image count per split. Every
    input is read and checked before anything is written."""
    from PIL import Image

    if out.exists():
        raise FileExistsError(f"{out} exists; remove it or pick another OUT")
    missing = [source / n for n in FILES.values() if not (source / n).is_file()]
    if missing:
        raise FileNotFoundError(f"no {missing[0].name} in {source}; point --source at the "
                                f"folder with {' and '.join(FILES.values())}")
    splits = {split: read_split(source / name) for split, name in FILES.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for split, (x, y) in splits.items():
            for c in CLASSES:
                (tmp / split / c).mkdir(parents=True)
            for i, (img, label) in enumerate(zip(x, y)):
                Image.fromarray(img, "RGB").save(tmp / split / CLASSES[label] / f"{i:05d}.png")
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {split: len(y) for split, (_, y) in splits.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="the image folder to write (must not exist)")
    p.add_argument("--source", type=Path, default=Path(DATA_ROOT) / "cifar10_subset",
                   help="the folder with train_first4000.npz and test_first1000.npz")
    args = p.parse_args(argv)
    try:
        counts = write_folder(args.source, args.out)
    except (OSError, ValueError) as e:
        sys.exit(f"cifar_subset.py: error: {e}")
    print(f"wrote {counts['train']} training and {counts['test']} test images to {args.out}; "
          f"train with: ganaug train --dataset folder:{args.out} --arch conv ...")


if __name__ == "__main__":
    main()
