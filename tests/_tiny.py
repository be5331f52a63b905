"""A short training run on the ``tiny`` fixture's images, shared by the training tests."""
from ganaug import TrainConfig, build_model, train
from ganaug.data import split_labeled

FAST = dict(epochs=2, batch_size=8, labels_per_class=4,
            net_options={"d_hidden": [32, 32], "g_hidden": [32]})


def _run(tiny, out=None, resume=False, **kw):
    """Train on ``tiny`` with FAST's settings overridden by ``kw``; the TrainState."""
    cfg = TrainConfig(**{**FAST, **kw})
    lab, unl = split_labeled(tiny, cfg.labels_per_class, cfg.data_seed)
    model = build_model(cfg.resolved(), tiny)
    return train(model, lab, unl, cfg, test=tiny, out=out, resume=resume, progress=False,
                 log=lambda s: None)
