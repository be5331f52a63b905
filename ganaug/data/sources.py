"""Dataset loaders: scikit-learn digits (the default), MNIST, SVHN, CIFAR-10, image folders.

Every loader returns ``(train, test)`` ImageSets with images in [-1, 1], NCHW.
torchvision is used for downloading (``download=True``); the files on disk are then read
directly in their published formats, so a subset written in the same format loads too.
"""
from __future__ import annotations

import io
import math
import os
import pickle
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .._io import _first_line
from .images import ImageSet

# digits: a fixed, stratified split that does not depend on any seed of the run
DIGITS_TEST_FRACTION = 0.25   # 1347 train / 450 test images
DIGITS_SPLIT_SEED = 0
FOLDER_TEST_FRACTION = 0.2    # a folder without train/ and test/ is split like digits

NAMED = ("digits", "mnist", "svhn", "cifar10")          # the datasets read by name
DATASETS = (*NAMED, "folder:PATH")
_DIGIT_NAMES = [str(i) for i in range(10)]
_CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                "ship", "truck"]


class DataNotFoundError(FileNotFoundError):
    """The dataset's files are not where we looked."""


def _to_unit(x_uint8: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 NCHW -> float32 in [-1, 1]."""
    return torch.as_tensor(np.asarray(x_uint8)).float().div_(127.5).sub_(1.0)


def _pad_to(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """Centre-pad (with -1, the background) or keep; resizing is for folders only."""
    if size is None or size == x.shape[-1]:
        return x
    if size < x.shape[-1]:
        raise ValueError(f"image_size {size} is smaller than the images ({x.shape[-1]}); "
                         f"only padding is supported for this dataset")
    total = size - x.shape[-1]
    lo = total // 2
    return F.pad(x, (lo, total - lo, lo, total - lo), value=-1.0)


def _missing(name: str, folder: Path, what: str, layout: str, root: Path | None = None,
             probe: str | None = None) -> DataNotFoundError:
    """The not-found error; ``layout`` is what --data-root must hold (e.g. ``MNIST/raw/``).
    When one of the files, ``probe``, lies in ``root`` or a folder of ``layout`` under it,
    the error says which --data-root finds it."""
    hint = _misplaced(root, layout, probe) if probe else ""
    return DataNotFoundError(
        f"{name} not found: looked for {what} in {folder}; " + (hint or
        f"--data-root (data_root=, or load_dataset's root=) is the folder that holds "
        f"{layout}: put the files there, point --data-root at it{DOWNLOAD_HINT}"))


DOWNLOAD_HINT = ", or pass --download (download=True in Python) to fetch them (needs internet)"
# read only when MNIST/raw lacks the IDX files, so the fix is those files (or a download)
_PROCESSED_FIX = ("delete the MNIST/processed folder and put MNIST's four raw files in "
                  "MNIST/raw" + DOWNLOAD_HINT)


def _misplaced(root: Path, layout: str, probe: str) -> str:
    sub = Path(layout).parts                          # ("MNIST", "raw")
    for k in range(1, len(sub) + 1):                  # root stands for sub[:k] already?
        here = root.joinpath(*sub[k:])
        if (here / probe).is_file() or (here / f"{probe}.gz").is_file():
            if root.resolve().parts[-k:] == sub[:k]:
                return (f"they are in {here}: pass --data-root {root.resolve().parents[k - 1]}, "
                        f"the folder that holds {layout}")
            return f"they are in {here}: move them into {root.joinpath(*sub)}"
    return ""


# ----------------------------------------------------------------------------- loaders

def load_digits() -> tuple[ImageSet, ImageSet]:
    """scikit-learn's 8x8 digits (1797 images, ships with scikit-learn): a fixed stratified
    split of 1347 train / 450 test images (test fraction 0.25, random_state 0)."""
    from sklearn.datasets import load_digits as _load
    from sklearn.model_selection import train_test_split

    d = _load()
    x = torch.as_tensor(d.images, dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0  # 0..16 -> [-1, 1]
    y = torch.as_tensor(d.target, dtype=torch.long)
    tr, te = train_test_split(np.arange(len(y)), test_size=DIGITS_TEST_FRACTION,
                              random_state=DIGITS_SPLIT_SEED, stratify=d.target)
    tr, te = torch.as_tensor(np.sort(tr)), torch.as_tensor(np.sort(te))
    return (ImageSet(x[tr], y[tr], _DIGIT_NAMES), ImageSet(x[te], y[te], _DIGIT_NAMES))


_MNIST_FILES = (("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))


def _read_idx(folder: Path, name: str, ndim: int) -> np.ndarray:
    """One uint8 IDX file (MNIST's format: magic 0x08 0x0N, N big-endian dimensions, then
    the data), read from ``name`` or, when only that is there, ``name.gz``."""
    import gzip

    path = folder / name
    if not path.is_file():
        path = folder / f"{name}.gz"
    if not path.is_file():
        raise _missing("MNIST", folder, f"{name} or {name}.gz (and its siblings)", "MNIST/raw/",
                       folder.parent.parent, name)
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:            # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path} could not be read ({type(e).__name__}: {e}): it is cut short "
                         f"or not gzip data; replace it with MNIST's original file") from None
    head = 4 + 4 * ndim
    if len(data) < head or data[:4] != bytes((0, 0, 0x08, ndim)):
        raise ValueError(f"{path} is not an IDX file of {ndim}-dimensional uint8 data "
                         f"(its first bytes are {data[:4].hex() or 'missing'}); replace it "
                         f"with MNIST's original file")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if len(data) - head != int(np.prod(shape)):
        raise ValueError(f"{path} holds {len(data) - head} bytes of data where its header "
                         f"says {shape}: the file is cut short or corrupt; replace it")
    return np.frombuffer(bytearray(data), np.uint8, offset=head).reshape(shape)  # writable


def _download(name: str, root: Path, where: str, **kw) -> None:
    """torchvision's downloader for dataset ``name`` (its class in torchvision.datasets) into
    ``root``, where it writes the dataset's own folder ``where`` and archives beside it. A
    failed download (no internet, a dead mirror, a bad checksum) is one error naming the
    dataset, the reason and the way around it; what the attempt created (folders, a
    part-written file) is removed, and what was there is kept. Only ``root``'s own entries
    and the dataset's folder are listed, not the rest of a shared data root."""
    import torchvision.datasets as tvd
    root = Path(root)
    own = root / Path(where).parts[0] if where else root

    def entries() -> set[Path]:
        found = set(root.iterdir()) if root.is_dir() else set()
        return found | (set(own.rglob("*")) if own != root and own.is_dir() else set())

    before = entries()
    made = [p for p in [root, *root.parents] if not p.exists()]
    try:
        getattr(tvd, name)(str(root), download=True, **kw)
    except Exception as e:                       # torchvision raises RuntimeError, URLError...
        for p in sorted(entries() - before, key=lambda p: len(p.parts), reverse=True):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)                  # new: all it holds is new too
            elif p.exists() or p.is_symlink():
                p.unlink()
        for p in made:                            # the folders --data-root named, innermost first
            if p.is_dir() and not any(p.iterdir()):
                p.rmdir()
        reason = " ".join(str(e).split()) or type(e).__name__
        raise DataNotFoundError(
            f"downloading {name} failed ({reason}); the download needs internet access. "
            f"Without it, put the files in {root / where} yourself (copied from a machine that "
            f"has them) and leave --download unset") from None


