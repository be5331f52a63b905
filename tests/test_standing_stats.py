"""CLSGAN.standing_statistics and TrainConfig.standing_stats: the averaged generator's
BatchNorm statistics re-estimated on its own samples (BigGAN's standing statistics)."""
import pytest
import torch
import torch.nn.functional as F

from ganaug import CLSGAN, TrainConfig
from ganaug.step import _derive_seed

from _tiny import CONV, FAST, _run, _same_state, colour, only_bn_stats_differ

SMALL = {"g_hidden": [16, 8], "d_hidden": [8]}


def _model(**options):
    torch.manual_seed(0)
    return CLSGAN((1, 4, 4), 3, "mlp", noise_dim=5, **{**SMALL, **options})


def test_the_statistics_are_those_of_the_generators_own_samples():
    model = _model()
    G = model.generator_ema
    bn = G.net[1]
    bn.running_mean.fill_(7.0)                     # stale statistics, to be replaced
    rng = torch.get_rng_state()
    assert model.standing_statistics(samples=60, batch_size=20, seed=4)
    assert torch.equal(torch.get_rng_state(), rng)             # the global RNG: not drawn
    assert not G.training and bn.momentum == 0.1               # put back
    # the draws it makes: the batch order, then each batch's noise, from one seeded generator
    g = torch.Generator().manual_seed(4)
    batches = torch.randperm(60, generator=g).split(20)
    labels = torch.arange(60) % 3                              # balanced: 20 of each class
    pre = []                                                   # the first BatchNorm's input
    for idx in batches:
        z = torch.rand(20, 5, generator=g) * 2 - 1
        pre.append(G.net[0](torch.cat([z, F.one_hot(labels[idx], 3).float()], 1)))
    torch.testing.assert_close(bn.running_mean, torch.cat(pre).mean(0))
    torch.testing.assert_close(bn.running_var, torch.stack([p.var(0) for p in pre]).mean(0))

    again = _model()
    again.standing_statistics(samples=60, batch_size=20, seed=4)
    assert all(torch.equal(a, b) for a, b in zip(G.buffers(), again.generator_ema.buffers()))
    assert torch.equal(model.generator.net[1].running_mean, torch.zeros(16))   # the raw one:
                                                                               # untouched


def test_a_generator_without_batchnorm_is_left_alone_and_bad_counts_are_refused():
    model = _model(g_norm="none")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert not model.standing_statistics(samples=10)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="samples must be an integer of at least 2, got 1"):
        _model().standing_statistics(samples=1)
    with pytest.raises(ValueError, match="batch_size must be an integer of at least 2"):
        _model().standing_statistics(samples=10, batch_size=1)


def test_too_few_images_per_class_warn():
    """Fewer than 5 images per class make noisy statistics (on digits 2 images left 14% of
    the samples on their label): a StandingStatsWarning; 5 per class and more, none."""
    import warnings

    from ganaug import StandingStatsWarning
    with pytest.warns(StandingStatsWarning, match=r"from 14 images for 3 classes: .* use at "
                                                  r"least 15, e.g. 2048"):
        _model().standing_statistics(samples=14)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _model().standing_statistics(samples=15)
        _model(g_norm="none").standing_statistics(samples=2)     # no BatchNorm: nothing to do


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_training_is_unchanged_and_the_sampler_gets_its_own_statistics(tiny, arch):
    """Only the EMA generator's BatchNorm buffers differ with standing_stats: the losses and
    every weight are the same; the buffers are what standing_statistics makes of the other
    run's average after the last epoch. The conv generator has BatchNorm1d and 2d."""
    data, kw = (tiny, FAST) if arch == "mlp" else (colour(), CONV)
    on, off = _run(data, **kw, standing_stats=50), _run(data, **kw)
    # the sampler's statistics change its samples, so each epoch's diversity reading too
    only_bn_stats_differ(on, off, "generator_ema", ignore=("seconds", "diversity"))
    off.model.standing_statistics(50, 2 * kw["batch_size"], _derive_seed(0, kw["epochs"] - 1, 3))
    assert _same_state(on, off)


def test_a_resumed_run_with_standing_stats_equals_one_that_never_stopped(tiny, tmp_path):
    whole = _run(tiny, tmp_path / "whole", epochs=3, standing_stats=40)
    _run(tiny, tmp_path / "part", epochs=2, standing_stats=40)
    resumed = _run(tiny, tmp_path / "part", True, epochs=3, standing_stats=40)
    assert _same_state(whole, resumed)


@pytest.mark.parametrize("value", [1, -5, True, 2.5, "20000"])
def test_standing_stats_must_be_zero_or_a_count_of_at_least_two(value):
    with pytest.raises(ValueError, match="standing_stats is a number of generated images"):
        TrainConfig(standing_stats=value).resolved()


def test_standing_stats_is_refused_without_a_generator_or_its_batchnorm():
    with pytest.raises(ValueError, match="standing_stats re-estimates the generator's"):
        TrainConfig(objective="supervised", standing_stats=100).resolved()
    with pytest.raises(ValueError, match="g_norm='none' builds it without BatchNorm"):
        TrainConfig(standing_stats=100, net_options={"g_norm": "none"}).resolved()
    TrainConfig(net_options={"g_norm": "none"}).resolved()       # without the option: fine


def test_runs_saved_before_the_keys_existed_resume_as_they_trained():
    old = TrainConfig.from_dict({"seed": 3})
    assert old.recalibrate_bn is False and old.standing_stats == 0
