"""Loaders on the inputs users bring: 16-bit and mixed-mode image folders, split folders in
the wrong place, hidden entries, damaged files, labels out of range, `~` in a root, sizes
that do not apply; ImageSet subsets keep their transforms."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from ganaug import TrainConfig
from ganaug.data import DataNotFoundError, ImageSet, load_dataset, split_labeled
from ganaug.data.sources import _read_cifar_batch

from _formats import write_cifar10, write_mnist, write_svhn
from _formats import write_image_classes as _classes
from ganaug.data.sources import check_dataset_name


def test_16_bit_grey_is_scaled_not_clipped(tmp_path):
    for value, expected in ((32768, 0.0), (200, -1.0), (65535, 1.0)):
        root = _classes(tmp_path / str(value), "I;16", value)
        tr, _ = load_dataset(f"folder:{root}")
        assert tr.image_shape[0] == 1
        assert float(tr.images.mean()) == pytest.approx(expected, abs=0.01), value


def test_train_and_test_folders_agree_on_channels_and_size(tmp_path):
    _classes(tmp_path / "train", "L")
    _classes(tmp_path / "test", "L", n=2)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / "test" / "a" / "rgb.png")
    tr, te = load_dataset(f"folder:{tmp_path}")
    assert tr.image_shape == te.image_shape == (3, 8, 8)
    other = tmp_path / "other"
    _classes(other / "train", "L")
    _classes(other / "test", "L", n=2, size=10)
    with pytest.raises(ValueError, match=r"\(8, 8\) pixels but .* \(10, 10\); pass --image-size"):
        load_dataset(f"folder:{other}")


def test_split_folders_hidden_entries_and_single_classes(tmp_path):
    _classes(tmp_path / "tv", names=("train", "val"))
    with pytest.raises(ValueError, match="look like splits, not classes"):
        load_dataset(f"folder:{tmp_path / 'tv'}")
    root = _classes(tmp_path / "h")
    (root / ".thumbnails").mkdir()
    Image.new("L", (8, 8)).save(root / ".thumbnails" / "x.png")
    (root / "a" / "._0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (root / "a" / ".thumbnails").mkdir()                # hidden inside a class folder, too
    for i in range(3):
        Image.new("L", (8, 8)).save(root / "a" / ".thumbnails" / f"{i}.png")
    tr, te = load_dataset(f"folder:{root}")
    assert tr.classes == ["a", "b"] and len(tr) + len(te) == 10
    _classes(tmp_path / "one" / "only", names=("x",))
    with pytest.raises(ValueError, match="1 class sub-folder.*one level too high"):
        load_dataset(f"folder:{tmp_path / 'one'}")
    (tmp_path / "flat").mkdir()                         # images, no class sub-folders
    Image.new("L", (8, 8)).save(tmp_path / "flat" / "x.png")
    with pytest.raises(DataNotFoundError, match="image folder") as e:
        load_dataset(f"folder:{tmp_path / 'flat'}")
    assert ".;" not in str(e.value) and "one sub-folder of images per class, each with images " \
        "(files ending in .jpg, .jpeg, .png" in str(e.value) and "remove it" not in str(e.value)
    for name in ("a", "b"):                             # class folders, no image in them
        (tmp_path / "notes" / name).mkdir(parents=True)
        (tmp_path / "notes" / name / "readme.txt").write_text("hi")
    with pytest.raises(DataNotFoundError, match=r"Found no valid file for the classes a, b; it "
                                                r"needs one sub-folder of images per class, "
                                                r"each with images \(files ending in \.jpg.*\): "
                                                r"add images to a class folder without any, or "
                                                r"remove it"):
        load_dataset(f"folder:{tmp_path / 'notes'}")
    with pytest.raises(DataNotFoundError, match=r"image folder .*x\.png is a file, not a folder"):
        load_dataset(f"folder:{tmp_path / 'flat' / 'x.png'}")


def test_damaged_files_are_named(tmp_path):
    root = _classes(tmp_path / "img")
    (root / "a" / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(ValueError, match="cut.png could not be read as an image"):
        load_dataset(f"folder:{root}")
    x = np.zeros((20, 28, 28), np.uint8)
    raw = write_mnist(tmp_path / "m", x, np.arange(20) % 10, x[:10], np.arange(10),
                      decompressed=False)
    data = (raw / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz could not be read"):
        load_dataset("mnist", tmp_path / "m")
    (tmp_path / "s").mkdir()
    write_svhn(tmp_path / "s", 10, 10)
    (tmp_path / "s" / "test_32x32.mat").write_text("<html>not found</html>")
    with pytest.raises(ValueError, match="test_32x32.mat could not be read"):
        load_dataset("svhn", tmp_path / "s")
    write_cifar10(tmp_path / "c", 10, 10)
    (tmp_path / "c" / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"<html>")
    with pytest.raises(ValueError, match="batch data_batch_3 .* could not be read"):
        load_dataset("cifar10", tmp_path / "c")


def test_labels_out_of_range_are_refused(tmp_path):
    x = np.zeros((20, 28, 28), np.uint8)
    write_mnist(tmp_path / "m", x, np.arange(20) % 12, x[:10], np.arange(10))
    with pytest.raises(ValueError, match=r"labels span 0\.\.11, not 0\.\.9"):
        load_dataset("mnist", tmp_path / "m")
    write_cifar10(tmp_path / "c", 10, 10, labels=lambda i, name, n: [11] * n)
    with pytest.raises(ValueError, match="not 0..9"):
        load_dataset("cifar10", tmp_path / "c")


class _RunsCode:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):                       # unpickling calls Path.touch(self.path)
        from pathlib import Path
        return Path.touch, (Path(self.path),)


def test_a_cifar10_batch_that_would_run_code_is_refused_unrun(tmp_path):
    """A CIFAR-10 batch is a pickle, which may name any function for the reader to call: a
    crafted one in a data folder is refused without calling it; batches written by Python 3's
    pickle (protocols 4 and 5, numpy's own reductions) still load."""
    import pickle

    folder = write_cifar10(tmp_path / "c", 10, 10)
    batch = folder / "data_batch_4"
    good = pickle.loads(batch.read_bytes(), encoding="bytes")
    for protocol in (4, 5):
        batch.write_bytes(pickle.dumps(good, protocol=protocol))
        assert len(load_dataset("cifar10", tmp_path / "c")[0]) == 50
    mark = tmp_path / "ran"
    for evil in (_RunsCode(mark), {**good, b"data": _RunsCode(mark)}):
        batch.write_bytes(pickle.dumps(evil, protocol=2))
        with pytest.raises(ValueError, match=r"CIFAR-10 batch data_batch_4 .*: it is a pickle "
                                             r"that names \S+, which a CIFAR-10 batch "
                                             r"does not hold \(not loaded: it could run code\)"):
            load_dataset("cifar10", tmp_path / "c")
        assert not mark.exists()
    batch.write_bytes(pickle.dumps([1, 2], protocol=2))
    with pytest.raises(ValueError, match=r"data_batch_4 .*: it holds a list, not the dict"):
        load_dataset("cifar10", tmp_path / "c")
    # the published files are Python 2 pickles naming numpy.core (numpy 2 writes numpy._core)
    from _formats import _python2_pickle
    _python2_pickle(good, batch)
    raw = batch.read_bytes()
    assert b"numpy._core.multiarray" in raw
    batch.write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    x, _ = load_dataset("cifar10", tmp_path / "c")
    first = good[b"data"][0].reshape(3, 32, 32)
    assert torch.equal(x.images[30], torch.as_tensor(first).float() / 127.5 - 1)


class _Call:                                    # pickles as a call of f(*args), then state
    def __init__(self, f, args, state=None):
        self.f, self.args, self.state = f, args, state

    def __reduce__(self):
        return (self.f, self.args) if self.state is None else (self.f, self.args, self.state)


def test_a_cifar10_batch_of_numpy_calls_with_crafted_arguments_is_refused(tmp_path):
    """Only the names a batch uses, called with crafted arguments (an object array over bytes
    of the file; a dtype whose saved flags say it holds no objects) would make numpy read
    pointers from the file (a crash, or worse): refused with one error. In a child process,
    so that a failure shows as one, not as a crashed test run."""
    import pickle
    import subprocess
    import sys
    from numpy._core import multiarray as ma

    obj = _Call(np.dtype, ("O", False, True))
    good = {b"data": np.zeros((10, 3072), np.uint8), b"labels": list(range(10))}
    crafted = [{**good, b"labels": [_Call(np.ndarray, ((1,), obj, b"A" * 8))] * 10},
               {**good, b"data": _Call(ma.scalar, (_Call(np.dtype, ("V8", False, True),
                                                         (3, "|", None, ("a",), {"a": (obj, 0)},
                                                          8, 1, 0)), b"A" * 8))}]
    for i, batch in enumerate(crafted):
        folder = write_cifar10(tmp_path / str(i), 10, 10)
        (folder / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=2))
    code = ("import sys\nfrom ganaug.data import load_dataset\nfor root in sys.argv[1:]:\n"
            "    try:\n        load_dataset('cifar10', root)\n        print('loaded')\n"
            "    except ValueError as e:\n        print(e)\n")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "0"), str(tmp_path / "1")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and "it calls numpy.ndarray, which a CIFAR-10 batch does not" in lines[0]
    assert "it holds an array that is not of a plain number type" in lines[1]


