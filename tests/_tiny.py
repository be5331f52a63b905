"""A short training run on the ``tiny`` fixture's images, shared by the training tests."""
import torch

from ganaug import TrainConfig, build_model, train
from ganaug.data import ImageSet, split_labeled

# The loss network's noise layers on (build_model leaves them off for sscls, the default
# objective) so that the training tests cover the RNG they draw from: reproducibility,
# resume, the consistency teacher, several processes.
FAST = dict(epochs=2, batch_size=8, labels_per_class=4,
            net_options={"d_hidden": [32, 32], "g_hidden": [32],
                         "input_noise": 0.15, "hidden_noise": 0.3})
CONV = dict(epochs=1, batch_size=4, labels_per_class=2, arch="conv",
            net_options={"g_width": 32, "d_width": 8})


def colour() -> ImageSet:
    """12 random 16x16 colour images, 3 classes (for the conv pair, with CONV's settings)."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat(4)
    return ImageSet(torch.rand(12, 3, 16, 16, generator=g) * 2 - 1, y, ["r", "g", "b"])


def _run(tiny, out=None, resume=False, *, log=None, on_epoch=None, started=None, **kw):
    """Train on ``tiny`` with FAST's settings overridden by ``kw`` (``log``, ``on_epoch`` and
    ``started`` go to train()); the TrainState."""
    cfg = TrainConfig(**{**FAST, **kw})
    lab, unl = split_labeled(tiny, cfg.labels_per_class, cfg.data_seed)
    model = build_model(cfg.resolved(), tiny)
    return train(model, lab, unl, cfg, test=tiny, out=out, resume=resume, progress=False,
                 log=log or (lambda s: None), on_epoch=on_epoch, started=started)


def first_draw(tiny, cfg, generator_step=True):
    """The first (batch, noise) the training loop draws on ``tiny`` with the resolved ``cfg``
    (data generator seeded 0, one process, on the CPU)."""
    from ganaug.step import _Draws, _Shard
    lab, unl = split_labeled(tiny, cfg.labels_per_class, cfg.data_seed)
    return _Draws(cfg, lab.images, lab.targets, lab.targets, unl.images,
                  torch.Generator().manual_seed(0), _Shard(), cfg.noise_dim, True,
                  torch.device("cpu")).next(generator_step)


def _same_state(a, b) -> bool:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def only_bn_stats_differ(on, off, net: str, ignore=("seconds",)) -> None:
    """Runs ``on`` and ``off`` trained alike (the same per-epoch records but the keys in
    ``ignore``), and their states differ in the BatchNorm running statistics of the model's
    ``net`` (e.g. ``"generator_ema"``) alone, and do differ there."""
    drop = lambda h: [{k: v for k, v in r.items() if k not in ignore} for r in h]  # noqa: E731
    assert drop(on.history) == drop(off.history)
    s_on, s_off = on.model.state_dict(), off.model.state_dict()
    stats = [k for k in s_on if k.startswith(net + ".") and k.rsplit(".", 1)[1]
             in ("running_mean", "running_var", "num_batches_tracked")]
    assert stats
    assert all(torch.equal(s_on[k], s_off[k]) for k in s_on if k not in stats)
    assert not all(torch.equal(s_on[k], s_off[k]) for k in stats)


def check_reproduced_and_resumed(tiny, tmp_path, part: int = 2, full: int = 4,
                                 base: dict | None = None, **kw):
    """Settings ``kw`` change training (from ``base``); two runs with them and one seed are
    identical; a run stopped after ``part`` epochs and resumed to ``full`` equals one that
    never stopped (its weights and its per-epoch records but the clock). Returns (the run
    with ``base`` alone, the run with ``kw`` too)."""
    plain = _run(tiny, seed=1, **(base or {}))
    kw = {**(base or {}), **kw}
    a, b = _run(tiny, seed=1, **kw), _run(tiny, seed=1, **kw)
    assert _same_state(a, b)
    assert a.history[-1]["d_loss"] != plain.history[-1]["d_loss"]
    whole = _run(tiny, out=tmp_path / "full", epochs=full, **kw)
    _run(tiny, out=tmp_path / "part", epochs=part, **kw)
    resumed = _run(tiny, out=tmp_path / "part", epochs=full, resume=True, **kw)
    assert _same_state(whole, resumed)
    clock = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert clock(whole.history) == clock(resumed.history)
    return plain, a