def load_mnist(root: str | os.PathLike, download: bool = False, image_size: int | None = None):
    """torchvision's MNIST layout under ``root/MNIST/raw``, each of the four IDX files as
    published (``.gz``) or decompressed, or, without them, the ``root/MNIST/processed``
    files ``training.pt`` and ``test.pt`` that torchvision before 0.8 wrote (and still
    reads); ``image_size=32`` pads to 32x32."""
    folder = Path(root) / "MNIST" / "raw"
    if download:
        _download("MNIST", root, "MNIST/raw", train=True)   # fetches, unpacks all four files
    out = []
    for (images, labels), old in zip(_MNIST_FILES, ("training.pt", "test.pt")):
        where = folder / labels
        try:
            x, y = _read_idx(folder, images, 3), _read_idx(folder, labels, 1)
        except DataNotFoundError:
            where = folder.parent / "processed" / old
            x, y = _read_mnist_processed(where)
            if x is None:
                raise
        if len(x) != len(y):
            raise ValueError(f"{where}: {len(x)} images but {len(y)} labels; replace the files "
                             f"with MNIST's original ones")
        _check_labels(y, where)
        out.append(ImageSet(_pad_to(_to_unit(x[:, None]), image_size),
                            torch.from_numpy(y.astype(np.int64)), _DIGIT_NAMES))
    return tuple(out)


