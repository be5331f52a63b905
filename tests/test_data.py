"""Loaders (on small files written in each dataset's exact on-disk format) and splits."""
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ganaug.data import DataNotFoundError, ImageSet, load_dataset, split_labeled, \
    split_with_validation
from ganaug.data.sources import DIGITS_TEST_FRACTION

from _formats import write_cifar10, write_mnist, write_svhn
from conftest import SHARED_DATA


def test_digits_split_is_fixed_stratified_and_in_range():
    tr, te = load_dataset("digits")
    tr2, te2 = load_dataset("digits")
    assert len(tr) == 1347 and len(te) == 450
    assert torch.equal(tr.images, tr2.images) and torch.equal(te.targets, te2.targets)
    assert tr.image_shape == (1, 8, 8) and tr.images.min() >= -1 and tr.images.max() <= 1
    frac = torch.bincount(te.targets) / torch.bincount(torch.cat([tr.targets, te.targets]))
    assert torch.allclose(frac, torch.full((10,), DIGITS_TEST_FRACTION), atol=0.02)


def test_split_is_class_balanced_seeded_and_marks_unlabeled(tiny):
    lab, unl = split_labeled(tiny, 3, seed=5)
    assert lab.class_counts() == [3, 3, 3, 3]
    assert len(unl) == len(tiny) - 12 and (unl.targets == -1).all()
    lab2, _ = split_labeled(tiny, 3, seed=5)
    lab3, _ = split_labeled(tiny, 3, seed=6)
    assert torch.equal(lab.images, lab2.images)
    assert not torch.equal(lab.images, lab3.images)
    # every image is in exactly one of the two parts (the tiny images are all distinct),
    # and the labeled ones keep their labels
    label_of = {im.numpy().tobytes(): int(t) for im, t in zip(tiny.images, tiny.targets)}
    keys = [[im.numpy().tobytes() for im in part.images] for part in (lab, unl)]
    assert len(label_of) == len(tiny) and set(keys[0]).isdisjoint(keys[1])
    assert sorted(keys[0] + keys[1]) == sorted(label_of)
    assert [label_of[k] for k in keys[0]] == lab.targets.tolist()


def test_split_errors(tiny):
    with pytest.raises(ValueError, match="positive"):
        split_labeled(tiny, 0)
    with pytest.raises(ValueError, match="more than class 'a' has"):
        split_labeled(tiny, 13)
    full, none = split_labeled(tiny, None)
    assert full is tiny and none is None


def test_imageset_is_torchvision_like(tiny):
    x, y = tiny[3]
    assert x.shape == (1, 8, 8) and isinstance(y, int)
    assert tiny.classes == ["a", "b", "c", "d"] and len(tiny.targets) == 48
    with pytest.raises(ValueError, match="NCHW"):
        ImageSet(torch.zeros(3, 8, 8), torch.zeros(3), ["x"])


@pytest.mark.parametrize("images,targets,match", [
    (torch.zeros(2, 8, 8, 3), [0, 1], r"shape \(2, 8, 8, 3\), which looks like NHWC \(channels "
                                      r"last\): pass images.permute\(0, 3, 1, 2\)"),
    (torch.zeros(2, 1, 8, 8), [[0], [1]], r"2 images need one target each .* got targets of "
                                          r"shape \(2, 1\)"),
    (torch.zeros(2, 1, 8, 8), [0, 1, 1], r"got targets of shape \(3,\)"),
    (torch.zeros(2, 1, 8, 8), [0.0, 1.5], "targets must be whole class ids"),
    (torch.zeros(2, 1, 8, 8), [0, 2], r"targets must be class ids in \[0, 2\) \(one per name "
                                      r"in classes\) or -1 \(unlabeled\), got 0 to 2"),
    (torch.zeros(2, 1, 8, 8), [-2, 1], r"got -2 to 1"),
    (torch.full((2, 1, 8, 8), 255.0), [0, 1], r"images must be in \[-1, 1\], ganaug's range, got "
                                              r"255 to 255: scale them \(e.g. x / 127.5 - 1"),
])
def test_imageset_refuses_what_would_fail_or_mislead_later(images, targets, match):
    with pytest.raises(ValueError, match=match):
        ImageSet(images, targets, ["a", "b"])


