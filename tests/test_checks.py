"""The mixers' diversity check (ganaug.checks): the statistic by hand, and SyntheticMix and
BatchMixer reading it on samplers that collapse and samplers that do not."""
import itertools
import math
import random
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from ganaug import BatchMixer, DiversityWarning, LabelAgreementWarning, SyntheticMix
from ganaug.checks import (DIVERSITY_WARN, first_per_class_distances, pair_distances, per_class,
                           pooled, relative_spread, spread)


class Varied(Dataset):
    """n random 1x8x8 images in [-1, 1], labels i % classes, each class's images varied."""

    def __init__(self, n=80, classes=4, seed=0, transform=None):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.rand(n, 1, 8, 8, generator=g) * 2 - 1
        self.targets = [i % classes for i in range(n)]
        self.transform = transform

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        x = self.x[i] if self.transform is None else self.transform(self.x[i])
        return x, self.targets[i]


def _collapsed(labels):
    """One image per class: label k -> every pixel 2k/3 - 1."""
    return (labels.float() / 3 * 2 - 1)[:, None, None, None].expand(-1, 1, 8, 8).clone()


def _replay(data):
    """A sampler that returns, for each label, the next real image of that class in the
    dataset's order (cycling): the first bank of a SyntheticMix is the first real items."""
    by_class = {c: [i for i, t in enumerate(data.targets) if t == c] for c in set(data.targets)}
    cursor = {c: 0 for c in by_class}

    def sample(labels):
        out = []
        for c in labels.tolist():
            idx = by_class[c]
            out.append(data.x[idx[cursor[c] % len(idx)]])
            cursor[c] += 1
        return torch.stack(out)
    return sample


def _random_real(data):
    """A sampler that returns random real images of each label (torch's global RNG)."""
    t = torch.tensor(data.targets)

    def sample(labels):
        out = []
        for c in labels.tolist():
            idx = torch.nonzero(t == c).flatten()
            out.append(data.x[idx[torch.randint(len(idx), ())]])
        return torch.stack(out)
    return sample


# ------------------------------------------------------------------ the statistic

def test_spread_by_hand():
    # class 0 at 0 and 1 (distance 1), class 1 at 10 and 12 (distance 2); between: 10, 12,
    # 9, 11 (mean 10.5); a -1 and a label past the classes are left out
    x = torch.tensor([[0.0], [1.0], [10.0], [12.0], [100.0], [200.0]])
    y = torch.tensor([0, 0, 1, 1, -1, 2])
    sums, pairs = pair_distances(x, y, 2)
    assert pairs.tolist() == [[2, 4], [4, 2]]                  # ordered pairs
    assert sums.tolist() == [[2, 42], [42, 4]]
    assert spread(sums, pairs, torch.tensor([True, True])) == pytest.approx(1.5 / 10.5)
    same = pair_distances(torch.tensor([[5.0], [5.0], [7.0], [7.0]]), torch.tensor([0, 0, 1, 1]), 2)
    assert spread(*same, torch.tensor([True, True])) == 0.0    # one image per class
    assert spread(*pair_distances(torch.zeros(4, 1), torch.tensor([0, 0, 1, 1]), 2),
                  torch.tensor([True, True])) == 0.0           # one image in all