def _read_mnist_processed(path: Path) -> tuple[np.ndarray | None, np.ndarray | None]:
    """One of torchvision's former MNIST files (``torch.save`` of (uint8 N x 28 x 28 images,
    int64 labels)) as numpy arrays; (None, None) when there is none."""
    if not path.is_file():
        return None, None
    try:
        x, y = torch.load(path, map_location="cpu", weights_only=True)
        x, y = x.numpy(), y.numpy()
        ok = x.dtype == np.uint8 and x.ndim == 3 and y.ndim == 1
    except Exception as e:                    # not a pair of tensors, a damaged file, ...
        raise ValueError(f"{path} could not be read as torchvision's MNIST file "
                         f"({_first_line(e)}); {_PROCESSED_FIX}") from None
    if not ok:
        raise ValueError(f"{path} does not hold uint8 images (N, 28, 28) and their labels; "
                         f"{_PROCESSED_FIX}")
    return x, y


def _read_svhn_mat(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """SVHN's .mat: X (32, 32, 3, N) uint8 and y (N, 1) with label 10 for digit 0."""
    import scipy.io as sio

    try:
        m = sio.loadmat(str(path))
        x, y = m["X"], m["y"]
    except Exception as e:                # scipy raises ValueError, KeyError, OSError, ...
        raise ValueError(f"{path} could not be read as SVHN's .mat ({type(e).__name__}: {e}): "
                         f"it is cut short or not the published file; replace it") from None
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or len(y.reshape(-1)) != x.shape[3]:
        raise ValueError(f"{path}: X has shape {x.shape} and y {y.shape}, not (32, 32, 3, N) "
                         f"and N labels; replace it with SVHN's published file")
    if x.dtype != np.uint8 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{path}: X is {x.dtype} and y {y.dtype}, not uint8 pixels and whole-"
                         f"number labels; replace it with SVHN's published file")
    x = np.ascontiguousarray(np.transpose(x, (3, 2, 0, 1)))    # -> (N, 3, 32, 32)
    y = y.astype(np.int64).reshape(-1)
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise ValueError(f"{path}: labels span {y.min()}..{y.max()}, not SVHN's 1..10; "
                         f"replace it with the published file")
    return _to_unit(x), torch.as_tensor(y % 10)        # 10 -> 0, as torchvision does


def load_svhn(root: str | os.PathLike, download: bool = False):
    """SVHN cropped digits: ``root/train_32x32.mat`` and ``root/test_32x32.mat``."""
    folder = Path(root)
    out = []
    for split in ("train", "test"):
        path = folder / f"{split}_32x32.mat"
        if download and not path.exists():
            _download("SVHN", root, "", split=split)
        if not path.exists():
            raise _missing("SVHN", folder, path.name, "train_32x32.mat and test_32x32.mat")
        x, y = _read_svhn_mat(path)
        out.append(ImageSet(x, y, _DIGIT_NAMES))
    return tuple(out)


_CIFAR_ARCHIVE = "cifar-10-python.tar.gz"      # as published; unpacks to cifar-10-batches-py/
_CIFAR_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


class _NotAsPublished(ValueError):
    """A file that reads but does not hold what the published one does."""


class _Array:
    """What a pickled numpy array or dtype holds, recorded while unpickling (numpy's own
    functions are never called: given crafted arguments, they read pointers out of the file)
    and checked by ``_plain`` after."""

    def __init__(self, *args):
        self.args, self.state = args, None

    def __setstate__(self, state):
        self.state = state