def test_cifar10_and_svhn_files_of_another_layout_are_refused(tmp_path):
    """Files that unpickle / load but do not hold what the published ones do: HWC or float
    CIFAR-10 data would read as scrambled or black images, a label too many in one batch
    would shift every later batch's labels; float SVHN pixels would read as black."""
    import pickle

    from _formats import _python2_pickle
    sio = pytest.importorskip("scipy.io")
    folder = write_cifar10(tmp_path / "c", 10, 10)
    batch = folder / "data_batch_2"
    good = pickle.loads(batch.read_bytes(), encoding="bytes")
    for change, message in (
            ({b"data": good[b"data"].reshape(10, 32, 32, 3)}, r"uint8 of shape \(10, 32, 32, 3\)"),
            ({b"data": good[b"data"] / 255.0}, r"float64 of shape \(10, 3072\), not uint8"),
            ({b"labels": good[b"labels"] + [3]}, r"10 images and labels of shape \(11,\)"),
            ({b"labels": [0.5] * 10}, r"float64\), not one whole-number label")):
        _python2_pickle({**good, **change}, batch)
        with pytest.raises(ValueError, match=r"CIFAR-10 batch data_batch_2 .*" + message):
            load_dataset("cifar10", tmp_path / "c")
    (tmp_path / "s").mkdir()
    write_svhn(tmp_path / "s", 4, 4)
    mat = tmp_path / "s" / "test_32x32.mat"
    m = sio.loadmat(mat)
    sio.savemat(mat, {"X": m["X"] / 255.0, "y": m["y"]})
    with pytest.raises(ValueError, match=r"test_32x32.mat: X is float64 .* not uint8 pixels"):
        load_dataset("svhn", tmp_path / "s")


