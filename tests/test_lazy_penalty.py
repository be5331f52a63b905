"""penalty_every: the gradient penalty on every k-th loss-network step, weighted k times."""
import pytest
import torch

from ganaug import TrainConfig, build_model
from ganaug import objectives as O
from ganaug.step import TrainStep, _loss_net_terms

from _tiny import FAST, _run, check_reproduced_and_resumed, first_draw

PEN = 3                                          # index of the penalty in the stacked terms


def _terms(tiny, penalize, **kw):
    """The loss-network terms of the first batch of a fresh model, with the noise layers'
    draws fixed, so that two calls differ only in ``penalize`` and ``kw``."""
    cfg = TrainConfig(**{**FAST, **kw}).resolved()
    torch.manual_seed(0)
    model = build_model(cfg, tiny)
    step = TrainStep(model, cfg, torch.device("cpu"))
    b, nz = first_draw(tiny, cfg)
    with torch.no_grad():
        x_f = step.nets.g(nz.z_f, b.y_gen)
    torch.manual_seed(1)
    return _loss_net_terms(step.obj, cfg, step.nets, b, x_f, step.ell, 1.0, nz.eps, penalize)


@pytest.mark.parametrize("lipschitz", ["zero-gp", "gp", "div"])
def test_the_penalty_is_weighted_k_times_or_skipped(tiny, lipschitz):
    every = _terms(tiny, True, lipschitz=lipschitz)
    lazy = _terms(tiny, True, lipschitz=lipschitz, penalty_every=4)
    skipped = _terms(tiny, False, lipschitz=lipschitz, penalty_every=4)
    assert every[PEN] > 0
    assert lazy[PEN].item() == pytest.approx(4 * every[PEN].item(), rel=1e-6)
    assert skipped[PEN] == 0
    others = [i for i in range(len(every)) if i != PEN]    # the other terms are untouched
    assert torch.equal(every[others], lazy[others]) and torch.equal(every[others],
                                                                    skipped[others])


def test_training_computes_the_penalty_on_every_kth_step(tiny, monkeypatch):
    """The penalty on steps 1, k + 1, 2k + 1, ...; with d_steps 2, G's update on steps 2, 4, ..."""
    calls, flags = [], []
    real = O.gradient_penalty
    monkeypatch.setattr(O, "gradient_penalty", lambda *a, **k: calls.append(1) or real(*a, **k))
    step_call = TrainStep.__call__

    def record(self, b, nz, gamma, decay, penalize=True):
        flags.append((penalize, nz.z is not None))
        return step_call(self, b, nz, gamma, decay, penalize)
    monkeypatch.setattr(TrainStep, "__call__", record)
    state = _run(tiny, epochs=2, penalty_every=4, d_steps=2)
    steps = state.history[-1]["step"]
    assert steps == 12 and len(calls) == 3        # steps 1, 5 and 9 (one in the 2nd epoch)
    assert flags == [(s % 4 == 1, s % 2 == 0) for s in range(1, 13)]
    calls.clear()
    _run(tiny, epochs=2)
    assert len(calls) == steps


def test_the_generator_losses_average_over_the_generator_steps(tiny, monkeypatch):
    """With d_steps 3 the generator updates on one step in three: g_loss and g_cond are the
    means over those steps (before, over every step: a third of them), the loss network's
    terms over every step."""
    rows = []
    step_call = TrainStep.__call__

    def record(self, b, nz, gamma, decay, penalize=True):
        out = step_call(self, b, nz, gamma, decay, penalize)
        rows.append((nz.z is not None, out.clone()))
        return out
    monkeypatch.setattr(TrainStep, "__call__", record)
    state = _run(tiny, epochs=1, objective="gan", d_steps=3)
    rec = state.history[0]
    g_rows = torch.stack([r for g, r in rows if g])
    assert len(rows) == 6 and len(g_rows) == 2
    assert rec["g_loss"] > 0 and rec["g_loss"] == pytest.approx(float(g_rows[:, 5].mean()),
                                                                rel=1e-6)
    assert rec["sup_loss"] == pytest.approx(float(torch.stack([r for _, r in rows])[:, 0].mean()),
                                            rel=1e-6)


def test_lazy_penalty_changes_training_trains_reproducibly_and_resumes_exactly(tiny, tmp_path):
    # 6 steps per epoch and k = 4: the penalised steps fall across the epoch boundary
    check_reproduced_and_resumed(tiny, tmp_path, part=1, full=3, penalty_every=4)


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "4"])
def test_penalty_every_must_be_a_positive_whole_number(bad):
    with pytest.raises(ValueError, match="penalty_every must be a whole number of steps >= 1"):
        TrainConfig(penalty_every=bad).resolved()


@pytest.mark.parametrize("lipschitz", ["none", "weight-decay", "clip", "spectral-norm"])
def test_penalty_every_needs_a_penalty(lipschitz):
    with pytest.raises(ValueError, match="use --lipschitz gp / zero-gp / div"):
        TrainConfig(lipschitz=lipschitz, penalty_every=2).resolved()


def test_old_runs_read_as_penalising_every_step():
    d = TrainConfig().to_dict()
    del d["penalty_every"]
    assert TrainConfig.from_dict(d).penalty_every == 1


def test_penalty_every_flag_and_its_error(tmp_path, capsys):
    from ganaug.cli import main
    assert main(["train", "--penalty-every", "0", "--out", str(tmp_path / "r")]) == 2
    assert "penalty_every must be a whole number" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
