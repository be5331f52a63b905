"""benchmarks/cifar_subset.py: the team's CIFAR-10 subset (.npz) written as an image folder
that ganaug's folder loader reads back bit for bit; bad input fails before anything is
written. Runs on small generated .npz files, not on the real subset."""
import numpy as np
import pytest
import torch

from ganaug import load_dataset

import _bench  # noqa: F401  (puts benchmarks/ on sys.path)
import cifar_subset  # noqa: E402


def _write_source(folder, n_train=30, n_test=20, seed=0, **override):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        y = np.arange(n) % 10
        rng.shuffle(y)
        arrays[split] = (x, y)
        kw = {"x": x, "y": y, **override.get(split, {})}
        np.savez(folder / cifar_subset.FILES[split], **kw)
    return arrays


def test_the_folder_reads_back_every_pixel_and_label(tmp_path):
    arrays = _write_source(tmp_path / "src")
    counts = cifar_subset.write_folder(tmp_path / "src", tmp_path / "out")
    assert counts == {"train": 30, "test": 20}
    train, test = load_dataset(f"folder:{tmp_path / 'out'}")
    assert train.classes == list(cifar_subset.CLASSES)
    for data, (x, y) in ((train, arrays["train"]), (test, arrays["test"])):
        # the folder loader reads class by class, files in name order (= source order)
        order = np.concatenate([np.flatnonzero(y == c) for c in range(10)])
        want = torch.as_tensor(x[order]).permute(0, 3, 1, 2).float() / 127.5 - 1
        assert torch.equal(data.targets, torch.as_tensor(y[order]))
        assert torch.allclose(data.images, want, atol=1e-6)


def test_an_existing_output_is_refused(tmp_path):
    _write_source(tmp_path / "src")
    (tmp_path / "out").mkdir()
    with pytest.raises(FileExistsError, match="exists"):
        cifar_subset.write_folder(tmp_path / "src", tmp_path / "out")


@pytest.mark.parametrize("override, match", [
    ({"train": {"y": np.full(30, 10)}}, r"labels must be in 0\.\.9"),
    ({"test": {"x": np.zeros((20, 28, 28, 3), np.uint8)}}, r"\(N, 32, 32, 3\) uint8"),
    ({"train": {"x": np.zeros((30, 32, 32, 3), np.float32)}}, r"\(N, 32, 32, 3\) uint8"),
    ({"test": {"y": np.zeros(19, np.int64)}}, "20 integer labels"),
])
def test_bad_arrays_fail_before_anything_is_written(tmp_path, override, match):
    _write_source(tmp_path / "src", **override)
    with pytest.raises(ValueError, match=match):
        cifar_subset.write_folder(tmp_path / "src", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]   # no OUT, no temporary


def test_a_missing_source_names_the_files(tmp_path):
    with pytest.raises(SystemExit, match="train_first4000.npz"):
        cifar_subset.main([str(tmp_path / "out"), "--source", str(tmp_path / "none")])
    assert not (tmp_path / "out").exists()


def test_an_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    _write_source(tmp_path / "src")
    from PIL import Image
    calls = {"n": 0}
    save = Image.Image.save

    def fail_late(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 25:
            raise KeyboardInterrupt
        return save(self, *a, **k)

    monkeypatch.setattr(Image.Image, "save", fail_late)
    with pytest.raises(KeyboardInterrupt):
        cifar_subset.write_folder(tmp_path / "src", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