class _NotCallable:
    """numpy.ndarray: a real batch names it only as ``_reconstruct``'s argument."""

    def __init__(self, *args):
        raise _NotAsPublished("it calls numpy.ndarray, which a CIFAR-10 batch does not")


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles what a CIFAR-10 batch holds (dicts, lists, bytes, strings, numbers and numpy
    arrays of numbers) and nothing else. A pickle can name any function for its reader to
    call, so a crafted file in a data folder would run code with plain ``pickle.loads``;
    here the few names a batch uses stand for recorders (``_Array``), whose arrays
    ``_plain`` rebuilds from their bytes for plain number types alone."""
    _RECORDERS = {("numpy", "dtype"), ("numpy", "ndarray"),
                  *((f"numpy.{core}.multiarray", n) for core in ("core", "_core")
                    for n in ("_reconstruct", "scalar")),
                  *((f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core"))}

    def find_class(self, module: str, name: str):
        if (module, name) == ("_codecs", "encode"):     # Python 3's protocol 2 bytes: pure
            return super().find_class(module, name)
        if (module, name) not in self._RECORDERS:
            raise _NotAsPublished(f"it is a pickle that names {module}.{name}, which a CIFAR-10 "
                                  f"batch does not hold (not loaded: it could run code)")
        if name == "ndarray":
            return _NotCallable
        return lambda *args: _Array(name, *args)


_PLAIN_DTYPES = {"b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f4", "f8"}


def _dtype(d) -> np.dtype:
    """A recorded ``numpy.dtype(spec, ...)`` of a plain number type, else _NotAsPublished."""
    if not (isinstance(d, _Array) and d.args[:1] == ("dtype",) and len(d.args) >= 2
            and d.args[1] in _PLAIN_DTYPES):
        raise _NotAsPublished("it holds an array that is not of a plain number type")
    order = d.state[1] if isinstance(d.state, tuple) and len(d.state) > 1 else "|"
    dt = np.dtype(d.args[1])
    return dt.newbyteorder(order) if order in ("<", ">") else dt


def _raw(data) -> bytes:
    if isinstance(data, str):                       # Python 2's str, read as latin1
        return data.encode("latin1")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise _NotAsPublished("it holds an array whose data is not bytes")


def _array(dt: np.dtype, shape, data, fortran: bool = False) -> np.ndarray:
    if not (isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)):
        raise _NotAsPublished("it holds an array of a malformed shape")
    raw = _raw(data)
    if len(raw) != math.prod(shape) * dt.itemsize:
        raise _NotAsPublished("it holds an array whose data is not as long as its shape says")
    return np.frombuffer(raw, dt).reshape(shape, order="F" if fortran else "C").copy()


def _plain(v):
    """``v`` (an unpickled batch) with every recorded array rebuilt; anything but dicts,
    lists, tuples, strings, bytes, numbers, None and arrays of numbers is refused."""
    if isinstance(v, dict):
        return {_plain(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return type(v)(_plain(x) for x in v)
    if v is None or isinstance(v, (str, bytes, bool, int, float)):
        return v
    if isinstance(v, _Array):
        kind = v.args[0]
        if kind == "_reconstruct" and isinstance(v.state, tuple) and len(v.state) == 5:
            _, shape, dt, fortran, data = v.state
            return _array(_dtype(dt), shape, data, bool(fortran))
        if kind == "_frombuffer" and len(v.args) == 5:
            _, data, dt, shape, order = v.args
            return _array(_dtype(dt), shape, data, order == "F")
        if kind == "scalar" and len(v.args) == 3:
            return _array(_dtype(v.args[1]), (), v.args[2])[()]
    what = "numpy object" if isinstance(v, _Array) else type(v).__name__
    raise _NotAsPublished(f"it holds a {what} that a CIFAR-10 batch does not")


def _read_cifar_batch(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """One pickled CIFAR-10 batch: dict with b'data' (N, 3072) uint8 and b'labels' (N).
    Anything else is refused (_NotAsPublished): other shapes or dtypes would read as scrambled
    or black images, and a label too many or too few shifts every later batch's labels."""
    d = _plain(_BatchUnpickler(io.BytesIO(raw), encoding="latin1").load())
    if not isinstance(d, dict):
        raise _NotAsPublished(f"it holds a {type(d).__name__}, not the dict of a CIFAR-10 batch")
    # Python 2's str keys read as str; a batch re-pickled by Python 3 has bytes keys
    d = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in d.items()}
    x = np.asarray(d["data"])
    y = np.asarray(d.get("labels", d.get("fine_labels")))
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
        raise _NotAsPublished(f"its data is {x.dtype} of shape {x.shape}, not uint8 (N, 3072) rows "
                         f"of channel-major 32x32 RGB pixels as published")
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise _NotAsPublished(f"it holds {len(x)} images and labels of shape {y.shape} ({y.dtype}), "
                         f"not one whole-number label per image")
    return x.reshape(-1, 3, 32, 32), y.astype(np.int64)