def test_imageset_takes_numpy_arrays_and_whole_float_targets():
    import numpy as np
    data = ImageSet(np.zeros((3, 1, 4, 4), np.float32), np.array([0.0, 1.0, -1.0]), ["a", "b"])
    assert data.images.dtype == torch.float32 and data.targets.tolist() == [0, 1, -1]
    assert data.class_counts() == [1, 1]


def test_unknown_dataset_and_missing_data(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet")
    for name in ("mnist", "svhn", "cifar10"):
        with pytest.raises(DataNotFoundError, match=str(tmp_path)) as e:
            load_dataset(name, tmp_path)
        assert "--download" in str(e.value)
    assert list(tmp_path.iterdir()) == []   # nothing written while looking


def test_mnist_loader_reads_the_idx_format_and_pads(tmp_path):
    rng = np.random.default_rng(0)
    write_mnist(tmp_path, rng.integers(0, 256, (20, 28, 28)), np.arange(20) % 10,
                rng.integers(0, 256, (10, 28, 28)), np.arange(10) % 10)
    tr, te = load_dataset("mnist", tmp_path)
    assert len(tr) == 20 and len(te) == 10 and tr.image_shape == (1, 28, 28)
    assert tr.targets.tolist() == [i % 10 for i in range(20)]
    tr32, _ = load_dataset("mnist", tmp_path, image_size=32)
    assert tr32.image_shape == (1, 32, 32)
    assert torch.equal(tr32.images[:, :, 2:30, 2:30], tr.images)
    assert (tr32.images[:, :, :2] == -1).all()


def test_mnist_loader_reads_the_published_gz_files_alone(tmp_path):
    """The four .gz files as MNIST publishes them are enough (nothing is unpacked on disk),
    and give the same data as their decompressed copies."""
    rng = np.random.default_rng(1)
    args = (rng.integers(0, 256, (20, 28, 28)), np.arange(20) % 10,
            rng.integers(0, 256, (10, 28, 28)), (np.arange(10) + 3) % 10)
    raw = write_mnist(tmp_path / "gz", *args, decompressed=False)
    write_mnist(tmp_path / "both", *args)
    assert sorted(f.suffix for f in raw.iterdir()) == [".gz"] * 4
    for a, b in zip(load_dataset("mnist", tmp_path / "gz"), load_dataset("mnist", tmp_path / "both")):
        assert torch.equal(a.images, b.images) and torch.equal(a.targets, b.targets)
    assert sorted(f.suffix for f in raw.iterdir()) == [".gz"] * 4


def test_mnist_loader_reads_torchvisions_former_processed_files(tmp_path):
    """torchvision before 0.8 kept MNIST as MNIST/processed/{training,test}.pt (and still
    reads them, never downloading while they are there): the same data as the IDX files."""
    rng = np.random.default_rng(2)
    args = (rng.integers(0, 256, (20, 28, 28)), np.arange(20) % 10,
            rng.integers(0, 256, (10, 28, 28)), (np.arange(10) + 3) % 10)
    write_mnist(tmp_path / "raw", *args)
    processed = tmp_path / "old" / "MNIST" / "processed"
    processed.mkdir(parents=True)
    for name, (x, y) in (("training.pt", args[:2]), ("test.pt", args[2:])):
        torch.save((torch.from_numpy(x.astype(np.uint8)), torch.from_numpy(y.astype(np.int64))),
                   processed / name)
    for a, b in zip(load_dataset("mnist", tmp_path / "old"), load_dataset("mnist", tmp_path / "raw")):
        assert torch.equal(a.images, b.images) and torch.equal(a.targets, b.targets)
    torch.save({"not": "a pair"}, processed / "test.pt")
    with pytest.raises(ValueError, match=r"test.pt could not be read as torchvision's MNIST file"
                                         r".*delete the MNIST/processed folder and put MNIST's "
                                         r"four raw files in MNIST/raw, or pass --download"):
        load_dataset("mnist", tmp_path / "old")
    (processed / "test.pt").unlink()
    with pytest.raises(DataNotFoundError, match="t10k-images-idx3-ubyte"):
        load_dataset("mnist", tmp_path / "old")


def test_a_data_root_one_level_too_deep_gets_the_right_one(tmp_path):
    """--data-root pointed at MNIST/raw/ or cifar-10-batches-py/ themselves: the error names
    the root that holds them."""
    rng = np.random.default_rng(3)
    raw = write_mnist(tmp_path, rng.integers(0, 256, (4, 28, 28)), np.arange(4),
                      rng.integers(0, 256, (2, 28, 28)), np.arange(2))
    for wrong in (raw, raw.parent):
        with pytest.raises(DataNotFoundError, match=f"pass --data-root {tmp_path.resolve()},"):
            load_dataset("mnist", wrong)
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "train-images-idx3-ubyte.gz").write_bytes(b"")
    with pytest.raises(DataNotFoundError, match=f"move them into {other / 'MNIST' / 'raw'}"):
        load_dataset("mnist", other)
    folder = write_cifar10(tmp_path / "c", 2, 2)
    with pytest.raises(DataNotFoundError, match=f"pass --data-root {(tmp_path / 'c').resolve()},"):
        load_dataset("cifar10", folder)