def test_svhn_images_are_contiguous(tmp_path):
    write_svhn(tmp_path, 10, 10)
    tr, _ = load_dataset("svhn", tmp_path)
    assert tr.images.is_contiguous() and tr.images.view(10, -1).shape == (10, 3072)


def test_tilde_and_image_size_checks(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    x = np.zeros((20, 28, 28), np.uint8)
    write_mnist(tmp_path / "data", x, np.arange(20) % 10, x[:10], np.arange(10))
    tr, _ = load_dataset("mnist", "~/data")
    assert len(tr) == 20
    for name in ("digits", "svhn", "cifar10"):
        with pytest.raises(ValueError, match=r"leave image_size \(--image-size\) unset"):
            load_dataset(name, tmp_path, image_size=32)
    with pytest.raises(ValueError, match="positive whole number"):
        load_dataset(f"folder:{tmp_path}", image_size=0)


def test_subsets_and_splits_keep_transforms_and_take_masks():
    g = torch.Generator().manual_seed(0)
    data = ImageSet(torch.rand(20, 1, 4, 4, generator=g) * 2 - 1, torch.arange(20) % 2, ["x", "y"],
                    transform=lambda t: t + 10, target_transform=lambda y: y + 100)
    lab, unl = split_labeled(data, 3, seed=0)
    assert float(lab[0][0].min()) >= 9 and lab[0][1] >= 100 and unl.transform is data.transform
    mask = data.targets == 1
    sub = data.subset(mask)
    assert len(sub) == 10 and sub.targets.tolist() == [1] * 10
    with pytest.raises(ValueError, match="one entry per item"):
        data.subset(mask[:5])


def test_labels_one_past_the_range_are_refused(tmp_path):
    x = np.zeros((10, 28, 28), np.uint8)
    write_mnist(tmp_path / "m", x, np.arange(10) + 1, x[:2], np.arange(2))
    with pytest.raises(ValueError, match=r"labels span 1\.\.10, not 0\.\.9"):
        load_dataset("mnist", tmp_path / "m")
    (tmp_path / "s").mkdir()
    write_svhn(tmp_path / "s", 4, 4, labels=lambda split, n: [11] + [1] * (n - 1))
    with pytest.raises(ValueError, match=r"labels span 1\.\.11, not SVHN's 1\.\.10"):
        load_dataset("svhn", tmp_path / "s")


def test_folder_split_is_fixed_stratified_and_keeps_labels_with_images(tmp_path):
    for c, name in enumerate(("a", "b", "c")):
        (tmp_path / name).mkdir()
        for i in range(10):
            Image.new("L", (4, 4), 20 * c + i).save(tmp_path / name / f"{i}.png")
    tr, te = load_dataset(f"folder:{tmp_path}")
    tr2, te2 = load_dataset(f"folder:{tmp_path}")
    assert torch.equal(te.images, te2.images) and torch.equal(tr.targets, tr2.targets)
    assert torch.bincount(te.targets).tolist() == [2, 2, 2]
    values = [round((float(v) + 1) * 127.5) for v in torch.cat([tr.images, te.images])[:, 0, 0, 0]]
    assert sorted(values) == [20 * c + i for c in range(3) for i in range(10)]
    assert [v // 20 for v in values] == torch.cat([tr.targets, te.targets]).tolist()


def test_folder_train_and_test_are_read_as_they_are(tmp_path):
    rng = np.random.default_rng(0)
    pixels = {}
    for split in ("train", "test"):
        for c in ("a", "b"):
            (tmp_path / split / c).mkdir(parents=True)
            pixels[split, c] = rng.integers(0, 256, (4, 6, 3)).astype(np.uint8)
            Image.fromarray(pixels[split, c]).save(tmp_path / split / c / "0.png")
    tr, te = load_dataset(f"folder:{tmp_path}")
    assert tr.image_shape == (3, 4, 6)
    for s, split in ((tr, "train"), (te, "test")):
        expected = torch.as_tensor(pixels[split, "b"].transpose(2, 0, 1)).float() / 127.5 - 1
        assert torch.equal(s.images[1], expected) and s.targets.tolist() == [0, 1]
    (tmp_path / "test" / "b").rename(tmp_path / "test" / "c")
    with pytest.raises(ValueError, match="different classes"):
        load_dataset(f"folder:{tmp_path}")


def test_download_is_refused_where_nothing_is_downloaded(tmp_path):
    (tmp_path / "a").mkdir()
    for name, where in (("digits", "scikit-learn"), (f"folder:{tmp_path}", "its folder")):
        with pytest.raises(ValueError, match=f"read from {where} as it is, so leave download"):
            load_dataset(name, download=True)


def test_a_folder_too_small_for_its_stratified_split_names_the_class_and_the_fix(tmp_path):
    """scikit-learn's stratified split needs 2 images of every class and room for each
    class on both sides; what is too small is named, with what to do, not sklearn's words."""
    root = _classes(tmp_path / "one", names=("cat",))
    _classes(root, n=1, names=("dog",))
    with pytest.raises(ValueError, match=r"class 'dog' has a single image.* at least 2 images "
                                         r"of every class: add images, or divide them .*/train "
                                         r"and .*/test"):
        load_dataset(f"folder:{root}")
    few = _classes(tmp_path / "few", n=2, names=("a", "b", "c"))
    with pytest.raises(ValueError, match=r"6 images are too few .* 3 classes on both sides "
                                         r"\(4 train, 2 test images\): add images"):
        load_dataset(f"folder:{few}")
    _classes(tmp_path / "split" / "train", n=1)         # split by hand: one image is fine
    _classes(tmp_path / "split" / "test", n=1)
    tr, te = load_dataset(f"folder:{tmp_path / 'split'}")
    assert (len(tr), len(te)) == (2, 2)


def _mnist_files(root, n_train_labels=20):
    """MNIST's four files, 20 training and 10 test images; the raw folder."""
    rng = np.random.default_rng(0)
    return write_mnist(root, rng.integers(0, 256, (20, 28, 28)), np.arange(n_train_labels) % 10,
                       rng.integers(0, 256, (10, 28, 28)), np.arange(10) % 10)


# An IDX file of the wrong kind (a labels file where the images belong) is named as such,
# not as a file cut short.
def test_a_labels_file_in_place_of_the_images_is_not_an_idx_file_of_images(tmp_path):
    raw = _mnist_files(tmp_path)
    images = raw / "train-images-idx3-ubyte"
    images.write_bytes((raw / "train-labels-idx1-ubyte").read_bytes())
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte is not an IDX file of "
                                         r"3-dimensional uint8 data \(its first bytes are "
                                         r"00000801\)"):
        load_dataset("mnist", tmp_path)


# An IDX file longer than its header says (two files concatenated, say) is named, not
# left to numpy's reshape error.
def test_an_idx_file_with_bytes_past_its_data_is_named(tmp_path):
    raw = _mnist_files(tmp_path)
    f = raw / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes() + bytes(784))               # one image too many
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte holds 16464 bytes of data "
                                         r"where its header says \(20, 28, 28\)"):
        load_dataset("mnist", tmp_path)