def test_relative_spread_is_1_for_the_same_images_at_any_scale_and_none_when_it_cannot_say():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(30, 5, generator=g), torch.arange(30) % 3
    real = pair_distances(x, y, 3)
    assert relative_spread(pair_distances(x * 255 + 3, y, 3), real) == pytest.approx(1.0)
    assert relative_spread(pair_distances(_collapsed(y).flatten(1), y, 3), real) == 0.0
    # the classes compared are those with two images or more on both sides
    one = pair_distances(x[:4], torch.tensor([0, 0, 1, 2]), 3)     # classes 1, 2: one image
    assert relative_spread(one, real) is None
    two = torch.tensor([0, 0, 1, 1, 2])
    sub = relative_spread(pair_distances(x[:5], two, 3), real)
    keep = torch.tensor([True, True, False])
    assert sub == pytest.approx(spread(*pair_distances(x[:5], two, 3), keep) / spread(*real, keep))
    flat = pair_distances(torch.ones(30, 5), y, 3)                 # real images that do not vary
    assert relative_spread(real, flat) is None
    nan = pair_distances(torch.full((30, 5), float("nan")), y, 3)   # a diverged generator's:
    assert math.isnan(spread(*nan, torch.ones(3, dtype=torch.bool)))  # not a collapse (0)
    assert relative_spread(nan, real) is None


def test_per_class_caps_the_images_compared():
    assert per_class(10) == 20 and per_class(100) == 20 and per_class(1000) == 2
    assert per_class(10, cap=5) == 5 and per_class(400) == 5


# ------------------------------------------------------------------ SyntheticMix

def test_synthetic_mix_warns_when_a_class_is_one_image():
    data = Varied()
    with pytest.warns(DiversityWarning, match=r"SyntheticMix: within their classes, the synthetic "
                      r"images are only 0% as spread out as the real ones.*collapsed.*under "
                      r"60%.*ganaug eval --run RUN.*recall") as rec:
        mix = SyntheticMix(data, _collapsed, fraction=0.5)
    assert mix.diversity == 0.0
    assert rec[0].filename == __file__                          # points at the caller


def test_synthetic_mix_reads_the_first_bank_against_the_same_number_of_real_items():
    # the replay sampler's first bank is each class's first real items, which the check
    # reads on the real side too: the same images, so 1 (up to uint8 rounding)
    data = Varied(n=120)
    data.x[80:] = _collapsed(torch.tensor(data.targets[80:]))  # past each class's first 20: one image
    with warnings.catch_warnings():
        warnings.simplefilter("error", DiversityWarning)
        mix = SyntheticMix(data, _replay(data), fraction=0.5, batch_size=7)
    assert mix.plan == [30] * 4
    assert mix.diversity == pytest.approx(1.0, abs=0.01)
    with warnings.catch_warnings():                             # random real images: about 1
        warnings.simplefilter("error", DiversityWarning)
        varied = Varied(n=80)
        other = SyntheticMix(varied, _random_real(varied), fraction=0.5)
    assert 0.8 < other.diversity < 1.2 and other.diversity > DIVERSITY_WARN


@pytest.mark.filterwarnings("ignore:\\w+. the sampler's images span:UserWarning")
def test_synthetic_mix_diversity_is_none_with_one_class_and_leaves_the_rngs_alone():
    data = Varied()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DiversityWarning)
        assert SyntheticMix(data, _collapsed, balance={2: 30}).diversity is None
    # reading real items through a random transform leaves the global RNGs as they were
    noisy = Varied(transform=lambda x: 0.9 * x + 0.01 * torch.rand(x.shape)
                   + 0.01 * np.random.rand() + 0.01 * random.random())
    with pytest.warns(DiversityWarning):
        mix = SyntheticMix(noisy, _collapsed, fraction=0.5)
    states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    kept = {c: [_collapsed(torch.full((3,), c)).flatten(1)] for c in range(4)}   # pooled rows
    assert mix._diversity(kept, torch.tensor(noisy.targets)) == 0.0
    assert torch.equal(torch.get_rng_state(), states[0])
    assert np.array_equal(np.random.get_state()[1], states[1]) and random.getstate() == states[2]


def test_synthetic_mix_skips_the_check_for_real_items_of_varying_sizes():
    class Sizes(Varied):
        def __getitem__(self, i):
            x, y = super().__getitem__(i)
            return (x if i < 40 else torch.nn.functional.pad(x, (0, 1, 0, 1))), y

    with warnings.catch_warnings():
        warnings.simplefilter("error", DiversityWarning)
        mix = SyntheticMix(Sizes(n=80), _collapsed, fraction=0.2)
    assert mix.diversity is None