def test_mnist_loader_names_a_damaged_file(tmp_path):
    rng = np.random.default_rng(2)
    raw = write_mnist(tmp_path, rng.integers(0, 256, (20, 28, 28)), np.arange(20) % 10,
                      rng.integers(0, 256, (10, 28, 28)), np.arange(10) % 10)
    f = raw / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-5])                  # cut short
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*cut short"):
        load_dataset("mnist", tmp_path)
    f.write_bytes(b"<html>not found</html>")            # e.g. an error page saved by hand
    with pytest.raises(ValueError, match="not an IDX file"):
        load_dataset("mnist", tmp_path)
    (raw / "t10k-labels-idx1-ubyte").unlink()
    (raw / "t10k-labels-idx1-ubyte.gz").unlink()
    f.unlink()                                          # the .gz is still there: read it
    with pytest.raises(DataNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_dataset("mnist", tmp_path)


def test_svhn_loader_reads_the_mat_format(tmp_path):
    sio = pytest.importorskip("scipy.io")
    write_svhn(tmp_path, 12, 6)                     # labels 1..10; 10 stands for digit 0
    tr, te = load_dataset("svhn", tmp_path)
    assert len(tr) == 12 and len(te) == 6 and tr.image_shape == (3, 32, 32)
    assert tr.targets.tolist() == [(i % 10 + 1) % 10 for i in range(12)]
    X = sio.loadmat(tmp_path / "train_32x32.mat")["X"]
    expected = torch.as_tensor(X[:, :, :, 4].transpose(2, 0, 1)).float() / 127.5 - 1
    torch.testing.assert_close(tr.images[4], expected)


def test_cifar10_loader_reads_the_pickled_batches(tmp_path):
    folder = write_cifar10(tmp_path, 4, 4, labels=lambda i, name, n: [i, i, 9, 0])
    tr, te = load_dataset("cifar10", tmp_path)
    assert len(tr) == 20 and len(te) == 4 and tr.image_shape == (3, 32, 32)
    assert tr.classes[0] == "airplane" and te.targets.tolist() == [5, 5, 9, 0]
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataNotFoundError, match="data_batch_3"):
        load_dataset("cifar10", tmp_path)


def test_cifar10_loader_reads_the_published_archive_without_unpacking(tmp_path):
    """``cifar-10-python.tar.gz`` as CIFAR-10 publishes it is enough; a damaged one is named."""
    import tarfile
    folder = write_cifar10(tmp_path / "unpacked", 4, 3)
    expected = load_dataset("cifar10", tmp_path / "unpacked")
    (tmp_path / "packed").mkdir()
    archive = tmp_path / "packed" / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    got = load_dataset("cifar10", tmp_path / "packed")
    for a, b in zip(got, expected):
        assert torch.equal(a.images, b.images) and torch.equal(a.targets, b.targets)
    assert sorted(f.name for f in (tmp_path / "packed").iterdir()) == [archive.name]
    archive.write_bytes(archive.read_bytes()[:200])     # cut short
    with pytest.raises(ValueError, match="cifar-10-python.tar.gz.*corrupt"):
        load_dataset("cifar10", tmp_path / "packed")
    with tarfile.open(archive, "w:gz") as tar:          # some other archive
        tar.add(folder / "test_batch", arcname="cifar-10-batches-py/test_batch")
    with pytest.raises(ValueError, match="lacks data_batch_1"):
        load_dataset("cifar10", tmp_path / "packed")