# MNIST images and labels files of different lengths are named, with the fix.
def test_mnist_images_and_labels_of_different_counts_are_named(tmp_path):
    _mnist_files(tmp_path, n_train_labels=19)
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte: 20 images but 19 labels; "
                                         r"replace the files with MNIST's original ones"):
        load_dataset("mnist", tmp_path)


# SVHN's .mat stores digit 0 as label 10: a file with label 0 is not the published one.
def test_svhn_label_0_is_refused_as_not_the_published_range(tmp_path):
    pytest.importorskip("scipy.io")
    write_svhn(tmp_path, 4, 4, labels=lambda split, n: [0] + [1] * (n - 1))
    with pytest.raises(ValueError, match=r"labels span 0\.\.1, not SVHN's 1\.\.10"):
        load_dataset("svhn", tmp_path)


# SVHN labels that are not whole numbers would be truncated silently.
def test_svhn_fractional_labels_are_refused(tmp_path):
    sio = pytest.importorskip("scipy.io")
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        X = rng.integers(0, 256, (32, 32, 3, 4)).astype(np.uint8)
        sio.savemat(tmp_path / f"{split}_32x32.mat", {"X": X, "y": np.full((4, 1), 1.5)})
    with pytest.raises(ValueError, match=r"train_32x32.mat: X is uint8 and y float64, not uint8 "
                                         r"pixels and whole-number labels"):
        load_dataset("svhn", tmp_path)


