"""translate: random shifts of the real training images (data augmentation in the step)."""
import pytest
import torch

from ganaug import TrainConfig
from ganaug.step import shift_images

from _tiny import FAST, _run, check_reproduced_and_resumed, first_draw


def _shift_by_loops(x, dx, dy):
    """The definition, pixel by pixel: out[i, :, r, c] = x[i, :, clamp(r - dy), clamp(c - dx)]."""
    n, _, h, w = x.shape
    out = torch.empty_like(x)
    for i in range(n):
        for r in range(h):
            for c in range(w):
                rr = min(max(r - int(dy[i]), 0), h - 1)
                cc = min(max(c - int(dx[i]), 0), w - 1)
                out[i, :, r, c] = x[i, :, rr, cc]
    return out


def test_shift_images_matches_its_pixel_by_pixel_definition():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 5, 7, generator=g)
    dx = torch.tensor([0, 1, -1, 2, -2, 2])
    dy = torch.tensor([0, -2, 1, 2, 0, -1])
    assert torch.equal(shift_images(x, dx, dy, 2), _shift_by_loops(x, dx, dy))
    assert torch.equal(shift_images(x, torch.zeros(6, dtype=torch.long),
                                    torch.zeros(6, dtype=torch.long), 2), x)


def test_shift_images_keeps_channels_last():
    x = torch.rand(4, 3, 6, 6).contiguous(memory_format=torch.channels_last)
    d = torch.tensor([1, -1, 0, 1])
    out = shift_images(x, d, -d, 1)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, _shift_by_loops(x, d, -d))


def _first_batch(tiny, translate):
    return first_draw(tiny, TrainConfig(**{**FAST, "translate": translate}).resolved())


def test_translate_moves_real_images_only_and_leaves_every_other_draw_alone(tiny):
    (b0, nz0), (b2, nz2) = _first_batch(tiny, 0), _first_batch(tiny, 2)
    assert torch.equal(b0.y_crit, b2.y_crit) and torch.equal(b0.y_gen, b2.y_gen)
    for a, b in ((nz0.z_f, nz2.z_f), (nz0.eps, nz2.eps), (nz0.z, nz2.z)):
        assert torch.equal(a, b)
    assert not torch.equal(b0.x, b2.x)
    # every image is its untranslated self moved by at most 2 pixels each way
    drawn = []
    for orig, moved in zip(b0.x, b2.x):
        shifts = [(dx, dy) for dx in range(-2, 3) for dy in range(-2, 3)
                  if torch.equal(shift_images(orig[None], torch.tensor([dx]),
                                              torch.tensor([dy]), 2)[0], moved)]
        assert shifts, "a translated image is not a shift of the original"
        drawn += shifts
    # each image its own shift, dx drawn apart from dy, over the whole range -2 .. 2
    assert len(set(drawn)) > 1 and any(dx != dy for dx, dy in drawn)
    assert {d for s in drawn for d in s} == set(range(-2, 3))


def test_translate_changes_training_reproducibly_and_resumes_exactly(tiny, tmp_path):
    check_reproduced_and_resumed(tiny, tmp_path, translate=1)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_translate_must_be_a_whole_number_of_pixels(bad):
    with pytest.raises(ValueError, match="translate must be a non-negative whole number"):
        TrainConfig(translate=bad).resolved()


def test_translate_as_large_as_the_image_is_refused_before_any_work(tiny, tmp_path):
    with pytest.raises(ValueError, match="out of view"):
        _run(tiny, out=tmp_path / "run", translate=8)
    assert not (tmp_path / "run").exists()


def test_translate_flag_and_its_error(tmp_path, capsys):
    from ganaug.cli import main
    assert main(["train", "--translate", "-1", "--out", str(tmp_path / "r")]) == 2
    assert "translate must be a non-negative whole number" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
