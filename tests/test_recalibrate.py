"""recalibrate_batchnorm and TrainConfig.recalibrate_bn: the averaged loss network's
BatchNorm statistics re-estimated on the real training images after each epoch."""
import math

import pytest
import torch
from torch import nn

from ganaug import TrainConfig
from ganaug.data import split_labeled
from ganaug.nets import recalibrate_batchnorm
from ganaug.nets._layers import GaussianNoise
from ganaug.step import _derive_seed

from _tiny import CONV, _run, colour, only_bn_stats_differ


def _net():
    net = nn.Sequential(GaussianNoise(1.0), nn.BatchNorm1d(3), nn.Dropout(0.5))
    net[1].running_mean.fill_(7.0)                  # stale statistics to be replaced
    net[1].running_var.fill_(9.0)
    return net.train()


def test_the_statistics_are_the_images_own_with_noise_and_dropout_off():
    x = torch.randn(120, 3, generator=torch.Generator().manual_seed(0)) \
        * torch.tensor([1.0, 2.0, 3.0]) + torch.tensor([5.0, -1.0, 0.0])
    net = _net()
    rng = torch.get_rng_state()
    assert recalibrate_batchnorm(net, [x], batch_size=40, seed=3)
    bn = net[1]
    # three batches of 40 in the order of the seeded shuffle: the mean of their means is the
    # mean; the variance is the mean of their unbiased variances (noise of std 1 would add 1)
    batches = x[torch.randperm(120, generator=torch.Generator().manual_seed(3))].split(40)
    torch.testing.assert_close(bn.running_mean, x.mean(0))
    torch.testing.assert_close(bn.running_var, torch.stack([b.var(0) for b in batches]).mean(0))
    assert bn.momentum == 0.1 and all(m.training for m in net.modules())   # put back
    assert torch.equal(torch.get_rng_state(), rng)                          # not drawn from

    split = _net()                                  # parts taken together = one tensor
    recalibrate_batchnorm(split, [x[:50], x[50:]], batch_size=40, seed=3)
    torch.testing.assert_close(split[1].running_mean, bn.running_mean)   # rows in another
    torch.testing.assert_close(split[1].running_var, bn.running_var)     # order in a batch

    odd = _net()                                    # 121 rows: near-equal batches, none of 1
    assert recalibrate_batchnorm(odd, [torch.cat([x, x[:1]])], batch_size=120)


def test_a_net_without_batchnorm_is_left_alone():
    net = nn.Sequential(nn.Linear(3, 2), GaussianNoise(0.5))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert not recalibrate_batchnorm(net, [torch.randn(10, 3)], batch_size=4)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def _buffers(net):
    return list(net.buffers())                      # BatchNorm's: running mean, var, count


def test_training_is_unchanged_and_the_average_gets_the_real_images_statistics():
    """Only the EMA loss network's BatchNorm buffers differ with recalibrate_bn: the losses,
    both raw networks and every averaged weight are the same; the buffers are what
    recalibrate_batchnorm makes of the other run's average, from the real training images."""
    data = colour()
    two = {**CONV, "epochs": 2}
    on, off = _run(data, **two), _run(data, **two, recalibrate_bn=False)
    only_bn_stats_differ(on, off, "loss_net_ema", ignore=("seconds", "test_accuracy"))
    lab, unl = split_labeled(data, CONV["labels_per_class"], 0)
    recalibrate_batchnorm(off.model.loss_net_ema, [lab.images, unl.images],
                          2 * CONV["batch_size"], _derive_seed(0, 1, 2))
    assert all(torch.equal(a, b) for a, b in zip(_buffers(off.model.loss_net_ema),
                                                  _buffers(on.model.loss_net_ema)))
    assert math.isfinite(on.history[-1]["test_accuracy"])


def test_a_resumed_conv_run_equals_one_that_never_stopped(tmp_path):
    data = colour()
    whole = _run(data, tmp_path / "whole", **{**CONV, "epochs": 3})
    _run(data, tmp_path / "part", **{**CONV, "epochs": 2})
    resumed = _run(data, tmp_path / "part", True, **{**CONV, "epochs": 3})
    sa, sb = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    clock = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert clock(whole.history) == clock(resumed.history)


def test_recalibrate_bn_must_be_a_bool():
    with pytest.raises(ValueError, match="recalibrate_bn must be True or False, got 'yes'"):
        TrainConfig(recalibrate_bn="yes").resolved()