# A cifar-10-batches-py folder without its test_batch is named, like a missing training batch.
def test_a_missing_cifar10_test_batch_is_named(tmp_path):
    folder = write_cifar10(tmp_path, 2, 2)
    (folder / "test_batch").unlink()
    with pytest.raises(DataNotFoundError, match="test_batch.*--download"):
        load_dataset("cifar10", tmp_path)


# A CIFAR-10 label below 0 is refused, not read as -1, ganaug's mark of an unlabeled image.
def test_negative_cifar10_labels_are_refused(tmp_path):
    write_cifar10(tmp_path, 3, 3, labels=lambda i, name, n: [-1] + [1] * (n - 1))
    with pytest.raises(ValueError, match=r"data_batch_1: labels span -1\.\.1, not 0\.\.9"):
        load_dataset("cifar10", tmp_path)


# 32-bit integer images with values past 16 bits are refused, not wrapped around in uint8.
def test_integer_images_past_16_bits_are_refused(tmp_path):
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(5):
            Image.fromarray(np.full((4, 4), 70000 + i, np.int32), mode="I").save(
                tmp_path / c / f"{i}.tif")
    with pytest.raises(ValueError, match=r"values 70000\.\.70000 are not 16-bit"):
        load_dataset(f"folder:{tmp_path}")


# `folder:` with no PATH is an unknown dataset, not the working directory.
def test_folder_without_a_path_is_refused(tmp_path, monkeypatch):
    _classes(tmp_path)                 # the working directory is a readable folder
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="unknown dataset 'folder:'"):
        load_dataset("folder:")
    with pytest.raises(ValueError, match="unknown dataset 'folder:'"):
        TrainConfig(dataset="folder:").resolved()


# image_size=True is not a size of 1 pixel.
def test_a_bool_image_size_is_refused(tmp_path):
    root = _classes(tmp_path)
    with pytest.raises(ValueError, match=r"must be a positive whole number of pixels, got True"):
        load_dataset(f"folder:{root}", image_size=True)