def test_image_folder(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        for i in range(5):
            Image.fromarray(rng.integers(0, 256, (12, 12, 3)).astype(np.uint8)).save(tmp_path / c / f"{i}.png")
    tr, te = load_dataset(f"folder:{tmp_path}", image_size=8)
    assert tr.classes == ["cat", "dog"] and len(tr) == 8 and len(te) == 2
    assert tr.image_shape == (3, 8, 8)
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "cat" / "big.png")
    with pytest.raises(ValueError, match="--image-size"):
        load_dataset(f"folder:{tmp_path}")
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'nope'}")


@pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").is_dir(), reason="real MNIST not present")
def test_real_mnist_loads():
    tr, te = load_dataset("mnist", SHARED_DATA)
    assert len(tr) == 60000 and len(te) == 10000
    assert tr.class_counts()[1] == 6742


def test_digits_are_sklearns_images_and_labels_in_their_order():
    from sklearn.datasets import load_digits
    d = load_digits()
    expected = torch.as_tensor(d.images, dtype=torch.float32).unsqueeze(1) / 8 - 1
    where = {im.numpy().tobytes(): i for i, im in enumerate(expected)}
    tr, te = load_dataset("digits")
    idx = [[where[im.numpy().tobytes()] for im in s.images] for s in (tr, te)]
    assert sorted(idx[0] + idx[1]) == list(range(len(expected)))
    for s, i in zip((tr, te), idx):
        assert i == sorted(i) and s.targets.tolist() == d.target[i].tolist()
    assert float(tr.images.min()) == -1 and float(tr.images.max()) == 1


def test_split_takes_a_whole_class_and_counts_absent_classes(tiny):
    lab, unl = split_labeled(tiny, 12, seed=1)
    assert lab.class_counts() == [12] * 4 and unl is None
    three = ImageSet(tiny.images[:20], tiny.targets[:20] % 2, ["a", "b", "c"])
    assert three.class_counts() == [10, 10, 0]
    with pytest.raises(ValueError, match=r"class 'c' has no images at all .* add images of "
                                         r"every class .* or use labels_per_class 'all'"):
        split_labeled(three, 1)
    lab, unl = split_labeled(three, None)               # 'all', as the message says
    assert lab.class_counts() == [10, 10, 0] and unl is None


def test_mnist_pixels_are_read_row_by_row_and_only_padded(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (6, 28, 28))
    write_mnist(tmp_path, x, np.arange(6), x[:2], np.arange(2))
    tr, _ = load_dataset("mnist", tmp_path)
    assert torch.equal(tr.images[:, 0], torch.as_tensor(x, dtype=torch.float32) / 127.5 - 1)
    with pytest.raises(ValueError, match="image_size 20 is smaller than the images"):
        load_dataset("mnist", tmp_path, image_size=20)


def test_the_svhn_and_cifar10_test_files_read_alike_in_torchvision(tmp_path, monkeypatch):
    """The files tests/_formats.py writes are the published formats as torchvision reads
    them (its checksums of the real files aside): the same images and labels as ganaug's
    loaders, so the loader tests say something about the real data."""
    pytest.importorskip("scipy.io")
    import pickle
    import torchvision.datasets.cifar as tv_cifar
    import torchvision.datasets.svhn as tv_svhn
    for module in (tv_cifar, tv_svhn):
        monkeypatch.setattr(module, "check_integrity", lambda *a, **k: True)
    monkeypatch.setattr(tv_cifar.CIFAR10, "_check_integrity", lambda self: True)
    folder = write_cifar10(tmp_path / "c", 3, 4)
    with pytest.raises(UnicodeDecodeError):           # Python 2 pickles, as published
        pickle.loads((folder / "test_batch").read_bytes())
    (tmp_path / "s").mkdir()
    write_svhn(tmp_path / "s", 5, 4)
    for theirs, ours in (
            (lambda train: tv_cifar.CIFAR10(str(tmp_path / "c"), train=train), "cifar10"),
            (lambda train: tv_svhn.SVHN(str(tmp_path / "s"), "train" if train else "test"),
             "svhn")):
        for train, mine in zip((True, False), load_dataset(ours, tmp_path / ours[0])):
            ds = theirs(train)
            x = torch.as_tensor(ds.data)
            x = x.permute(0, 3, 1, 2) if ours == "cifar10" else x      # HWC vs CHW
            assert torch.equal(x.float() / 127.5 - 1, mine.images)
            assert list(map(int, ds.labels if ours == "svhn" else ds.targets)) == \
                mine.targets.tolist()
            if ours == "cifar10":
                assert ds.classes == mine.classes