# ------------------------------------------------------------------ BatchMixer

def test_batch_mixer_reads_its_probe_against_the_first_batch():
    data = Varied(n=80)
    x, y = data.x[:16], torch.tensor(data.targets[:16])
    mixer = BatchMixer(_collapsed, 0.5, num_classes=4)
    assert mixer.diversity is None                              # no real images yet
    with pytest.warns(DiversityWarning, match=r"BatchMixer: .*only 0% as spread out") as rec:
        mixer(x, y)
    assert mixer.diversity == 0.0 and rec[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error", DiversityWarning)
        mixer(x, y)                                             # once, not every step
        fine = BatchMixer(_random_real(data), 0.5, num_classes=4, seed=3)
        fine(x, y)
        assert 0.7 < fine.diversity < 1.3
        off = BatchMixer(_collapsed, 0.5, num_classes=4, label_check=0)
        off(x, y)
        assert off.diversity is None and off._spread is None


def test_batch_mixer_adds_up_batches_until_two_classes_have_two_images():
    data = Varied(n=80)
    mixer = BatchMixer(_collapsed, 0.5, num_classes=4, labels="uniform")
    x = data.x[:4]
    mixer(x, torch.tensor([0, 0, 1, 2]))                        # one class with two images
    assert mixer.diversity is None and mixer._spread is not None
    with pytest.warns(DiversityWarning):
        mixer(x, torch.tensor([1, 1, 2, 3]))                    # now classes 0 and 1
    assert mixer.diversity == 0.0 and mixer._spread is None
    # unlabeled batches never give the real side: it gives up after 10, without a word
    blind = BatchMixer(_collapsed, 0.5, num_classes=4, labels="uniform")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DiversityWarning)
        for _ in range(10):
            assert blind._spread is not None
            blind(x, torch.full((4,), -1))
    assert blind.diversity is None and blind._spread is None


def test_batch_mixer_diversity_of_an_int32_label_batch():
    data = Varied(n=40)
    mixer = BatchMixer(_random_real(data), 0.5, num_classes=4)
    mixer(data.x[:16], torch.tensor(data.targets[:16], dtype=torch.int32))
    assert mixer.diversity is not None


# ------------------------------------------------------------------ during training

def test_each_epoch_logs_the_samples_diversity_without_touching_training(tiny, monkeypatch):
    """Every epoch's record has ``diversity``: the averaged generator's samples from fixed
    noise against the first labeled images, as the mixers' check reads it; and a run with
    the reading switched off trains to the same weights (it draws from a generator of its
    own, in eval mode)."""
    import importlib

    from _tiny import FAST, _run, _same_state
    from ganaug.data import split_labeled
    from ganaug.step import _derive_seed

    on = _run(tiny)
    assert [("diversity" in r) for r in on.history] == [True] * FAST["epochs"]
    lab, _ = split_labeled(tiny, FAST["labels_per_class"], 0)
    labels = torch.arange(4).repeat_interleave(20)
    x = on.model.sample(labels, torch.Generator().manual_seed(_derive_seed(0, 4)))
    k = torch.cat([torch.nonzero(lab.targets == c).flatten()[:20] for c in range(4)])
    expect = relative_spread(pair_distances(x.flatten(1), labels, 4),
                             pair_distances(lab.images[k].flatten(1), lab.targets[k], 4))
    assert on.history[-1]["diversity"] == pytest.approx(expect, rel=1e-9)
    monkeypatch.setattr(importlib.import_module("ganaug.train"), "sample_diversity",
                        lambda *a: None)
    off = _run(tiny)
    assert "diversity" not in off.history[-1]
    assert _same_state(on, off)
    drop = lambda h: [{k: v for k, v in r.items() if k not in ("seconds", "diversity")}  # noqa: E731
                      for r in h]
    assert drop(on.history) == drop(off.history)