# load_dataset("folder:~/...") expands ~, as data roots do.
def test_folder_path_with_tilde(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    _classes(tmp_path / "imgs")
    tr, te = load_dataset("folder:~/imgs")
    assert tr.classes == ["a", "b"] and len(tr) + len(te) == 10


# Images below -1 are outside ganaug's range as much as images above 1.
def test_images_below_minus_one_are_refused():
    with pytest.raises(ValueError, match=r"images must be in \[-1, 1\], ganaug's range, got -2 "
                                         r"to 0"):
        ImageSet(torch.linspace(-2, 0, 32).view(2, 1, 4, 4), [0, 1], ["a", "b"])


# Images are stored as float32 whatever they come as (float64 numpy arrays, say).
def test_images_are_float32_whatever_their_dtype():
    data = ImageSet(np.zeros((3, 1, 4, 4)), [0, 1, 0], ["a", "b"])       # float64
    assert data.images.dtype == torch.float32
    assert data.subset(torch.tensor([0, 2])).images.dtype == torch.float32
    half = ImageSet(torch.zeros(2, 1, 4, 4, dtype=torch.float16), [0, 1], ["a", "b"])
    assert half.images.dtype == torch.float32


# ------------------------------------------------------------------ a test drive of own folders
def test_split_folders_are_found_whatever_the_case_of_their_names(tmp_path):
    """Train/ and Test/ (as Kaggle and Windows name them) are the splits, not two classes;
    Train/ with Val/ is refused as splits; train/ beside Train/ is ambiguous."""
    _classes(tmp_path / "tt" / "Train", "L", n=4, names=("a", "b", "c"))
    _classes(tmp_path / "tt" / "Test", "L", n=2, names=("a", "b", "c"))
    tr, te = load_dataset(f"folder:{tmp_path / 'tt'}")
    assert tr.classes == te.classes == ["a", "b", "c"] and (len(tr), len(te)) == (12, 6)
    _classes(tmp_path / "tv", names=("Train", "VAL"))
    with pytest.raises(ValueError, match=r"\(Train, VAL\) look like splits, not classes"):
        load_dataset(f"folder:{tmp_path / 'tv'}")
    _classes(tmp_path / "kg" / "Training", "L", n=4, names=("a", "b"))  # Kaggle's names
    _classes(tmp_path / "kg" / "Testing", "L", n=2, names=("a", "b"))
    tr, te = load_dataset(f"folder:{tmp_path / 'kg'}")
    assert tr.classes == ["a", "b"] and (len(tr), len(te)) == (8, 4)
    _classes(tmp_path / "tt" / "train", "L", n=4, names=("a", "b", "c"))
    if len({p.name for p in (tmp_path / "tt").iterdir()}) == 3:     # a case-sensitive disk
        with pytest.raises(ValueError, match=r"has Train/ and train/: keep one train split"):
            load_dataset(f"folder:{tmp_path / 'tt'}")


def test_different_train_and_test_classes_are_named(tmp_path):
    _classes(tmp_path / "train", names=("a", "b", "c"))
    _classes(tmp_path / "test", names=("a", "b", "d"))
    with pytest.raises(ValueError, match=r"different classes \(train/ alone has 'c'; test/ "
                                         r"alone has 'd'\): give both the same class "
                                         r"sub-folders"):
        load_dataset(f"folder:{tmp_path}")


def test_transparent_images_are_composited_onto_a_contrasting_background(tmp_path):
    """Ink stored only in the alpha channel (black RGB everywhere) is not lost: transparent
    pixels become white under dark ink and black under light ink, and the loader says so.
    Opaque RGBA images are read as they are, without a word."""
    ink = np.zeros((8, 8, 4), np.uint8)
    ink[2:6, 3, 3] = 255                                    # an opaque black stroke
    for c in ("a", "b"):
        (tmp_path / "t" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(ink).save(tmp_path / "t" / c / f"{i}.png")
    with pytest.warns(UserWarning, match=r"6 images of .* have transparent pixels: composited "
                                         r"onto a plain background"):
        tr, te = load_dataset(f"folder:{tmp_path / 't'}")
    img = torch.cat([tr.images, te.images])[0]
    assert img.shape == (3, 8, 8) and float(img.max()) == 1.0
    assert float(img[:, 2:6, 3].max()) == -1.0 and float((img == 1).float().mean()) == 1 - 4 / 64
    ink[2:6, 3, :3] = 255                                   # white ink: onto black instead
    for c in ("a", "b"):
        (tmp_path / "w" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(ink).save(tmp_path / "w" / c / f"{i}.png")
    with pytest.warns(UserWarning, match="white under dark content and black under light"):
        tr, _ = load_dataset(f"folder:{tmp_path / 'w'}")
    assert float(tr.images[0, :, 2:6, 3].min()) == 1.0 and float(tr.images[0].mean()) < -0.8
    opaque = np.full((8, 8, 4), 255, np.uint8)
    opaque[..., 0] = 40
    for c in ("a", "b"):
        (tmp_path / "o" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(opaque).save(tmp_path / "o" / c / f"{i}.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tr, _ = load_dataset(f"folder:{tmp_path / 'o'}")
    assert float(tr.images[0, 0].mean()) == pytest.approx(40 / 127.5 - 1)


def test_a_palette_image_of_grey_colours_is_grey(tmp_path):
    """A PNG optimiser's palette ("P") copy of a grey image keeps a grey folder grey (one
    such file made the whole folder RGB, and a 28x28 one then failed the conv pair's size
    rule); a palette of colours still makes it RGB."""
    root = _classes(tmp_path / "g", "L", value=100, size=28)
    Image.new("L", (28, 28), 100).convert("P").save(root / "a" / "p.png")
    assert Image.open(root / "a" / "p.png").mode == "P"
    tr, te = load_dataset(f"folder:{root}")
    assert tr.image_shape == (1, 28, 28)
    assert float(torch.cat([tr.images, te.images]).std()) == 0.0
    Image.new("RGB", (28, 28), (200, 10, 10)).convert("P").save(root / "b" / "p.png")
    assert load_dataset(f"folder:{root}")[0].image_shape == (3, 28, 28)


# Files named train/test beside the class folders are not split folders.
def test_files_named_train_and_test_are_not_split_folders(tmp_path):
    """A folder of classes with files called "train" and "test" (file lists, no extension)
    is read as a folder of classes: only sub-folders named train/test are splits."""
    root = _classes(tmp_path / "d", "L", n=5, names=("a", "b"))
    (root / "train").write_text("a/0.png\n")
    (root / "Test").write_text("b/0.png\n")
    tr, te = load_dataset(f"folder:{root}")
    assert tr.classes == te.classes == ["a", "b"] and len(tr) + len(te) == 10


def test_a_class_missing_from_test_is_named_on_the_train_side_alone(tmp_path):
    """A train/test class mismatch names only the side that has extra classes."""
    _classes(tmp_path / "train", names=("a", "b", "c"))
    _classes(tmp_path / "test", names=("a", "b"))
    with pytest.raises(ValueError, match=r"different classes \(train/ alone has 'c'\): give "
                                         r"both the same class sub-folders") as e:
        load_dataset(f"folder:{tmp_path}")
    assert "test/ alone" not in str(e.value)


def test_a_test_split_of_one_class_is_a_class_mismatch_not_a_folder_too_high(tmp_path):
    """train/{a,b} with test/{a}: the splits disagree, which the error says (it said "is
    --dataset folder:PATH one level too high?"), before any image is read."""
    _classes(tmp_path / "train", names=("a", "b"))
    _classes(tmp_path / "test", names=("a",))
    (tmp_path / "train" / "b" / "0.png").write_bytes(b"not an image")   # never opened
    with pytest.raises(ValueError, match=r"different classes \(train/ alone has 'b'\)"):
        load_dataset(f"folder:{tmp_path}")


# A grey PNG with a transparent colour (a tRNS key, no alpha channel) is composited too.
def test_a_transparent_colour_key_is_composited_like_an_alpha_channel(tmp_path):
    """Mode "L" with transparency=50: the grey-50 background is transparent and, under dark
    ink, becomes white (1.0), with the loader's warning; it is not read as grey 50."""
    a = np.full((8, 8), 50, np.uint8)
    a[2:6, 3] = 0                                           # dark ink, opaque
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(3):
            Image.fromarray(a, "L").save(tmp_path / c / f"{i}.png", transparency=50)
    with pytest.warns(UserWarning, match="6 images of .* have transparent pixels"):
        tr, te = load_dataset(f"folder:{tmp_path}")
    img = tr.images[0]
    assert float(img[:, 2:6, 3].max()) == -1.0
    assert float((img == 1).float().mean()) == 1 - 4 / 64


def test_a_fully_transparent_image_becomes_white(tmp_path):
    """A wholly transparent image (nothing shown) is composited onto white."""
    clear = np.zeros((8, 8, 4), np.uint8)                   # alpha 0 everywhere
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(3):
            Image.fromarray(clear).save(tmp_path / c / f"{i}.png")
    with pytest.warns(UserWarning, match="transparent pixels"):
        tr, te = load_dataset(f"folder:{tmp_path}")
    assert float(tr.images.min()) == 1.0 and float(te.images.min()) == 1.0


def test_the_transparency_warning_is_attributed_to_the_callers_line(tmp_path):
    """The transparent-pixels warning points at the caller's line, not at ganaug's loader."""
    ink = np.zeros((8, 8, 4), np.uint8)
    ink[2:6, 3, 3] = 255
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(3):
            Image.fromarray(ink).save(tmp_path / c / f"{i}.png")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        load_dataset(f"folder:{tmp_path}")
    got = [w for w in rec if "transparent pixels" in str(w.message)]
    assert len(got) == 1 and got[0].filename == __file__


def test_a_coloured_transparent_palette_entry_keeps_a_grey_folder_grey(tmp_path):
    """A grey palette image whose transparent entry is coloured is still grey."""
    root = _classes(tmp_path / "g", "L", value=100)
    im = Image.new("P", (8, 8), 0)
    im.putpalette([100, 100, 100, 255, 0, 0])               # grey, and red for "transparent"
    im.putpixel((0, 0), 1)
    im.save(root / "a" / "p.png", transparency=1)
    with pytest.warns(UserWarning, match="1 image of .* has transparent pixels"):
        tr, te = load_dataset(f"folder:{root}")
    assert tr.image_shape == (1, 8, 8)


def test_a_blue_palette_image_makes_the_folder_rgb(tmp_path):
    """A palette image of a colour whose red and green agree (but not blue) is colour."""
    root = _classes(tmp_path / "g", "L", value=100)
    Image.new("RGB", (8, 8), (10, 10, 200)).convert("P").save(root / "b" / "p.png")
    assert Image.open(root / "b" / "p.png").mode == "P"
    assert load_dataset(f"folder:{root}")[0].image_shape == (3, 8, 8)


def test_grey_train_reread_as_rgb_is_still_the_train_split(tmp_path):
    """A grey train/ re-read as RGB (because test/ has colour) keeps train/'s own images."""
    _classes(tmp_path / "train", "L", value=30, n=4)
    _classes(tmp_path / "test", "L", value=200, n=2)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / "test" / "a" / "rgb.png")
    tr, te = load_dataset(f"folder:{tmp_path}")
    assert tr.image_shape == te.image_shape == (3, 8, 8)
    assert (len(tr), len(te)) == (8, 5)
    assert torch.allclose(tr.images, torch.full_like(tr.images, 30 / 127.5 - 1))


def test_a_grey_palette_alpha_image_keeps_a_grey_folder_grey(tmp_path):
    """A grey palette image with an alpha channel ("PA", e.g. a TIFF) is grey."""
    root = _classes(tmp_path / "g", "L", value=100)
    im = Image.new("P", (8, 8), 0)
    im.putpalette([100, 100, 100])
    im = im.convert("PA")
    im.save(root / "a" / "pa.tif")
    assert Image.open(root / "a" / "pa.tif").mode == "PA"
    tr, te = load_dataset(f"folder:{root}")
    assert tr.image_shape == (1, 8, 8)
    values = torch.cat([tr.images, te.images]).unique()
    assert len(values) == 1 and float(values[0]) == pytest.approx(100 / 127.5 - 1)


_X = np.random.default_rng(0).integers(0, 256, (10, 3072)).astype(np.uint8)


def test_big_endian_labels_read_as_their_values():
    """The CIFAR-10 safe unpickler rebuilds what numpy's own pickles hold: big-endian arrays,
    Fortran-ordered arrays (protocol 2 and protocol 5), numpy scalars inside lists."""
    y = np.arange(10).astype(">i8")
    _, got = _read_cifar_batch(pickle.dumps({b"data": _X, b"labels": y}, protocol=2))
    assert got.tolist() == list(range(10))


@pytest.mark.parametrize("protocol", [2, 5])
def test_a_fortran_ordered_data_array_reads_as_its_values(protocol):
    x = np.asfortranarray(_X)
    assert not x.flags.c_contiguous
    got, _ = _read_cifar_batch(pickle.dumps({b"data": x, b"labels": list(range(10))},
                                            protocol=protocol))
    assert np.array_equal(got.reshape(10, 3072), _X)


def test_labels_as_a_list_of_numpy_ints_load():
    y = [np.int64(i) for i in range(10)]
    _, got = _read_cifar_batch(pickle.dumps({b"data": _X, b"labels": y}, protocol=2))
    assert got.tolist() == list(range(10))


def test_a_dataset_name_with_an_underscore_is_named():
    with pytest.raises(ValueError, match=r"unknown dataset 'CIFAR_10' \(did you mean "
                                         r"'cifar10'\?\)"):
        check_dataset_name("CIFAR_10")


def test_a_torchvision_root_holding_the_cifar10_archive_alone_is_named(tmp_path):
    (tmp_path / "tv").mkdir()
    (tmp_path / "tv" / "cifar-10-python.tar.gz").write_bytes(b"")
    with pytest.raises(ValueError, match=r"is a torchvision root holding cifar10: pass "
                                         r"--dataset cifar10 --data-root"):
        check_dataset_name(str(tmp_path / "tv"))


def test_a_torchvision_root_under_the_home_tilde_is_named(tmp_path, monkeypatch):
    (tmp_path / "tv" / "MNIST").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ValueError, match=r"\(~/tv is a torchvision root holding mnist: pass "
                                         r"--dataset mnist --data-root ~/tv\)"):
        check_dataset_name("~/tv")