def _cifar_batch_bytes(root: Path) -> dict[str, bytes]:
    """The six batch files' bytes, from ``root/cifar-10-batches-py/`` or, when that is
    incomplete, straight from the published archive ``root/cifar-10-python.tar.gz``."""
    folder = root / "cifar-10-batches-py"
    names = [n for split in _CIFAR_BATCHES.values() for n in split]
    missing = [n for n in names if not (folder / n).is_file()]
    if not missing:
        return {n: (folder / n).read_bytes() for n in names}
    archive = root / _CIFAR_ARCHIVE
    if not archive.is_file():
        raise _missing("CIFAR-10", folder, f"{', '.join(missing)} (or {_CIFAR_ARCHIVE} in "
                       f"{root})", "cifar-10-batches-py/", root, missing[0])
    import tarfile

    try:
        with tarfile.open(archive, "r:gz") as tar:
            found = {Path(m.name).name: m for m in tar.getmembers()
                     if m.isfile() and Path(m.name).parent.name == folder.name}
            lost = [n for n in names if n not in found]
            if lost:
                raise ValueError(f"{archive} lacks {', '.join(lost)} under {folder.name}/: it "
                                 f"is not CIFAR-10's python archive; replace it")
            return {n: tar.extractfile(found[n]).read() for n in names}
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ValueError(f"{archive} could not be read ({type(e).__name__}: {e}): it is cut "
                         f"short or corrupt; replace it") from None


def load_cifar10(root: str | os.PathLike, download: bool = False):
    """CIFAR-10's python layout: ``root/cifar-10-batches-py/data_batch_{1..5}, test_batch``,
    or the archive it comes in, ``root/cifar-10-python.tar.gz``, read without unpacking."""
    root = Path(root)
    folder = root / "cifar-10-batches-py"
    if download and not all((folder / n).is_file() for split in _CIFAR_BATCHES.values()
                            for n in split):
        # missing or incomplete: torchvision fetches the archive (a valid one there is only
        # unpacked) and unpacks it over the folder; a complete folder is read as it is
        _download("CIFAR10", root, "cifar-10-batches-py", train=True)
    raw = _cifar_batch_bytes(root)
    out = []
    for split in ("train", "test"):
        parts = []
        for n in _CIFAR_BATCHES[split]:
            try:
                parts.append(_read_cifar_batch(raw[n]))
            except _NotAsPublished as e:
                raise ValueError(f"CIFAR-10 batch {n} (in {root}): {e}; replace it with the "
                                 f"published file") from None
            except Exception as e:            # unpickling a damaged file raises anything
                raise ValueError(f"CIFAR-10 batch {n} (in {root}) could not be read "
                                 f"({type(e).__name__}: {e}): it is cut short or not a CIFAR-10 "
                                 f"python batch; replace it") from None
            _check_labels(parts[-1][1], root / "cifar-10-batches-py" / n)
        x = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        out.append(ImageSet(_to_unit(x), torch.as_tensor(y), _CIFAR_NAMES))
    return tuple(out)


def _check_labels(y: np.ndarray, path: Path, num_classes: int = 10) -> None:
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"{path}: labels span {int(y.min())}..{int(y.max())}, not "
                         f"0..{num_classes - 1}; replace it with the published file")


_SPLIT_NAMES = {"train", "training", "test", "testing", "val", "valid", "validation", "eval"}
_GREY = ("L", "LA", "La", "1", "P;L", "I;16", "I;16B", "I;16L", "I;16N", "I")


def _image_folder(folder: Path):
    """torchvision's ImageFolder without hidden entries (``.thumbnails/``, ``._x.png``)."""
    from torchvision.datasets import ImageFolder
    from torchvision.datasets.folder import IMG_EXTENSIONS

    class Folder(ImageFolder):
        def find_classes(self, directory):
            classes = _class_dirs(Path(directory))
            if not classes:
                raise FileNotFoundError(f"Couldn't find any class folder in {directory}.")
            return classes, {c: i for i, c in enumerate(classes)}

    def ok(path: str) -> bool:              # ImageFolder walks sub-folders too: skip any
        parts = Path(os.path.relpath(path, folder)).parts        # hidden one on the way
        return not any(p.startswith(".") for p in parts) and path.lower().endswith(IMG_EXTENSIONS)

    return Folder(str(folder), is_valid_file=ok)