def test_no_diversity_for_an_objective_that_trains_no_generator(tiny):
    from _tiny import _run
    assert not any("diversity" in r for r in _run(tiny, objective="supervised").history)
    assert all("diversity" in r for r in _run(tiny, objective="wgan-gp").history)


def test_no_diversity_without_two_classes_of_two_labeled_images(tiny):
    from ganaug.data import ImageSet
    from ganaug.train import real_spread_of
    one_each = ImageSet(tiny.images[:4], tiny.targets[:4], tiny.classes)
    assert real_spread_of(one_each) is None
    assert real_spread_of(ImageSet(tiny.images[:8], tiny.targets[:8], tiny.classes)) is not None


def test_the_run_summary_keeps_the_last_diversity_and_warns_under_the_line(tmp_path,
                                                                          monkeypatch):
    import importlib

    from ganaug import TrainConfig, build_model, fit, load_dataset, split_labeled, train
    T = importlib.import_module("ganaug.train")        # the module, not ganaug.train()

    lines = []
    summary = fit(TrainConfig(epochs=1, seed=0), out=tmp_path / "a", progress=False,
                  log=lines.append, tensorboard=False)
    rec = [__import__("json").loads(s) for s in (tmp_path / "a" / "metrics.jsonl").open()]
    assert summary["diversity"] == rec[-1]["diversity"] > 0
    assert f"div={summary['diversity']:.2f}" in next(s for s in lines if s.startswith("epoch 1/1"))
    monkeypatch.setattr(T, "DIVERSITY_WARN", summary["diversity"] + 0.01)   # now under it
    lines = []
    fit(TrainConfig(epochs=1, seed=0), out=tmp_path / "b", progress=False, log=lines.append,
        tensorboard=False)
    warn, = [s for s in lines if s.startswith("warning: within their classes")]
    assert f"{100 * summary['diversity']:.0f}% as spread out" in warn
    assert f"ganaug eval --run {tmp_path / 'b'}" in warn
    assert "after epoch 1, the last" in warn and "can dip and recover" in warn
    # the Python API's train() says it too (once), not only `ganaug train` / fit
    cfg = TrainConfig(epochs=1, seed=0)
    data, test = load_dataset("digits")
    lab, unl = split_labeled(data, 10, 0)
    lines = []
    train(build_model(cfg.resolved(), data), lab, unl, cfg, test=test, progress=False,
          log=lines.append)
    assert len([s for s in lines if s.startswith("warning: within their classes")]) == 1


