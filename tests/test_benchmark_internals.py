"""What the benchmark scripts publish: every row of a table trains on the same split for the
same number of steps and is scored on the test set; the seeds, fractions, balances, class
weights and oversampling counts each row is given; what is averaged over seeds. The GAN
trainings, `ganaug train` runs and classifiers are stand-ins that record what they were
given, so nothing here trains for more than a few steps."""
import argparse
import json
import math
import sys
import types

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset, WeightedRandomSampler

from ganaug.data import ImageSet, split_labeled
from ganaug.train import TrainState

import _bench  # noqa: F401  (puts benchmarks/ on sys.path)
import _classifier  # noqa: E402
from _common import fmt  # noqa: E402


def _blobs(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(2).repeat(n // 2)
    return TensorDataset(torch.rand(n, 1, 2, 2, generator=g) + y.view(-1, 1, 1, 1), y)


class _Batches:
    """A batch_mixer that records every batch and leaves it as it is."""

    def __init__(self):
        self.seen = []

    def __call__(self, x, y):
        self.seen.append((x.clone(), y.clone()))
        return x, y


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_train_classifier_takes_its_steps_over_passes_reshuffled_by_the_seed():
    data = _blobs(10)                      # batches of 4, the last 2 images of a pass dropped
    rec, epochs = _Batches(), []
    model = _classifier.train_classifier(data, 2, 4, steps=5, seed=3, batch_size=4,
                                         batch_mixer=rec, on_epoch=epochs.append)
    assert len(rec.seen) == 5 and epochs == [0, 1, 2]
    assert all(len(y) == 4 for _, y in rec.seen)
    first = torch.cat([x for x, _ in rec.seen[:2]])
    assert not torch.equal(first, data.tensors[0][:8])                  # shuffled
    assert not torch.equal(first, torch.cat([x for x, _ in rec.seen[2:4]]))   # reshuffled
    again = _Batches()
    same = _classifier.train_classifier(data, 2, 4, steps=5, seed=3, batch_size=4,
                                        batch_mixer=again)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(rec.seen, again.seen))
    assert torch.equal(_weights(model), _weights(same))
    other = _Batches()
    _classifier.train_classifier(data, 2, 4, steps=5, seed=4, batch_size=4, batch_mixer=other)
    assert not torch.equal(rec.seen[0][0], other.seen[0][0])           # the seed's order
    # a set no larger than a batch is one (whole) batch per step, not none
    small = _Batches()
    _classifier.train_classifier(_blobs(4), 2, 4, steps=3, seed=0, batch_size=4,
                                 batch_mixer=small)
    assert [len(y) for _, y in small.seen] == [4, 4, 4]


def test_train_classifier_starts_from_the_seeds_weights_and_ends_in_eval_mode():
    data = _blobs(10)
    init = _classifier.train_classifier(data, 2, 4, steps=0, seed=5)
    torch.manual_seed(5)
    assert torch.equal(_weights(init), _weights(_classifier.SmallMLP(4, 2)))
    assert not torch.equal(_weights(init),
                           _weights(_classifier.train_classifier(data, 2, 4, steps=0, seed=6)))
    model = _classifier.train_classifier(data, 2, 4, steps=3, seed=5, batch_size=4)
    assert not model.training
    x = torch.rand(6, 1, 2, 2)
    assert torch.equal(model(x), model(x))                              # no dropout
    assert not torch.equal(_weights(model), _weights(init))             # it did train
    one = _classifier.train_classifier(data, 2, 4, steps=1, seed=5, batch_size=4)
    assert (_weights(one) - _weights(init)).abs().max() == pytest.approx(1e-3, rel=1e-3)  # Adam, lr 1e-3


def test_train_classifier_trains_in_train_mode_on_what_the_mixer_gives(monkeypatch):
    data = _blobs(10)
    plain = _classifier.train_classifier(data, 2, 4, steps=2, seed=0, batch_size=4)
    zeroed = _classifier.train_classifier(data, 2, 4, steps=2, seed=0, batch_size=4,
                                          batch_mixer=lambda x, y: (x * 0, y * 0))
    assert not torch.equal(_weights(plain), _weights(zeroed))
    modes = []

    class MLP(_classifier.SmallMLP):
        def forward(self, x):
            modes.append(self.training)
            return super().forward(x)

    monkeypatch.setattr(_classifier, "SmallMLP", MLP)
    _classifier.train_classifier(data, 2, 4, steps=2, seed=0, batch_size=4)
    assert modes == [True, True]                                        # dropout on


def test_train_classifier_draws_through_the_sampler_and_weights_the_loss(monkeypatch):
    data = _blobs(10)
    rec = _Batches()
    _classifier.train_classifier(data, 2, 4, steps=2, seed=0, batch_size=4,
                                 sampler=[9, 9, 9, 9, 0, 0, 0, 0], batch_mixer=rec)
    assert torch.equal(rec.seen[0][0], data.tensors[0][[9] * 4])
    assert torch.equal(rec.seen[1][0], data.tensors[0][[0] * 4])
    weights = []

    class Loss(nn.CrossEntropyLoss):
        def __init__(self, weight=None, **kw):
            weights.append(weight)
            super().__init__(weight=weight, **kw)

    monkeypatch.setattr(torch.nn, "CrossEntropyLoss", Loss)
    _classifier.train_classifier(data, 2, 4, steps=1, seed=0, class_weight=[2.0, 0.5])
    _classifier.train_classifier(data, 2, 4, steps=1, seed=0)
    assert weights[0].dtype == torch.float and weights[0].tolist() == [2.0, 0.5]
    assert weights[1] is None


def test_evaluate_scores_the_argmax_over_every_image():
    class Says(nn.Module):                 # the image's one value is the predicted class
        def forward(self, x):
            return nn.functional.one_hot(x.flatten(1)[:, 0].long(), 3).float()

    pred = torch.cat([torch.zeros(2048), torch.full((52,), 2.0)])
    targets = torch.cat([torch.zeros(2000), torch.ones(48), torch.full((52,), 2.0)]).long()
    m = _classifier.evaluate(Says(), pred.view(-1, 1, 1, 1), targets, 3)
    assert m["accuracy"] == pytest.approx(2052 / 2100)
    assert m["balanced_accuracy"] == pytest.approx(2 / 3)


def test_augment_overhead_times_equal_batches_after_the_warm_up(monkeypatch):
    """augment.step_overhead: both steps see the same final batch size; the first 5 rounds
    are warm-up; each time is the median of the timed rounds; the ratio is mixed over plain."""
    import augment
    sizes, clock = [], iter(range(10 ** 6))
    steps = iter([100.0] * 10 + [1.0, 3.0, 2.0, 5.0, 1.0, 4.0])   # per round: plain, mixed
    now = [0.0]

    def perf_counter():                     # even calls start a step, odd calls end it
        if next(clock) % 2:
            now[0] += next(steps)
        return now[0]

    class MLP(augment.SmallMLP):
        def forward(self, x):
            sizes.append(len(x))
            return super().forward(x)

    class Mixer:                            # 3 synthetic images per batch of 4
        def count(self, batch):
            return 3

        def __call__(self, x, y):
            return torch.cat([x, x[:3]]), torch.cat([y, y[:3]])

    monkeypatch.setattr(augment.time, "perf_counter", perf_counter)
    monkeypatch.setattr(augment, "SmallMLP", MLP)
    o = augment.step_overhead(Mixer(), (1, 2, 2), 2, "cpu", 0.5, batch=4, reps=3)
    assert sizes == [7] * 16
    assert (o["plain_ms"], o["mixed_ms"], o["overhead_ratio"]) == (1000.0, 4000.0, 4.0)
    assert o["synthetic_per_step"] == 3


def _sets():
    """A train set (12 images of each of 4 classes) and a test set unlike it (5 images)."""
    g = torch.Generator().manual_seed(0)
    tr = ImageSet(torch.rand(48, 1, 8, 8, generator=g) * 2 - 1, torch.arange(4).repeat(12),
                  list("abcd"))
    te = ImageSet(torch.rand(5, 1, 8, 8, generator=g) * 2 - 1, torch.tensor([0, 0, 1, 2, 3]),
                  list("abcd"))
    return tr, te


class _Gan:
    def predict(self, images):             # class 0 for everything
        return torch.zeros(len(images), dtype=torch.long)


def _stand_ins(monkeypatch, module, calls):
    """GAN training, the classifier and its evaluation replaced by recorders (a "model" is
    the number of its training call; its accuracy that number / 10, balanced / 100)."""
    gan = _Gan()
    monkeypatch.setattr(module, "build_model", lambda cfg, data: gan)

    def train(g, lab, unl, cfg, **kw):
        calls["train"].append((g, lab, unl, cfg))
        calls.setdefault("train_kw", []).append(kw)
        return TrainState(g, [], cfg, train_seconds=12.5)

    monkeypatch.setattr(module, "train", train)

    def clf(data, **kw):
        calls["clf"].append((data, kw))
        return len(calls["clf"])

    def evaluate(model, images, targets, C, device="cpu"):
        calls["eval"].append((images, targets, C))
        return {"accuracy": model / 10, "balanced_accuracy": model / 100,
                "macro_f1": model / 1000}

    monkeypatch.setattr(module, "train_classifier", clf)
    monkeypatch.setattr(module, "evaluate", evaluate)
    return gan


def _augment(monkeypatch, **over):
    import augment
    calls = {"train": [], "clf": [], "eval": [], "mix": [], "mixer": []}
    gan = _stand_ins(monkeypatch, augment, calls)

    class Mix:
        def __init__(self, real, sampler, *, fraction, seed, refresh_every, gate=None):
            if gate is not None:
                raise ValueError(f"quality gate {gate} could not fill class 'a'")
            calls["mix"].append(dict(real=real, sampler=sampler, fraction=fraction, seed=seed,
                                     refresh_every=refresh_every, mix=self))

        def set_epoch(self, epoch):
            pass

    class Mixer:
        def __init__(self, sampler, fraction, *, seed):
            calls["mixer"].append(dict(sampler=sampler, fraction=fraction, seed=seed))

    monkeypatch.setattr(augment, "SyntheticMix", Mix)
    monkeypatch.setattr(augment, "BatchMixer", Mixer)
    args = argparse.Namespace(**{**dict(gan_epochs=7, gan_epochs_mnist=2, gan_options={},
                                        clf_epochs=2, batch_size=5, fractions=[0.25, 0.5],
                                        gate=None, mixer_fraction=0.3, data_root="root",
                                        sampler_dir=None), **over})
    return augment, calls, gan, args


def test_augment_rows_share_the_labeled_split_the_steps_and_the_test_set(monkeypatch):
    augment, calls, gan, args = _augment(monkeypatch)
    tr, te = _sets()
    rows, mixer = augment.one_seed("digits", tr, te, 3, 5, args, "cpu")
    lab, unl = split_labeled(tr, 3, 0)          # the data seed is 0 whatever the seed
    (g, glab, gunl, cfg), = calls["train"]
    assert g is gan and torch.equal(glab.images, lab.images) and torch.equal(gunl.images, unl.images)
    assert (cfg.seed, cfg.labels_per_class, cfg.epochs) == (5, 3, 7)
    real = calls["clf"][0][0]
    assert torch.equal(real.tensors[0], lab.images) and torch.equal(real.tensors[1], lab.targets)
    steps = 2 * math.ceil(12 / 5)
    assert len(calls["clf"]) == 4
    for _, kw in calls["clf"]:
        assert (kw["steps"], kw["seed"], kw["batch_size"], kw["num_classes"],
                kw["in_features"]) == (steps, 5, 5, 4, 64)
    assert [c["fraction"] for c in calls["mix"]] == [0.25, 0.5]
    assert all(c["real"] is real and c["sampler"] is gan and c["seed"] == 5
               and c["refresh_every"] == 1 for c in calls["mix"])
    for (data, kw), c in zip(calls["clf"][1:3], calls["mix"]):   # trains on the mix, refreshed
        assert data is c["mix"] and kw["on_epoch"] == c["mix"].set_epoch
    assert calls["mixer"] == [dict(sampler=gan, fraction=0.3, seed=5)]
    assert calls["clf"][3][0] is real and calls["clf"][3][1]["batch_mixer"] is not None
    assert all(i is te.images and t is te.targets and c == 4 for i, t, c in calls["eval"])
    assert [(r["method"], r["fraction"], r["test_accuracy"], r["steps"], r["seed"])
            for r in rows] == [("labeled only", None, 0.1, steps, 5),
                               ("SyntheticMix f=0.25", 0.25, 0.2, steps, 5),
                               ("SyntheticMix f=0.5", 0.5, 0.3, steps, 5),
                               ("BatchMixer f=0.3", 0.3, 0.4, steps, 5)]
    assert all(r["gan_test_accuracy"] == pytest.approx(0.4) for r in rows)   # 2 of 5 are 0
    augment.one_seed("digits", tr, te, 3, 6, args, "cpu")                     # another seed
    assert torch.equal(calls["clf"][4][0].tensors[0], lab.images)


def test_augment_keeps_each_sampler_as_a_run_and_reuses_it(monkeypatch, tmp_path):
    """--sampler-dir: each CLS-GAN trains into DIR/DATASET-seed-S with the test set (so that
    `ganaug eval --run` can read it), resumes there when its checkpoint exists, and its
    recorded training time is the rows' gan_seconds; without it nothing is written."""
    augment, calls, gan, args = _augment(monkeypatch)
    tr, te = _sets()
    rows, _ = augment.one_seed("digits", tr, te, 3, 5, args, "cpu")
    assert calls["train_kw"][0]["out"] is None and calls["train_kw"][0]["test"] is None
    assert calls["train_kw"][0]["resume"] is False
    assert all(r["gan_seconds"] == 12.5 for r in rows)
    args.sampler_dir = str(tmp_path)
    augment.one_seed("mnist", tr, te, 3, 2, args, "cpu")
    kw = calls["train_kw"][1]
    assert kw["out"] == tmp_path / "mnist-seed-2" and kw["test"] is te and kw["resume"] is False
    (tmp_path / "mnist-seed-2").mkdir()
    (tmp_path / "mnist-seed-2" / "checkpoint.pt").write_bytes(b"")
    augment.one_seed("mnist", tr, te, 3, 2, args, "cpu")
    assert calls["train_kw"][2]["resume"] is True
    assert calls["train"][2][3].data_root == "root"


def test_augment_refuses_a_kept_sampler_with_other_settings_before_any_work(tmp_path,
                                                                              capsys):
    """A sampler kept by an earlier call with other --gan-options is an error that names the
    difference, before any training."""
    import augment
    from ganaug._io import atomic_torch_save

    args = argparse.Namespace(gan_epochs=3, gan_epochs_mnist=2, gan_options={"gamma": 0.5},
                              data_root="root", sampler_dir=str(tmp_path), device="cpu")
    old = augment.sampler_config("digits", 10, 1, args, "cpu").resolved()
    folder = tmp_path / "digits-seed-1"
    folder.mkdir()
    atomic_torch_save(folder / "checkpoint.pt",
                      {"format": "ganaug", "config": old.to_dict(), "epoch": 3, "model": {},
                       "state": {}, "step": 0, "history": [], "train_seconds": 0.0,
                       "opt_d": {}, "opt_g": {}})            # a run's keys (their values unread)
    p = argparse.ArgumentParser(prog="augment.py")
    augment.check_kept_samplers(p, ["digits"], [0, 1], args)     # the same settings: fine
    args.gan_options = {"gamma": 1.0}
    with pytest.raises(SystemExit) as e:
        augment.check_kept_samplers(p, ["digits"], [0, 1], args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--sampler-dir" in err and "gamma: 0.5 -> 1.0" in err and "digits-seed-1" in err
    (folder / "checkpoint.pt").write_bytes(b"not a checkpoint")        # a broken one, too
    with pytest.raises(SystemExit):
        augment.check_kept_samplers(p, ["digits"], [1], args)
    assert "--sampler-dir" in capsys.readouterr().err


def test_augment_mnist_epochs_and_a_failed_gate_keep_the_fraction(monkeypatch):
    augment, calls, gan, args = _augment(monkeypatch, gate=0.9)
    tr, te = _sets()
    augment.one_seed("mnist", tr, te, 3, 1, args, "cpu")
    assert calls["train"][0][3].epochs == 2
    assert [(c["fraction"], c["seed"]) for c in calls["mix"]] == [(0.25, 1), (0.5, 1)]


def _run_main(monkeypatch, module, argv):
    monkeypatch.setattr(sys, "argv", [f"{module.__name__}.py", *argv])
    module.main()


def test_augment_table_averages_each_method_over_the_seeds(monkeypatch, tmp_path, capsys):
    import augment
    tr, te = _sets()
    seen, over = [], []
    monkeypatch.setattr(augment, "load_or_skip", lambda name, root, skipped: (tr, te))

    def one_seed(name, tr_, te_, lpc, seed, args, device):
        seen.append((name, lpc, seed, args.fractions, args.mixer_fraction))
        rows = [{"dataset": name, "labels_per_class": lpc, "seed": seed, "method": m,
                 "test_accuracy": a + seed / 10, "gan_test_accuracy": 0.5 + seed / 100}
                for m, a in (("labeled only", 0.1), ("SyntheticMix f=0.25", 0.2))]
        return rows, f"mixer {seed}"

    def step_overhead(mixer, shape, C, device, fraction):
        over.append((mixer, shape, C, fraction))
        return {"batch": 256, "synthetic_per_step": 110, "plain_ms": 2.0, "mixed_ms": 3.0,
                "overhead_ratio": 1.5}

    monkeypatch.setattr(augment, "one_seed", one_seed)
    monkeypatch.setattr(augment, "step_overhead", step_overhead)
    _run_main(monkeypatch, augment, ["--datasets", "digits", "--seeds", "1,3", "--fractions",
                                     "0.25", "--mixer-fraction", "0.3", "--out", str(tmp_path)])
    assert seen == [("digits", 10, 1, [0.25], 0.3), ("digits", 10, 3, [0.25], 0.3)]
    assert over == [("mixer 3", (1, 8, 8), 4, 0.3)]
    out = capsys.readouterr().out
    assert f"| digits | 100 | labeled only | {fmt([0.2, 0.4])} |" in out
    assert f"| digits | 100 | SyntheticMix f=0.25 | {fmt([0.3, 0.5])} |" in out
    assert f"| digits | 100 | (the CLS-GAN's own classifier) | {fmt([0.51, 0.53])} |" in out
    assert "| digits | cpu | 256 | 110 | 2.00 | 3.00 | 1.50 |" in out
    assert len(json.loads((tmp_path / "augment.json").read_text())["rows"]) == 4
    # --table: two results files together, with each method's gain over the labels seed by seed
    first = tmp_path / "first.json"
    (tmp_path / "augment.json").rename(first)
    _run_main(monkeypatch, augment, ["--datasets", "digits", "--seeds", "0", "--fractions",
                                     "0.25", "--out", str(tmp_path)])
    capsys.readouterr()
    _run_main(monkeypatch, augment, ["--table", str(first), str(tmp_path / "augment.json")])
    out = capsys.readouterr().out
    assert f"| digits | 100 | labeled only | {fmt([0.1, 0.2, 0.4])} |  |  |" in out
    assert (f"| digits | 100 | SyntheticMix f=0.25 | {fmt([0.2, 0.3, 0.5])} | "
            f"{fmt([0.1, 0.1, 0.1])} | 3 of 3 |") in out
    with pytest.raises(SystemExit, match="seed 1 of digits .* is in the results twice"):
        _run_main(monkeypatch, augment, ["--table", str(first), str(first)])


def _imbalance(monkeypatch, smoted="SMOTED", gate=0.9, gate_mode="real"):
    import imbalance
    calls = {"train": [], "clf": [], "eval": [], "mix": [], "smote": [], "draws": []}
    gan = _stand_ins(monkeypatch, imbalance, calls)
    monkeypatch.setattr(imbalance, "evaluate_model", lambda g, test: 0.42)
    monkeypatch.setattr(imbalance, "smote", lambda x, y, seed:
                        calls["smote"].append((x, y, seed)) or smoted)

    class Mix:
        num_synthetic = 17

        def __init__(self, lt, sampler, *, balance, seed, gate=None, gate_mode=None):
            if gate is not None and gate > 0.5:
                raise ValueError(f"quality gate {gate} could not fill class 'a'")
            calls["mix"].append(dict(lt=lt, sampler=sampler, balance=balance, seed=seed,
                                     gate=gate, gate_mode=gate_mode, mix=self))

        def balanced_sampler(self, share, generator):
            calls["draws"].append((share, generator.get_state()))
            return f"draws {share}"

    monkeypatch.setattr(imbalance, "SyntheticMix", Mix)
    args = argparse.Namespace(clf_epochs=2, batch_size=8, gan_epochs=3, gate=gate,
                              gate_mode=gate_mode, gan_options={"balanced_labels": True},
                              real_shares=[0.5, 1.0])
    return imbalance, calls, gan, args


def test_imbalance_baselines_get_their_weights_counts_and_the_same_steps(monkeypatch):
    from ganaug import make_long_tailed
    imbalance, calls, gan, args = _imbalance(monkeypatch, gate=0.25, gate_mode="class")
    tr, te = _sets()
    rows = imbalance.one_setting("digits", tr, te, 4.0, 1, args, "cpu")
    lt = make_long_tailed(tr, 4.0, 1)
    counts = lt.class_counts()
    assert counts[0] == 12 and min(counts) == 3
    steps = 2 * math.ceil(4 * 12 / 8)
    assert len(calls["clf"]) == 7
    assert all(kw["steps"] == steps and kw["seed"] == 1 for _, kw in calls["clf"])
    real = calls["clf"][0][0]
    assert torch.equal(real.tensors[0], lt.images) and torch.equal(real.tensors[1], lt.targets)
    sampler = calls["clf"][1][1]["sampler"]
    assert calls["clf"][1][0] is real and isinstance(sampler, WeightedRandomSampler)
    assert sampler.num_samples == 4 * 12 and sampler.replacement
    assert torch.allclose(sampler.weights,
                          1 / torch.tensor(counts, dtype=torch.double)[lt.targets])
    assert list(sampler) == list(WeightedRandomSampler(
        sampler.weights, 48, generator=torch.Generator().manual_seed(1)))
    assert calls["clf"][2][0] is real
    assert calls["clf"][2][1]["class_weight"].tolist() == pytest.approx(
        [len(lt) / (4 * c) for c in counts])
    (x, y, seed), = calls["smote"]
    assert torch.equal(x, lt.images) and torch.equal(y, lt.targets) and seed == 1
    assert calls["clf"][3][0] == "SMOTED"
    (g, glt, unl, cfg), = calls["train"]
    assert g is gan and torch.equal(glt.images, lt.images) and unl is None
    assert (cfg.objective, cfg.labels_per_class, cfg.epochs, cfg.seed, cfg.balanced_labels) == (
        "cls", None, 3, 1, True)
    (mix,) = calls["mix"]
    assert torch.equal(mix["lt"].images, lt.images) and mix["sampler"] is gan
    assert (mix["balance"], mix["seed"], mix["gate"], mix["gate_mode"]) == ("max", 1, 0.25, "class")
    assert all(data is mix["mix"] for data, _ in calls["clf"][4:])      # the ganaug rows' data
    assert calls["clf"][4][1].get("sampler") is None
    assert [kw["sampler"] for _, kw in calls["clf"][5:]] == ["draws 0.5", "draws 1.0"]
    one = torch.Generator().manual_seed(1).get_state()
    assert [(s, torch.equal(st, one)) for s, st in calls["draws"]] == [(0.5, True), (1.0, True)]
    assert all(i is te.images and t is te.targets for i, t, _ in calls["eval"])
    assert [(r["method"], r["balanced_accuracy"], r["macro_f1"]) for r in rows] == [
        ("real", 0.01, 0.001), ("oversample", 0.02, 0.002), ("class-weighted", 0.03, 0.003),
        ("SMOTE", 0.04, 0.004), ("ganaug", 0.05, 0.005),
        ("ganaug, real share 0.5", 0.06, 0.006), ("ganaug, real share 1", 0.07, 0.007)]
    assert all((r["rho"], r["seed"], r["n_train"], r["class_counts"]) == (4.0, 1, len(lt), counts)
               for r in rows)
    assert [(r["gate"], r["gan_balanced_accuracy"], r["num_synthetic"]) for r in rows[4:]] == [
        (0.25, 0.42, 17)] * 3


def test_imbalance_without_smote_and_with_a_failed_gate(monkeypatch):
    imbalance, calls, gan, args = _imbalance(monkeypatch, smoted=None)
    tr, te = _sets()
    rows = imbalance.one_setting("digits", tr, te, 4.0, 2, args, "cpu")
    assert [r["method"] for r in rows] == ["real", "oversample", "class-weighted", "ganaug",
                                           "ganaug, real share 0.5", "ganaug, real share 1"]
    assert [(m["gate"], m["balance"], m["seed"]) for m in calls["mix"]] == [(None, "max", 2)]
    assert all(r["gate"] is None for r in rows[3:])


def test_imbalance_table_marks_the_best_baseline_per_rho(monkeypatch, tmp_path, capsys):
    import imbalance
    tr, te = _sets()
    seen = []
    monkeypatch.setattr(imbalance, "load_or_skip", lambda name, root, skipped: (tr, te))
    acc = {10.0: {"real": 0.5, "oversample": 0.7, "class-weighted": 0.6, "SMOTE": 0.65},
           100.0: {"real": 0.5, "oversample": 0.55, "class-weighted": 0.6}}

    def one_setting(name, tr_, te_, rho, seed, a, device):
        seen.append((name, rho, seed, a.gan_epochs, a.clf_epochs))
        return [{"dataset": name, "rho": rho, "seed": seed, "method": m,
                 "balanced_accuracy": v + seed / 100, "macro_f1": v / 2, "gan_balanced_accuracy": 0.3}
                for m, v in [*acc[rho].items(), ("ganaug", 0.8), ("ganaug, real share 0.5", 0.9)]]

    monkeypatch.setattr(imbalance, "one_setting", one_setting)
    # main() checks that imblearn (optional: the `bench` extra, not in CI) imports; the
    # stand-in one_setting never calls it
    monkeypatch.setitem(sys.modules, "imblearn", types.ModuleType("imblearn"))
    _run_main(monkeypatch, imbalance, [
        "--datasets", "digits,mnist", "--rhos", "10,100", "--seeds", "1,2", "--gan-epochs", "7",
        "--gan-epochs-mnist", "2", "--clf-epochs", "5", "--clf-epochs-mnist", "1",
        "--out", str(tmp_path)])
    assert seen == [(n, r, s, e, c) for n, e, c in (("digits", 7, 5), ("mnist", 2, 1))
                    for r in (10.0, 100.0) for s in (1, 2)]
    out = capsys.readouterr().out
    assert (f"| digits-LT | 10 | oversample (best baseline) | {fmt([0.71, 0.72])} "
            f"| {fmt([0.35, 0.35])} |") in out
    assert f"| digits-LT | 10 | class-weighted | {fmt([0.61, 0.62])} |" in out
    assert f"| digits-LT | 100 | class-weighted (best baseline) | {fmt([0.61, 0.62])} |" in out
    assert "| mnist-LT | 100 | SMOTE | not run (a class has one image) | |" in out
    assert f"| mnist-LT | 100 | ganaug, real share 0.5 | {fmt([0.91, 0.92])} |" in out
    assert out.count("(best baseline)") == 4


def test_conditioning_run_reports_its_own_weight_seed_and_eval(monkeypatch, tmp_path):
    import conditioning
    trains, evals = [], []

    def run_train(args, out, threads=None):
        trains.append((args, out, threads))
        return {"test_accuracy": 0.9, "epochs": 3, "train_seconds": 1.5}

    quality = {m: {"value": i + 1.0, "real_reference": i + 10.0}
               for i, m in enumerate(conditioning.METRICS)}

    def run(cmd, **kw):
        evals.append(cmd)
        return types.SimpleNamespace(returncode=0, stdout=json.dumps({"quality": quality}),
                                     stderr="")

    monkeypatch.setattr(conditioning, "run_train", run_train)
    monkeypatch.setattr(conditioning.subprocess, "run", run)
    row = conditioning.one_run(3.0, 2, ["--epochs", "1"], tmp_path, 1)
    (args, out, threads), = trains
    assert args == ["--seed", "2", "--g-cond-weight", "3.0", "--epochs", "1"] and threads == 1
    assert evals[0][-4:] == ["eval", "--run", str(out), "--json"]
    assert (row["g_cond_weight"], row["seed"], row["test_accuracy"], row["epochs"]) == (3.0, 2, 0.9, 3)
    assert row["tstr_accuracy"] == 1.0 and row["recall"] == 5.0
    assert row["intra_class_fid_real_reference"] == 11.0
    conditioning.one_run(3.0, 1, [], tmp_path, None)
    conditioning.one_run(1.0, 2, [], tmp_path, None)
    share = conditioning.one_run(0.0, 2, [], tmp_path, None, share=0.5)
    assert trains[-1][0] == ["--seed", "2", "--g-cond-share", "0.5"]
    assert (share["g_cond_weight"], share["g_cond_share"], row["g_cond_share"]) == (0.0, 0.5, 0.0)
    assert len({str(o) for _, o, _ in trains}) == 4                   # one folder per run


def test_conditioning_table_averages_each_weight_over_the_seeds(monkeypatch, tmp_path, capsys):
    import conditioning
    seen = []

    def one_run(weight, seed, extra, tmp, threads, share=0.0):
        seen.append((weight, share, seed, extra, threads))
        v = share * 10 or weight
        return {"g_cond_weight": weight, "g_cond_share": share, "seed": seed,
                "test_accuracy": v / 10 + seed / 100,
                **{m: v + seed for m in conditioning.METRICS},
                **{f"{m}_real_reference": i + 0.5 for i, m in enumerate(conditioning.METRICS)}}

    monkeypatch.setattr(conditioning, "one_run", one_run)
    _run_main(monkeypatch, conditioning, ["--weights", "0,2", "--shares", "0.4", "--seeds", "1,3",
                                          "--jobs", "2", "--extra=--epochs 1", "--out",
                                          str(tmp_path), "--name", "cond-x"])
    assert sorted(seen) == sorted([(w, 0.0, s, ["--epochs", "1"], 1) for w in (0.0, 2.0)
                                   for s in (1, 3)] + [(0.0, 0.4, s, ["--epochs", "1"], 1)
                                                       for s in (1, 3)])
    assert len(json.loads((tmp_path / "cond-x.json").read_text())["rows"]) == 6
    out = capsys.readouterr().out
    assert f"| share 0.4 | {fmt([0.41, 0.43])} | {fmt([5.0, 7.0])} |" in out
    assert ("| real training images (reference) |  | 0.5000 | 1.5000 | 2.5000 | 3.5000 | 4.5000 |"
            in out)                                  # each metric's reference in its column
    assert (f"| W = 2 | {fmt([0.21, 0.23])} | {fmt([3.0, 5.0])} | {fmt([3.0, 5.0])} |") in out
    assert f"| W = 0 | {fmt([0.01, 0.03])} |" in out


def _summary(objective, seed):
    acc = {"supervised": 0.6, "sscls": 0.8}.get(objective, 0.5) + seed / 100
    return {"test_accuracy": acc, "balanced_accuracy": acc - 0.1, "macro_f1": acc - 0.2,
            "train_seconds": 1.0, "wall_seconds": 2.0, "epochs": 2, "seed": seed,
            "lipschitz": "none"}


def test_objectives_runs_every_objective_and_seed_and_updates_only_its_own(monkeypatch,
                                                                            tmp_path, capsys):
    import objectives
    runs = []

    def run_train(args, out, threads=None):
        runs.append((args, threads))
        folders.add(str(out))
        return _summary(args[1], int(args[3]))

    folders = set()
    monkeypatch.setattr(objectives, "run_train", run_train)
    _run_main(monkeypatch, objectives, ["--objectives", "supervised,sscls", "--seeds", "0,2",
                                        "--epochs", "2", "--jobs", "1", "--out", str(tmp_path)])
    assert sorted(runs) == sorted((["--objective", n, "--seed", str(s), "--epochs", "2"], None)
                                  for n in ("supervised", "sscls") for s in (0, 2))
    assert len(folders) == 4                                            # one per run
    res = json.loads((tmp_path / "objectives.json").read_text())
    assert res["meta"]["seeds"] == [0, 2] and res["meta"]["epochs"] == 2
    assert sorted((r["objective"], r["seed"], r["test_accuracy"]) for r in res["rows"]) == sorted(
        (n, s, _summary(n, s)["test_accuracy"]) for n in ("supervised", "sscls") for s in (0, 2))
    out = capsys.readouterr().out
    assert f"| {fmt([0.8, 0.82])} | yes |" in out and f"| {fmt([0.6, 0.62])} |  |" in out
    runs.clear()
    monkeypatch.setattr(objectives, "run_train", lambda args, out, threads=None:
                        runs.append((args, threads)) or {**_summary("x", 0), "test_accuracy": 0.1})
    _run_main(monkeypatch, objectives, ["--objectives", "sscls", "--seeds", "0,2", "--epochs",
                                        "2", "--jobs", "2", "--update", "--out", str(tmp_path)])
    assert [t for _, t in runs] == [1, 1]
    res = json.loads((tmp_path / "objectives.json").read_text())
    assert sorted((r["objective"], r["test_accuracy"]) for r in res["rows"]) == [
        ("sscls", 0.1), ("sscls", 0.1), ("supervised", 0.6), ("supervised", 0.6 + 2 / 100)]
    assert list(res["meta"]["updated"]) == ["sscls"]
    assert f"| {fmt([0.1, 0.1])} | no |" in capsys.readouterr().out


def test_objectives_variant_with_another_regulariser_is_a_row_of_its_own(monkeypatch, tmp_path,
                                                                         capsys):
    """`gan:spectral-norm` trains `--objective gan --lipschitz spectral-norm`; with --update
    its rows join the results beside the objective's own rows, which stay, and the table
    lists the variant after its objective."""
    import objectives
    runs = []

    def run_train(args, out, threads=None):
        runs.append(args)
        lip = args[args.index("--lipschitz") + 1] if "--lipschitz" in args else "none"
        return {**_summary(args[1], int(args[args.index("--seed") + 1])), "lipschitz": lip,
                "test_accuracy": 0.3 if "--lipschitz" in args else 0.5}

    monkeypatch.setattr(objectives, "run_train", run_train)
    base = ["--seeds", "0", "--epochs", "2", "--jobs", "1", "--out", str(tmp_path)]
    _run_main(monkeypatch, objectives, ["--objectives", "supervised,gan", *base])
    capsys.readouterr()
    runs.clear()
    _run_main(monkeypatch, objectives, ["--objectives", "gan:spectral-norm", "--update", *base])
    assert runs == [["--objective", "gan", "--lipschitz", "spectral-norm", "--seed", "0",
                     "--epochs", "2"]]
    res = json.loads((tmp_path / "objectives.json").read_text())
    assert sorted((r["variant"], r["lipschitz"], r["test_accuracy"]) for r in res["rows"]) == [
        ("gan", "none", 0.5), ("gan:spectral-norm", "spectral-norm", 0.3),
        ("supervised", "none", 0.5)]
    assert list(res["meta"]["updated"]) == ["gan:spectral-norm"]
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][1:]
    assert [line.split(" | ")[:3] for line in table] == [     # "what" follows the regulariser
        ["| gan", "original GAN, non-saturating", "none"],
        ["| gan", "original GAN, non-saturating, with spectral normalisation", "spectral-norm"],
        ["| supervised", objectives.OBJECTIVES["supervised"].description, "none"]]


def test_digits_runs_both_objectives_over_the_seeds_beside_the_baselines(monkeypatch,
                                                                         tmp_path, capsys):
    import digits
    runs, base = [], []

    def run_train(args, out):
        runs.append(args)
        return _summary(args[1], int(args[3]))

    monkeypatch.setattr(digits, "run_train", run_train)
    monkeypatch.setattr(digits, "sklearn_baselines", lambda lpc, seed: base.append((lpc, seed))
                        or [{"method": "logistic regression, labels only", "test_accuracy": 0.7}])
    _run_main(monkeypatch, digits, ["--seeds", "1,2", "--extra=--epochs 1", "--out", str(tmp_path)])
    assert runs == [["--objective", n, "--seed", str(s), "--epochs", "1"]
                    for n in ("sscls", "supervised") for s in (1, 2)]
    assert base == [(10, 0)]
    out = capsys.readouterr().out
    assert f"| ganaug train (semi-supervised CLS-GAN) | {fmt([0.81, 0.82])} |" in out
    assert f"| same loss network, labels only | {fmt([0.61, 0.62])} |" in out
    assert "| logistic regression, labels only | 0.7000 | | |" in out
    rows = json.loads((tmp_path / "digits.json").read_text())["rows"]
    assert [(r["method"], r.get("seed")) for r in rows][:4] == [
        ("sscls", 1), ("sscls", 2), ("supervised", 1), ("supervised", 2)]


def test_digits_baselines_fit_the_labeled_split_and_score_the_test_set(monkeypatch):
    import sklearn.linear_model
    import sklearn.semi_supervised

    import digits
    import ganaug.data
    tr, te = _sets()
    monkeypatch.setattr(ganaug.data, "load_dataset", lambda name: (tr, te))
    fits = []

    class Fits:                              # predicts class 0 (2 of the 5 test images)
        def __init__(self, **kw):
            self.kw = kw

        def fit(self, x, y):
            fits.append((self.kw, x, y))
            return self

        def predict(self, x):
            assert x.shape == (5, 64)
            return x[:, 0] * 0

    monkeypatch.setattr(sklearn.linear_model, "LogisticRegression", Fits)
    monkeypatch.setattr(sklearn.semi_supervised, "LabelSpreading", Fits)
    rows = digits.sklearn_baselines(3, 1)
    lab, unl = split_labeled(tr, 3, 1)
    xl, xu = lab.images.flatten(1).numpy(), unl.images.flatten(1).numpy()
    assert [r["test_accuracy"] for r in rows] == [0.4] * 3
    (_, x, y), *spread = fits
    assert (x == xl).all() and (y == lab.targets.numpy()).all()
    assert [kw for kw, _, _ in spread] == [dict(kernel="rbf", max_iter=1000, gamma=0.25),
                                           dict(kernel="knn", max_iter=1000, n_neighbors=7)]
    for _, x, y in spread:
        assert x.shape == (48, 64) and (x[:12] == xl).all() and (x[12:] == xu).all()
        assert (y[:12] == lab.targets.numpy()).all() and (y[12:] == -1).all()


def test_standing_stats_measures_what_training_with_the_option_writes(monkeypatch, tmp_path):
    """Each N is applied to the run's own checkpoint with training's arguments: the sampler
    the metrics see is that of the same run trained with --standing-stats N."""
    import standing_stats
    import ganaug.evaluation
    from ganaug import CLSGAN
    from ganaug.cli import main

    flags = ["train", "--epochs", "1", "--quiet", "--no-tensorboard", "--seed", "2"]
    assert main([*flags, "--out", str(tmp_path / "plain")]) == 0
    assert main([*flags, "--standing-stats", "64", "--out", str(tmp_path / "on")]) == 0
    seen = {}

    def quality(model, train, test, **kw):
        seen[len(seen)] = [b.clone() for b in model.generator_ema.buffers()]
        return {m: {"value": 1.0, "real_reference": 0.0} for m in standing_stats.METRICS}

    monkeypatch.setattr(ganaug.evaluation, "evaluate_quality", quality)
    monkeypatch.setattr(_classifier, "train_classifier", lambda data, **kw: nn.Flatten())
    monkeypatch.setattr(_classifier, "evaluate", lambda *a, **kw: {"accuracy": 0.5})
    rows = standing_stats.measure_run(tmp_path / "plain", [0, 64])
    assert [(r["seed"], r["standing_stats"], r["tstr_accuracy"]) for r in rows] == \
        [(2, 0, 1.0), (2, 64, 1.0)]
    as_trained = CLSGAN.load(tmp_path / "plain").generator_ema.buffers()
    with_option = CLSGAN.load(tmp_path / "on").generator_ema.buffers()
    assert all(torch.equal(a, b) for a, b in zip(seen[0], as_trained))
    assert all(torch.equal(a, b) for a, b in zip(seen[1], with_option))
    with pytest.raises(SystemExit, match="trained with standing_stats=64"):
        standing_stats.measure_run(tmp_path / "on", [0])


def test_standing_stats_tables_average_each_n_and_compare_seed_by_seed(capsys):
    import standing_stats

    def row(seed, n, fid, mix):
        return {"seed": seed, "standing_stats": n, "test_accuracy": 0.9, "pass_seconds": n / 1e4,
                **{m: 1.0 for m in standing_stats.METRICS}, "domain_fid": fid,
                "intra_class_fid": fid, "recall": 1.0 / fid,
                **{f"{m}_real_reference": 0.5 for m in standing_stats.METRICS},
                "mix_accuracy": mix, "labeled_only_accuracy": 0.8}

    standing_stats.summary([row(0, 0, 3.0, 0.90), row(0, 100, 2.0, 0.88),
                            row(1, 0, 2.0, 0.92), row(1, 100, 2.5, 0.91)])
    out = capsys.readouterr().out
    assert "seeds 0, 1 (mean ± std)" in out
    assert f"| as trained | {fmt([1.0, 1.0])} | {fmt([3.0, 2.0])} | {fmt([3.0, 2.0])} |" in out
    assert f"| {fmt([0.88, 0.91])} | 0.010 |" in out                 # the mix, the slowest pass
    # one of two seeds has the lower FIDs and higher recall; both have the lower mix accuracy
    assert f"| --standing-stats 100 | 2 | 1 | 1 | 1 | 2 | {fmt([-0.02, -0.01])} |" in out


def test_gate_rows_read_every_gate_on_the_same_probe(monkeypatch, tmp_path):
    """benchmarks/gate.py on a 1-epoch digits run: no gate passes every sample and its mix
    is measured; a gate passes a share, whose label agreement is measured, and its mix
    (unless SyntheticMix could not fill a class: then n/a with its reason; the weak model's
    classes differ with the thread count); a gate nothing passes is n/a with SyntheticMix's
    reason; the labels-alone classifier is one for every row."""
    import gate
    from ganaug import TrainConfig, fit

    fit(TrainConfig(epochs=1, seed=0), out=tmp_path / "run", progress=False,
        log=lambda s: None, tensorboard=False)
    monkeypatch.setattr(gate, "CLF_EPOCHS", 1)
    none, some, every = gate.measure_run(tmp_path / "run", [0, 0.2, 1.0], probe=30)
    assert none["pass_rate"] == none["pass_rate_min_class"] == 1.0
    assert none["mix_accuracy"] is not None and none["mix_error"] is None
    assert 0 < some["pass_rate"] < 1 and some["pass_rate_min_class"] <= some["pass_rate"]
    assert 0 <= some["label_agreement"] <= 1
    assert (some["mix_accuracy"] is None) == (some["mix_error"] is not None)
    assert some["mix_error"] is None or some["mix_error"].startswith("quality gate 0.2")
    assert every["pass_rate"] == 0 and every["label_agreement"] is None
    assert every["mix_accuracy"] is None and every["mix_error"].startswith("quality gate 1.0")
    assert len({(r["labeled_only_accuracy"], r["own_accuracy"], r["ruler_test_accuracy"])
                for r in (none, some, every)}) == 1


def test_diversity_reads_what_the_mixers_read(tmp_path, capsys):
    """benchmarks/diversity.py on a 1-epoch digits run: its SyntheticMix and BatchMixer
    columns are the numbers a user reads off the mixers built the same way, and the table
    and result files carry them (no recall without the run's eval.json); a row's seed is
    the sampler's training seed, its probe_seed the --seed."""
    import warnings

    import diversity
    from ganaug import BatchMixer, SyntheticMix, TrainConfig, fit, load_dataset

    run = tmp_path / "run"
    fit(TrainConfig(epochs=1, seed=3), out=run, progress=False, log=lambda s: None,
        tensorboard=False)
    assert diversity.main(["--runs", str(run), "--out", str(tmp_path / "o"), "--name", "t",
                           "--batch-size", "32"]) == 0
    row, = json.loads((tmp_path / "o" / "diversity-t.json").read_text())["rows"]
    assert (row["seed"], row["probe_seed"]) == (3, 0)
    lab, _ = split_labeled(load_dataset("digits")[0], 10, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mix = SyntheticMix(lab, run, fraction=0.5, seed=0, device="cpu")
        mixer = BatchMixer(run, 0.5, seed=0, device="cpu")
        first = torch.randperm(len(lab), generator=torch.Generator().manual_seed(0))[:32]
        mixer(lab.images[first], lab.targets[first])
    assert row["synthetic_mix"] == mix.diversity and row["batch_mixer"] == mixer.diversity
    assert row["label_agreement"] == mix.label_agreement
    assert 0 < row["reference"] and "recall" not in row
    out = capsys.readouterr().out
    assert f"| {run} | {row['synthetic_mix']:.3f} | {row['batch_mixer']:.3f} |" in out


def test_patience_replays_the_training_loops_rule_on_a_runs_metrics(tmp_path, capsys):
    import patience
    run = tmp_path / "runs" / "seed-3"                       # a --seeds folder's run
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"epochs": 10}))
    val = [0.5, 0.7, 0.6, 0.7, 0.65, 0.8, 0.6]              # best 2, equalled 4, beaten 6
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"epoch": e + 1, "val_accuracy": v, "test_accuracy": v / 2}) + "\n"
        for e, v in enumerate(val)))
    assert patience.main([str(tmp_path / "runs"), "--patience", "2,3,4",
                          "--out", str(tmp_path / "o")]) == 0
    rows = json.loads((tmp_path / "o" / "patience.json").read_text())["rows"]
    assert [(r["stopped_after"], r["chosen_epoch"], r["epochs_saved"]) for r in rows] == \
        [(4, 2, 3), (5, 2, 2), (None, 6, 0)]
    assert {(r["whole_run_chosen_epoch"], r["last_test_accuracy"]) for r in rows} == {(6, 0.3)}
    assert "did not stop (7 trained)" in capsys.readouterr().out
    written = []                             # without --out: the table alone (a user's replay
    real = patience.write_outputs            # left the committed results alone)
    patience.write_outputs = lambda *a, **k: written.append(a)
    try:
        assert patience.main([str(tmp_path / "runs"), "--patience", "2"]) == 0
    finally:
        patience.write_outputs = real
    assert written == [] and "wrote" not in capsys.readouterr().out
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "test_accuracy": 0.5}) + "\n")
    assert patience.main([str(run), "--out", str(tmp_path / "p")]) == 2
    assert "has no val_accuracy: train it with --val-per-class N" in capsys.readouterr().err


def test_check_train_configs_reads_net_options_of_the_extra_flags(capsys):
    """A row whose flags set --net-option g_norm=none with --standing-stats is refused before
    any training, as `ganaug train` refuses it."""
    from _common import check_train_configs
    p = argparse.ArgumentParser(prog="objectives.py")
    argv = ["--objective", "gan", "--net-option", "g_norm=none", "--standing-stats", "100"]
    with pytest.raises(SystemExit) as e:
        check_train_configs(p, {"gan": argv})
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"gan: ganaug train {' '.join(argv)} would be refused: standing_stats" in err
    assert "g_norm='none'" in err
    check_train_configs(p, {"gan": argv[:4]})       # g_norm=none alone trains
