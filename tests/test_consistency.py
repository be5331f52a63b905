"""consistency: the loss network's predictions on a second view of each unlabeled image."""
import math

import pytest
import torch

from ganaug import TrainConfig
from ganaug import objectives as O
from ganaug.step import shift_images

from _tiny import FAST, _run, check_reproduced_and_resumed, first_draw


def test_consistency_is_the_squared_distance_of_the_class_probabilities():
    a_s = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])     # softmax: (.5, .5), (.75, .25)
    a_t = torch.tensor([[math.log(3.0), 0.0], [math.log(3.0), 0.0]])
    assert O.consistency(a_s, a_t).tolist() == pytest.approx([2 * 0.25 ** 2, 0.0])
    # a shift of every activation changes no probability
    assert O.consistency(a_s + 5.0, a_s).abs().max() < 1e-6


def test_consistency_pushes_the_student_only():
    a_s = torch.randn(4, 3, requires_grad=True)
    a_t = torch.randn(4, 3, requires_grad=True)
    O.consistency(a_s, a_t).sum().backward()
    assert a_t.grad is None and a_s.grad is not None and a_s.grad.abs().sum() > 0


def test_consistency_needs_matching_shapes():
    with pytest.raises(ValueError, match="same shape"):
        O.consistency(torch.zeros(4, 3), torch.zeros(4, 2))


def _first_batch(tiny, **kw):
    return first_draw(tiny, TrainConfig(**{**FAST, **kw}).resolved())


@pytest.mark.parametrize("translate", [0, 2])
def test_the_second_view_leaves_every_other_draw_alone(tiny, translate):
    (b0, nz0), (b1, nz1) = (_first_batch(tiny, translate=translate),
                            _first_batch(tiny, translate=translate, consistency=1.0))
    assert b0.x_view is None
    assert torch.equal(b0.x, b1.x) and torch.equal(b0.y_crit, b1.y_crit)
    for a, b in ((nz0.z_f, nz1.z_f), (nz0.eps, nz1.eps), (nz0.z, nz1.z)):
        assert torch.equal(a, b)
    assert b1.x_view.shape == b1.x[b1.n:].shape
    if translate == 0:                           # the noise layers alone make the views differ
        assert torch.equal(b1.x_view, b1.x[b1.n:])
        return
    # each view is the same unlabeled image moved by its own shift of at most 2 pixels
    b_plain, _ = _first_batch(tiny)
    moved = lambda orig, img: [(dx, dy) for dx in range(-2, 3) for dy in range(-2, 3)  # noqa
                               if torch.equal(shift_images(orig[None], torch.tensor([dx]),
                                                           torch.tensor([dy]), 2)[0], img)]
    for orig, view in zip(b_plain.x[b_plain.n:], b1.x_view):
        assert moved(orig, view)
    assert not torch.equal(b1.x_view, b1.x[b1.n:])


def test_the_teachers(tiny):
    """ema: the weight average in eval mode (no noise: the same answer twice); net: the
    loss network in training mode, with fresh noise at every call."""
    from ganaug import build_model
    from ganaug.step import TrainStep
    cfg = TrainConfig(**{**FAST, "consistency": 1.0}).resolved()
    model = build_model(cfg, tiny)
    nets = TrainStep(model, cfg, torch.device("cpu")).nets
    model.loss_net.train()
    x = tiny.images[:8]
    with torch.no_grad():
        assert torch.equal(nets.teacher(x, "ema"), model.loss_net_ema(x))
        assert torch.equal(nets.teacher(x, "ema"), nets.teacher(x, "ema"))
        assert not torch.equal(nets.teacher(x, "net"), nets.teacher(x, "net"))


@pytest.mark.parametrize("teacher", ["ema", "net"])
def test_consistency_trains_reproducibly_and_resumes_exactly(tiny, tmp_path, teacher):
    plain, a = check_reproduced_and_resumed(tiny, tmp_path, base={"translate": 1},
                                            consistency=3.0, consistency_teacher=teacher)
    assert plain.history[-1]["consistency"] == 0.0
    assert a.history[-1]["consistency"] > 0


def test_the_teacher_changes_training(tiny):
    a = _run(tiny, seed=1, consistency=3.0, consistency_teacher="ema")
    b = _run(tiny, seed=1, consistency=3.0, consistency_teacher="net")
    assert a.history[-1]["d_loss"] != b.history[-1]["d_loss"]


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), True, "2"])
def test_consistency_must_be_a_non_negative_number(bad):
    with pytest.raises(ValueError, match="consistency must be a non-negative number"):
        TrainConfig(consistency=bad).resolved()


def test_unknown_teacher_is_refused():
    with pytest.raises(ValueError, match="consistency_teacher must be one of ema, net"):
        TrainConfig(consistency=1.0, consistency_teacher="student").resolved()


def test_consistency_needs_unlabeled_images():
    with pytest.raises(ValueError, match="semi-supervised objective"):
        TrainConfig(objective="cls", consistency=1.0).resolved()


def test_consistency_flag_and_its_error(tmp_path, capsys):
    from ganaug.cli import main
    assert main(["train", "--consistency", "-1", "--out", str(tmp_path / "r")]) == 2
    assert "consistency must be a non-negative number" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_teacher_that_is_the_student_itself_is_refused(tiny, tmp_path):
    """teacher 'net' without a second view (translate 0) on a loss network without noise
    layers or dropout (the default job's) computes exactly 0: refused before any work;
    with noise layers or a shifted view it trains."""
    with pytest.raises(ValueError, match=r"consistency_teacher 'net' .* no noise layers or "
                                         r"dropout: the term is exactly 0.*--translate N"):
        _run(tiny, out=tmp_path / "r", consistency=3.0, consistency_teacher="net",
             net_options={**FAST.get("net_options", {}), "input_noise": 0.0,
                          "hidden_noise": 0.0})
    assert not (tmp_path / "r").exists()
    noisy = _run(tiny, consistency=3.0, consistency_teacher="net",
                 net_options={**FAST.get("net_options", {}), "input_noise": 0.0,
                              "hidden_noise": 0.1})
    assert noisy.history[-1]["consistency"] > 0