@pytest.mark.gpu
def test_the_diversity_readings_on_a_gpu_match_the_cpus(tiny):
    """The mixers' check and each epoch's reading with the sampler and the batch on a GPU:
    the same numbers as on the CPU, up to float rounding (the distances are summed in
    float64 on the device)."""
    from _tiny import _run
    from ganaug import CLSGAN
    from ganaug.train import real_spread_of, sample_diversity

    data = Varied(n=80)
    x, y = data.x[:16], torch.tensor(data.targets[:16])
    model = CLSGAN((1, 8, 8), 4, "mlp", ["a", "b", "c", "d"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        on_cpu = BatchMixer(model, 0.5, seed=2)
        on_gpu = BatchMixer(model, 0.5, seed=2, device="cuda")
        on_cpu(x, y)
        on_gpu(x.cuda(), y.cuda())
        mix_cpu = SyntheticMix(data, model, fraction=0.5, device="cpu")
        mix_gpu = SyntheticMix(data, model, fraction=0.5, device="cuda")
    assert on_gpu.diversity == pytest.approx(on_cpu.diversity, rel=1e-3)
    assert mix_gpu.diversity == pytest.approx(mix_cpu.diversity, rel=1e-3)
    real = real_spread_of(tiny)
    trained = _run(tiny).model
    assert sample_diversity(trained.to("cuda"), real, 0) == pytest.approx(
        sample_diversity(trained.to("cpu"), real, 0), rel=1e-3)


# ------------------------------------------------------------------ mutation-testing gaps
def test_synthetic_mix_diversity_reads_exactly_per_class_images_on_each_side():
    """The first 20 synthetic images of each class against the first 20 real items of each
    class, no more on either side, also when a class's sampler batches overshoot 20."""
    from ganaug.checks import first_of_each_class, pooled
    from ganaug.sampling import to_hwc_uint8
    data = Varied(n=120)                                        # 30 real items per class
    data.x[80:] = _collapsed(torch.tensor(data.targets[80:]))  # each class's 21st on: one image
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiversityWarning)
        mix = SyntheticMix(data, _replay(data), fraction=0.5, batch_size=7)   # 7, 14, 21, ...
    k, t = per_class(4), torch.tensor(data.targets)
    assert k == 20 and mix.plan == [30] * 4
    s = first_of_each_class(mix.syn_labels, k, range(4))
    r = first_of_each_class(t, k, range(4))
    real = torch.stack([torch.from_numpy(to_hwc_uint8(data.x[i], mix.format).copy())
                        for i in r.tolist()]).permute(0, 3, 1, 2)
    expect = relative_spread(pair_distances(pooled(mix.bank[s]), mix.syn_labels[s], 4),
                             pair_distances(pooled(real), t[r], 4))
    assert mix.diversity == pytest.approx(expect, rel=1e-6)


def test_per_class_is_at_least_2_past_1000_classes():
    assert per_class(1001) == 2 and per_class(5000) == 2


def test_a_diversity_of_exactly_the_line_does_not_warn():
    from ganaug.checks import warn_diversity
    with warnings.catch_warnings():
        warnings.simplefilter("error", DiversityWarning)
        warn_diversity(DIVERSITY_WARN, "SyntheticMix")          # "under 0.6" warns
    with pytest.warns(DiversityWarning):
        warn_diversity(DIVERSITY_WARN - 1e-9, "SyntheticMix")


def test_pooled_caps_each_side_at_32_pixels_also_when_one_side_alone_is_larger():
    from ganaug.checks import pooled
    assert pooled(torch.rand(2, 1, 64, 16)).shape == (2, 32 * 16)
    assert pooled(torch.rand(2, 3, 8, 40)).shape == (2, 3 * 8 * 32)
    assert pooled(torch.rand(2, 1, 8, 8)).shape == (2, 64)


# ------------------------------------------------------------------ mutation-testing gaps (checks)


# The label-agreement warning points at the user's line that built the mix.
class _Data(Dataset):
    def __init__(self, n=40):
        self.x = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
        self.targets = [i % 4 for i in range(n)]

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.x[i], self.targets[i]


def _encode(labels):
    return (labels.float() / 3 * 2 - 1)[:, None, None, None].expand(-1, 1, 8, 8).clone()


def _all_zero(x):                       # a classifier that calls every image class 0
    return torch.nn.functional.one_hot(torch.zeros(len(x), dtype=torch.long), 4).float()


def test_label_agreement_warning_is_attributed_to_the_callers_line():
    """SyntheticMix and BatchMixer warn about a sampler whose classifier disagrees with its
    labels (25% here); the warning names this file, where the mix was built, not mix.py."""
    for build in (lambda: SyntheticMix(_Data(), _encode, fraction=0.5, gate_classifier=_all_zero),
                  lambda: BatchMixer(_encode, 0.5, num_classes=4, classifier=_all_zero)):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            build()
        got = [w for w in rec if issubclass(w.category, LabelAgreementWarning)]
        assert len(got) == 1 and "25.0%" in str(got[0].message)
        assert got[0].filename == __file__


# The real side of the diversity check reads images pooled to 32 pixels, as the synthetic side does.
def test_first_per_class_distances_pools_images_larger_than_32_pixels():
    """64x64 images whose pixels alternate +1 / -1 in 2x2 blocks: pooled to 32x32 they are
    flat, so a class of such an image and its negative has a small within-class distance
    after pooling but a large one without. The check's real side must read the pooled
    images, like the synthetic side it is compared with."""
    i = torch.arange(64)
    board = (((i[:, None] // 2 + i[None] // 2) % 2) * 2 - 1).float()   # 2x2 checkerboard
    x = torch.stack([board, -board, board * 0 + 0.5, board * 0 - 0.5])[:, None]  # (4, 1, 64, 64)
    y = torch.tensor([0, 0, 1, 1])
    sums, pairs = first_per_class_distances(x, y, 2, k=2)
    want_sums, want_pairs = pair_distances(pooled(x), y, 2)
    torch.testing.assert_close(sums, want_sums)
    torch.testing.assert_close(pairs, want_pairs)
    raw, _ = pair_distances(x.flatten(1), y, 2)
    assert abs(raw[0, 0].item() - want_sums[0, 0].item()) > 1.0    # pooling matters here


# The diversity check pools uint8 images larger than 32 pixels.
def test_pooled_takes_uint8_images_larger_than_32_pixels():
    """Banks and real items enter the check as uint8; a 64x64 uint8 batch is pooled to
    32x32 float rows like the same batch in float."""
    x = torch.randint(0, 256, (3, 3, 64, 48), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(0))
    got = pooled(x)
    assert got.dtype == torch.float32 and got.shape == (3, 3 * 32 * 32)
    torch.testing.assert_close(got, pooled(x.float()))


# The diversity statistic uses Euclidean distances between images.
def test_pair_distances_are_euclidean():
    """Two points (0, 0) and (3, 4) of class 0 are 5 apart (not 7, the L1 distance); the
    cross-class distances to (6, 8) are 10 and 5."""
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    sums, pairs = pair_distances(x, torch.tensor([0, 0, 1]), 2)
    assert sums.tolist() == [[10.0, 15.0], [15.0, 0.0]]     # ordered pairs: 2 x 5 within
    assert pairs.tolist() == [[2.0, 2.0], [2.0, 0.0]]


# spread weighs every class and every class pair equally, whatever their sizes.
def test_spread_weights_classes_and_class_pairs_equally_by_hand():
    """Classes of 2, 3 and 2 one-dimensional points. Within: the mean of each class's mean
    distance between its distinct items; between: the mean over class pairs of the mean
    distance across the pair; spread = within / between. Pooling all pairs together (which
    lets the larger class count more) gives another value."""
    pts = {0: [0.0, 2.0], 1: [10.0, 11.0, 14.0], 2: [100.0, 101.0]}
    x = torch.tensor([[p] for c in pts for p in pts[c]])
    y = torch.tensor([c for c in pts for _ in pts[c]])
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    within = mean([mean([abs(a - b) for a, b in itertools.permutations(v, 2)]) for v in pts.values()])
    between = mean([mean([abs(a - b) for a in pts[c] for b in pts[d]])
                    for c, d in itertools.combinations(pts, 2)])
    got = spread(*pair_distances(x, y, 3), torch.ones(3, dtype=torch.bool))
    assert got == pytest.approx(within / between, rel=1e-12)
    # the pooled reading differs here, so the test tells the two apart
    sums, pairs = pair_distances(x, y, 3)
    off = ~torch.eye(3, dtype=torch.bool)
    pooled = (sums.diagonal().sum() / pairs.diagonal().sum()) / (sums[off].sum() / pairs[off].sum())
    assert abs(got - pooled.item()) > 1e-3
    pooled_within = (sums.diagonal().sum() / pairs.diagonal().sum()).item() / between
    pooled_between = within / (sums[off].sum() / pairs[off].sum()).item()
    assert abs(got - pooled_within) > 1e-3 and abs(got - pooled_between) > 1e-3