def test_cifar10_batches_in_order_and_rows_channel_major(tmp_path):
    import pickle
    folder = write_cifar10(tmp_path, 3, 2)
    tr, _ = load_dataset("cifar10", tmp_path)
    assert tr.targets.tolist() == [i % 10 for i in range(15)]
    row = pickle.loads((folder / "data_batch_2").read_bytes(), encoding="bytes")[b"data"][1]
    expected = torch.as_tensor(row.reshape(3, 32, 32)).float() / 127.5 - 1
    assert torch.equal(tr.images[4], expected)


def _fake_download(monkeypatch, name, write):
    import torchvision.datasets as tvd
    calls = []

    def fake(root, **kw):
        calls.append(kw)
        write(Path(root), **kw)
    monkeypatch.setattr(tvd, name, fake)
    return calls


def test_download_fetches_what_is_missing(tmp_path, monkeypatch):
    pytest.importorskip("torchvision")
    pytest.importorskip("scipy.io")
    x = np.zeros((4, 28, 28), np.uint8)
    calls = _fake_download(monkeypatch, "MNIST", lambda root, **kw: write_mnist(
        root, x, np.arange(4), x[:2], np.arange(2)))
    tr, te = load_dataset("mnist", tmp_path / "m", download=True)
    assert len(tr) == 4 and len(te) == 2 and calls
    (tmp_path / "src").mkdir()
    src = write_svhn(tmp_path / "src", 3, 2)
    calls = _fake_download(monkeypatch, "SVHN", lambda root, split, download: shutil.copy(
        src / f"{split}_32x32.mat", root / f"{split}_32x32.mat"))
    (tmp_path / "s").mkdir()
    tr, te = load_dataset("svhn", tmp_path / "s", download=True)
    assert (len(tr), len(te)) == (3, 2) and [c["split"] for c in calls] == ["train", "test"]
    load_dataset("svhn", tmp_path / "s", download=True)
    assert len(calls) == 2
    calls = _fake_download(monkeypatch, "CIFAR10", lambda root, **kw: write_cifar10(root, 2, 1))
    tr, te = load_dataset("cifar10", tmp_path / "c", download=True)
    assert (len(tr), len(te)) == (10, 1) and len(calls) == 1


def test_download_refetches_an_incomplete_cifar10_folder(tmp_path, monkeypatch):
    """A cifar-10-batches-py folder missing a batch: --download fetches the archive again (and
    unpacks it over the folder) instead of asking for --download it was given; without
    --download the error says to pass it."""
    pytest.importorskip("torchvision")
    folder = write_cifar10(tmp_path, 2, 1)
    (folder / "data_batch_4").unlink()
    with pytest.raises(DataNotFoundError, match="data_batch_4.*--download"):
        load_dataset("cifar10", tmp_path)
    calls = _fake_download(monkeypatch, "CIFAR10", lambda root, **kw: write_cifar10(root, 2, 1))
    tr, te = load_dataset("cifar10", tmp_path, download=True)
    assert (len(tr), len(te)) == (10, 1) and len(calls) == 1
    load_dataset("cifar10", tmp_path, download=True)     # complete now: read as it is
    assert len(calls) == 1


# Each class's labeled images are drawn on their own: not the same positions in every class.
def test_each_class_draws_its_own_labeled_positions():
    # 4 classes of 12 images, each class in the same layout: a shared draw would pick the
    # same positions within every class
    y = torch.arange(4).repeat_interleave(12)
    x = torch.linspace(-1, 1, 48).view(48, 1, 1, 1).expand(48, 1, 2, 2).contiguous()
    data = ImageSet(x, y, list("abcd"))
    lab, _ = split_labeled(data, 3, seed=0)
    flat = data.images.flatten(1)
    where = [int((flat == im.flatten()).all(1).nonzero()) for im in lab.images]
    positions = {c: sorted(i - 12 * c for i, t in zip(where, lab.targets.tolist()) if t == c)
                 for c in range(4)}
    assert len({tuple(p) for p in positions.values()}) > 1, positions


