"""TrainConfig.unlabeled_ratio: each step's unlabeled part is that many times the labeled
batch, every unlabeled image with its own fake partner, label-prior class and (with the
consistency term) second view; refused where no unlabeled image is used."""
import pytest
import torch

from ganaug import TrainConfig
from ganaug.cli import main

from _tiny import FAST, check_reproduced_and_resumed, first_draw


def test_the_batch_holds_ratio_times_as_many_unlabeled_rows(tiny):
    cfg = TrainConfig(**FAST, unlabeled_ratio=3, translate=1, consistency=1.0,
                      mode_seeking=1.0).resolved()
    b, nz = first_draw(tiny, cfg)
    bs = cfg.batch_size
    assert b.n == bs and len(b.x) == len(b.y_gen) == len(b.y_crit) == 4 * bs
    assert (b.y_crit[:bs] >= 0).all() and (b.y_crit[bs:] == -1).all()
    assert ((b.y_gen[bs:] >= 0) & (b.y_gen[bs:] < 4)).all()      # label-prior classes
    assert b.x_view.shape == b.x[bs:].shape
    for z in (nz.z_f, nz.z, nz.z2):                # one fake per real row
        assert z.shape == (4 * bs, cfg.noise_dim)
    assert nz.eps.shape == (4 * bs,)               # zero-gp: one interpolate per pair
    # the labeled rows are the ratio-1 run's: only the unlabeled stream draws more (the
    # shifts are drawn for the whole batch at once, so the images compare unshifted)
    b1, _ = first_draw(tiny, TrainConfig(**FAST, translate=1).resolved())
    assert torch.equal(b1.y_crit[:bs], b.y_crit[:bs])
    b3, _ = first_draw(tiny, TrainConfig(**FAST, unlabeled_ratio=3, translate=0).resolved())
    b1, _ = first_draw(tiny, TrainConfig(**FAST, translate=0).resolved())
    assert torch.equal(b1.y_crit[:bs], b3.y_crit[:bs]) and torch.equal(b1.x[:bs], b3.x[:bs])


def test_a_larger_unlabeled_part_trains_reproducibly_and_resumes_exactly(tiny, tmp_path):
    check_reproduced_and_resumed(tiny, tmp_path, unlabeled_ratio=2)


@pytest.mark.parametrize("kw,message", [
    (dict(unlabeled_ratio=0), "unlabeled_ratio must be a positive whole number"),
    (dict(unlabeled_ratio=1.5), "unlabeled_ratio must be a positive whole number"),
    (dict(unlabeled_ratio=2, objective="cls"), "objective 'cls' uses no unlabeled images"),
])
def test_bad_or_useless_ratios_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kw).resolved()


def test_the_flag_reaches_the_config(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--unlabeled-ratio", "2", "--out", str(out),
                 "--quiet", "--no-tensorboard"]) in (0, None)
    import json
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["unlabeled_ratio"] == 2
