import pytest
import torch

from ganaug import CLSGAN, CheckpointError


class Evil:
    """Any class: unpickling it would run arbitrary code paths."""


def test_predict_is_argmin_of_the_loss():
    torch.manual_seed(0)
    m = CLSGAN((1, 8, 8), 4, "mlp")
    x = torch.rand(10, 1, 8, 8) * 2 - 1
    losses = torch.stack([m.loss(x, torch.full((10,), c)) for c in range(4)], dim=1)
    assert torch.equal(m.predict(x), losses.argmin(dim=1))


def test_sampling_is_reproducible_labelled_and_in_range():
    m = CLSGAN((1, 8, 8), 4, "mlp")
    a, la = m.sample_per_class(3, seed=1)
    b, _ = m.sample_per_class(3, seed=1)
    c, _ = m.sample_per_class(3, seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (12, 1, 8, 8) and la.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert a.min() >= -1 and a.max() <= 1
    assert m(torch.tensor([1, 2])).shape == (2, 1, 8, 8)   # the model is a labels -> images sampler
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        m.sample(torch.tensor([4]))


def test_save_load_round_trip(tmp_path):
    m = CLSGAN((1, 8, 8), 4, "mlp", ["w", "x", "y", "z"], d_hidden=[16], g_hidden=[16])
    m.save(tmp_path / "m.pt")
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    assert raw["model"]["classes"] == ["w", "x", "y", "z"]
    m2 = CLSGAN.load(tmp_path / "m.pt")
    x = torch.rand(5, 1, 8, 8)
    assert torch.equal(m.activations(x), m2.activations(x))
    assert torch.equal(m.sample_per_class(2)[0], m2.sample_per_class(2)[0])


def test_bad_checkpoints(tmp_path):
    good = tmp_path / "good.pt"
    CLSGAN((1, 8, 8), 4, "mlp").save(good)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        CLSGAN.load(cut)

    evil = tmp_path / "evil.pt"
    torch.save({"format": "ganaug", "x": Evil()}, evil)
    with pytest.raises(CheckpointError, match="arbitrary Python objects"):
        CLSGAN.load(evil)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not a ganaug checkpoint"):
        CLSGAN.load(other)