# numpy integers (a sweep over np.arange) are labels per class as Python ints are.
def test_numpy_labels_per_class(tiny):
    lab, unl = split_labeled(tiny, np.int64(3), seed=5)
    ref, _ = split_labeled(tiny, 3, seed=5)
    assert lab.class_counts() == [3] * 4 and torch.equal(lab.images, ref.images)
    assert split_with_validation(tiny, np.int32(2), 1, seed=0)[2].class_counts() == [1] * 4


# labels_per_class=True is not 1 label per class.
def test_a_bool_labels_per_class_is_refused(tiny):
    with pytest.raises(ValueError, match=r"labels_per_class must be a positive int, or None "
                                         r"or 'all' \(every label\), got True"):
        split_labeled(tiny, True)


def test_labels_per_class_all_keeps_every_label(tiny):
    """'all', as TrainConfig and --labels-per-class take it (and an error message suggests),
    is None: every label kept."""
    lab, unl = split_labeled(tiny, "all")
    assert lab is tiny and unl is None
    assert split_with_validation(tiny, "all", 2)[2].class_counts() == [2] * 4


# The labeled part keeps the data's order, as the unlabeled and validation parts do.
def _where(part, data):
    flat = data.images.flatten(1)
    return [int((flat == x.flatten()).all(1).nonzero()) for x in part.images]


def test_every_part_of_the_split_keeps_the_datas_order(tiny):
    lab, unl, val = split_with_validation(tiny, 3, 2, seed=5)
    for part in (lab, unl, val):
        idx = _where(part, tiny)
        assert idx == sorted(idx)
        assert torch.equal(part.images, tiny.images[idx])


@pytest.mark.parametrize("name, dataset, where", [
    ("MNIST", "mnist", "MNIST/raw"), ("SVHN", "svhn", ""), ("CIFAR10", "cifar10",
                                                            "cifar-10-batches-py")])
def test_a_failed_download_is_one_error_and_leaves_nothing_behind(tmp_path, monkeypatch, name,
                                                                  dataset, where):
    """No internet: torchvision's RuntimeError (MNIST) or URLError (SVHN) becomes one error
    naming the dataset, the reason and the fix; the folders and the part-written file the
    attempt made are removed, and a file that was there before stays."""
    pytest.importorskip("torchvision")
    from urllib.error import URLError

    def fail(root, **kw):
        (root / where / "raw").mkdir(parents=True, exist_ok=True)      # its own folder
        (root / where / "raw" / "part.gz").write_bytes(b"\x1f\x8b")
        (root / "partial.tmp").write_bytes(b"x")                      # an archive beside it
        raise URLError("[Errno -2] Name or service not known") if name == "SVHN" else \
            RuntimeError(f"Error downloading {name}\nfile")
    _fake_download(monkeypatch, name, fail)
    fresh = tmp_path / "new" / "root"
    with pytest.raises(DataNotFoundError) as e:
        load_dataset(dataset, fresh, download=True)
    msg = str(e.value)
    assert f"downloading {name} failed" in msg and "\n" not in msg
    assert ("Name or service" if name == "SVHN" else f"Error downloading {name} file") in msg
    assert str(fresh / where) in msg and "leave --download unset" in msg
    assert not (tmp_path / "new").exists()              # the folders it made are gone too
    old = tmp_path / "old"
    (old / where).mkdir(parents=True)
    (old / where / "mine.gz").write_text("keep")
    (old / "other").mkdir()
    (old / "other" / "theirs.txt").write_text("keep")
    kept = sorted(old.rglob("*"))
    with pytest.raises(DataNotFoundError):
        load_dataset(dataset, old, download=True)
    assert sorted(old.rglob("*")) == kept


def test_a_processed_mnist_file_of_other_tensors_names_the_raw_files_fix(tmp_path):
    """A processed file that loads but holds other tensors gets the damaged file's fix."""
    from ganaug.data.sources import _read_mnist_processed
    path = tmp_path / "MNIST" / "processed" / "training.pt"
    path.parent.mkdir(parents=True)
    torch.save((torch.zeros(4, 28, 28), torch.zeros(4, dtype=torch.int64)), path)   # floats
    with pytest.raises(ValueError, match=r"does not hold uint8 images \(N, 28, 28\) and their "
                                         r"labels; delete the MNIST/processed folder and put "
                                         r"MNIST's four raw files in MNIST/raw, or pass "
                                         r"--download"):
        _read_mnist_processed(path)