def _uint8(im, mode: str) -> np.ndarray:
    """A PIL image as uint8 in ``mode`` ("L" or "RGB"); 16-bit grey is scaled, not clipped
    (transparent images come composited: ``_composited``)."""
    from PIL import Image

    if im.mode.startswith("I"):                          # 16-bit (or 32-bit int) grey
        a = np.asarray(im).astype(np.int64)
        if a.min() < 0 or a.max() > 65535:
            raise ValueError(f"values {a.min()}..{a.max()} are not 16-bit")
        im = Image.fromarray(((a * 255 + 32767) // 65535).astype(np.uint8), mode="L")
    elif im.mode == "F":
        raise ValueError("floating-point images are not supported; save them as 8- or 16-bit")
    return np.asarray(im.convert(mode), dtype=np.uint8)


def _transparent(im) -> bool:
    """Whether a PIL image (8-bit: 16-bit grey is read without its transparency) has pixels
    that are not opaque: an alpha channel below 255, or a transparent colour in use."""
    if im.mode.startswith("I") or im.mode == "F" or (
            im.mode not in ("RGBA", "RGBa", "LA", "La", "PA") and "transparency" not in im.info):
        return False
    return im.convert("RGBA").getchannel("A").getextrema()[0] < 255


def _composited(im):
    """An image with transparent pixels over a plain background that contrasts with its
    opaque ones: white under dark ink, black under light ink. Dropping the alpha channel (as
    torchvision's ImageFolder does) would show what the transparent pixels hide instead,
    which for ink stored in the alpha channel alone is a blank image."""
    from PIL import Image

    rgba = np.asarray(im.convert("RGBA"))
    shown = rgba[..., 3] >= 128
    light = rgba[..., :3][shown].mean() >= 128 if shown.any() else False
    back = Image.new("RGBA", im.size, (0, 0, 0, 255) if light else (255, 255, 255, 255))
    return Image.alpha_composite(back, Image.fromarray(rgba, "RGBA"))


def _grey(im) -> bool:
    """Whether a PIL image is grey: a grey mode, or a palette image whose colours in use (its
    transparent one aside) are all grey, as PNG optimisers store grey images."""
    if im.mode in _GREY:
        return True
    if im.mode not in ("P", "PA"):
        return False
    rgba = np.asarray(im.convert("RGBA"))
    rgb = rgba[..., :3][rgba[..., 3] > 0]
    return bool((rgb[:, 0] == rgb[:, 1]).all() and (rgb[:, 1] == rgb[:, 2]).all())


def _read_folder(folder: Path, image_size: int | None, mode: str | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Every image of ``folder``'s class sub-folders, grey ("L") when all are grey, else
    RGB (or ``mode``), resized to ``image_size`` when given."""
    from PIL import Image

    from torchvision.datasets.folder import IMG_EXTENSIONS

    try:
        ds = _image_folder(folder)
    except (FileNotFoundError, OSError) as e:
        raise DataNotFoundError(f"image folder {folder}: {' '.join(str(e).split()).rstrip('.')}"
                                f"; it needs one sub-folder of images per class, each with "
                                f"images (files ending in {', '.join(IMG_EXTENSIONS)})"
                                + (": add images to a class folder without any, or remove it"
                                   if "no valid file" in str(e) else "")) from None
    if len(ds.classes) < 2:
        raise ValueError(f"image folder {folder} has {len(ds.classes)} class sub-folder(s) "
                         f"({', '.join(ds.classes)}); it needs one sub-folder of images per "
                         f"class, at least two (is --dataset folder:PATH one level too high?)")
    if {c.lower() for c in ds.classes} <= _SPLIT_NAMES:
        raise ValueError(f"the sub-folders of {folder} ({', '.join(ds.classes)}) look like "
                         f"splits, not classes: ganaug reads {folder}/train and {folder}/test "
                         f"(or training/ and testing/; rename the held-out split to test), or "
                         f"a folder of classes alone")
    imgs, modes, clear = [], set(), []
    for path, _ in ds.samples:
        try:
            with Image.open(path) as im:
                modes.add("L" if _grey(im) else "RGB")
                if _transparent(im):            # composited once, here
                    clear.append(path)
                    imgs.append(_composited(im))
                else:
                    imgs.append(im.copy())
        except Exception as e:              # PIL raises OSError, SyntaxError, ValueError, ...
            raise ValueError(f"{path} could not be read as an image ({type(e).__name__}: "
                             f"{e}); remove or replace it") from None
    mode = mode or ("L" if modes == {"L"} else "RGB")
    if clear:
        warnings.warn(f"{len(clear)} image{'s' if len(clear) > 1 else ''} of {folder} (e.g. "
                      f"{clear[0]}) ha{'ve' if len(clear) > 1 else 's'} transparent pixels: "
                      f"composited onto a plain background, white under dark content and "
                      f"black under light (torchvision's ImageFolder drops the alpha channel "
                      f"instead, which shows what the transparent pixels hide)", stacklevel=4)
    arrays = []
    for im, (path, _) in zip(imgs, ds.samples):
        try:
            a = _uint8(im, mode)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        if image_size is not None:
            a = np.asarray(Image.fromarray(a).resize((image_size, image_size), Image.BILINEAR))
        arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"images in {folder} have different sizes {sorted(shapes)[:3]}...; "
                         f"pass --image-size N to resize them to NxN")
    x = _to_unit(np.stack(arrays))
    return x, torch.as_tensor(ds.targets, dtype=torch.long), list(ds.classes)


def load_folder(path: str | os.PathLike, image_size: int | None = None):
    """A folder of class sub-folders (torchvision ImageFolder). With ``train/`` and ``test/``
    inside, those are the splits; otherwise a fixed stratified 80/20 split is made."""
    folder = Path(path)
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise DataNotFoundError(f"image folder {folder} {what}; pass --dataset folder:PATH "
                                f"with a folder of class sub-folders")
    train_dir = _split_dir(folder, ("train", "training"))
    test_dir = _split_dir(folder, ("test", "testing"))
    if train_dir is not None and test_dir is not None:
        # the splits' class sub-folders by name first: before any image is read, and before
        # a split of one class is called a folder one level too high
        _same_classes(train_dir, _class_dirs(train_dir), test_dir, _class_dirs(test_dir))
        xtr, ytr, ctr = _read_folder(train_dir, image_size)
        xte, yte, cte = _read_folder(test_dir, image_size)
        _same_classes(train_dir, ctr, test_dir, cte)
        if xtr.shape[1] != xte.shape[1]:             # grey in one split, colour in the other
            if xtr.shape[1] == 1:
                xtr, ytr, ctr = _read_folder(train_dir, image_size, "RGB")
            else:
                xte, yte, cte = _read_folder(test_dir, image_size, "RGB")
        if xtr.shape[1:] != xte.shape[1:]:
            raise ValueError(f"{train_dir} images are {tuple(xtr.shape[2:])} pixels but "
                             f"{test_dir} images {tuple(xte.shape[2:])}; pass --image-size N "
                             f"to resize both to NxN")
        return ImageSet(xtr, ytr, ctr), ImageSet(xte, yte, cte)
    from sklearn.model_selection import train_test_split

    x, y, classes = _read_folder(folder, image_size)
    _check_folder_split(folder, y, classes)
    tr, te = train_test_split(np.arange(len(y)), test_size=FOLDER_TEST_FRACTION,
                              random_state=0, stratify=y.numpy())
    tr, te = torch.as_tensor(np.sort(tr)), torch.as_tensor(np.sort(te))
    return ImageSet(x[tr], y[tr], classes), ImageSet(x[te], y[te], classes)


def _same_classes(train_dir: Path, ctr: list[str], test_dir: Path, cte: list[str]) -> None:
    if ctr != cte:
        only = [f"{d.name}/ alone has {', '.join(map(repr, sorted(set(a) - set(b))))}"
                for d, a, b in ((train_dir, ctr, cte), (test_dir, cte, ctr)) if set(a) - set(b)]
        raise ValueError(f"{train_dir} and {test_dir} have different classes ("
                         f"{'; '.join(only)}): give both the same class sub-folders, each "
                         f"with images")


def folder_classes(path: str | os.PathLike) -> list[str]:
    """The class names ``load_folder(path)`` would read (its ``train/`` split's when it has
    ``train/`` and ``test/``), from the folder names alone: no image is opened."""
    folder = Path(path)
    if _split_dir(folder, ("train", "training")) is not None and \
            _split_dir(folder, ("test", "testing")) is not None:
        folder = _split_dir(folder, ("train", "training"))
    return _class_dirs(folder)


def _class_dirs(folder: Path) -> list[str]:
    """The class sub-folders of ``folder`` as ImageFolder finds them (hidden ones left out)."""
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def _split_dir(folder: Path, names: tuple[str, ...]) -> Path | None:
    """``folder``'s sub-folder of one of ``names`` (("train", "training") or ("test",
    "testing")) whatever the case of its name (``Train/``, ``TESTING/``), or None; two such
    folders are an error."""
    found = [Path(e.path) for e in os.scandir(folder)
             if e.is_dir() and e.name.lower() in names]
    if len(found) > 1:
        raise ValueError(f"{folder} has {' and '.join(f.name + '/' for f in sorted(found))}: "
                         f"keep one {names[0]} split")
    return found[0] if found else None


def _check_folder_split(folder: Path, y: torch.Tensor, classes: list[str]) -> None:
    """ValueError, naming the class and the fix, for a folder that the stratified 80/20 split
    (scikit-learn's, which needs two images of every class and room for each class on
    both sides) cannot divide."""
    fix = (f"add images, or divide them yourself into {folder}/train and {folder}/test (each "
           f"with one sub-folder per class)")
    counts = torch.bincount(y, minlength=len(classes)).tolist()
    few = [name for name, n in zip(classes, counts) if n < 2]
    if few:
        names = ", ".join(repr(name) for name in few)
        raise ValueError(f"image folder {folder}: class{'es' if len(few) > 1 else ''} {names} "
                         f"ha{'ve' if len(few) > 1 else 's'} a single image, and the "
                         f"stratified {1 - FOLDER_TEST_FRACTION:.0%}/{FOLDER_TEST_FRACTION:.0%} "
                         f"train/test split of a folder without train/ and test/ needs at "
                         f"least 2 images of every class: {fix}")
    n_test = math.ceil(FOLDER_TEST_FRACTION * len(y))         # as scikit-learn counts them
    if min(n_test, len(y) - n_test) < len(classes):
        raise ValueError(f"image folder {folder}: {len(y)} images are too few for its stratified "
                         f"{1 - FOLDER_TEST_FRACTION:.0%}/{FOLDER_TEST_FRACTION:.0%} train/test "
                         f"split to hold one of each of its {len(classes)} classes on both "
                         f"sides ({len(y) - n_test} train, {n_test} test images): {fix}")


# what a torchvision root holds for each dataset read by name
_ROOT_FILES = {"mnist": ("MNIST",), "svhn": ("train_32x32.mat", "test_32x32.mat"),
               "cifar10": ("cifar-10-batches-py", _CIFAR_ARCHIVE)}


def check_dataset_name(name: str) -> None:
    """Raise ValueError for a name no loader accepts (before any work starts)."""
    if name in NAMED:
        return
    if name.startswith("folder:") and len(name) > len("folder:"):
        return
    hint = ""
    if (plain := name.lower().replace("-", "").replace("_", "")) in NAMED:
        hint = f" (did you mean {plain!r}?)"
    elif os.path.isdir(folder := os.path.expanduser(name)):
        held = [d for d, files in _ROOT_FILES.items()
                if any(os.path.exists(os.path.join(folder, f)) for f in files)]
        hint = (f" ({name} is a torchvision root holding {' and '.join(held)}: pass --dataset "
                f"{held[0]} --data-root {name})" if held else
                f" ({name} is a folder: for its images pass folder:{name})")
    raise ValueError(f"unknown dataset {name!r}{hint}; choose one of: {', '.join(DATASETS)}")


def load_dataset(name: str, root: str | os.PathLike = "./data", download: bool = False,
                 image_size: int | None = None) -> tuple[ImageSet, ImageSet]:
    """``(train, test)`` for ``name`` in digits, mnist, svhn, cifar10 or ``folder:PATH``.

    ``root`` is a torchvision dataset root (ignored for digits, which ships with
    scikit-learn). ``image_size`` pads MNIST (e.g. to 32 for the conv nets) or resizes
    folder images.
    """
    check_dataset_name(name)
    if image_size is not None:
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0:
            raise ValueError(f"image_size (--image-size) must be a positive whole number of "
                             f"pixels, got "
                             f"{image_size!r}")
        if name in ("digits", "svhn", "cifar10"):
            raise ValueError(f"image_size pads MNIST and resizes image folders; {name} images "
                             f"keep their size, so leave image_size (--image-size) unset")
    if download and name not in ("mnist", "svhn", "cifar10"):
        raise ValueError(f"download fetches MNIST, SVHN and CIFAR-10; {name} is read from "
                         f"{'scikit-learn' if name == 'digits' else 'its folder'} as it is, so "
                         f"leave download (--download) unset")
    root = os.path.expanduser(root)
    if name == "digits":
        return load_digits()
    if name == "mnist":
        return load_mnist(root, download, image_size)
    if name == "svhn":
        return load_svhn(root, download)
    if name == "cifar10":
        return load_cifar10(root, download)
    return load_folder(os.path.expanduser(name[len("folder:"):]), image_size)
