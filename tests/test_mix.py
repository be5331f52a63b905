import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ganaug import BatchMixer, CLSGAN, DiversityWarning, LabelAgreementWarning, SyntheticMix
from ganaug.data import load_dataset
from ganaug.imbalance import (balance_plan, class_counts, dataset_targets, long_tail_counts, make_long_tailed,
                              quotas)

# the tests' batches, and their stand-in samplers' images, are arbitrary tensors; the range
# warnings have their own tests
pytestmark = [pytest.mark.filterwarnings("ignore:the batch's images span:UserWarning"),
              pytest.mark.filterwarnings("ignore:\\w+. the sampler's images span:UserWarning")]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return CLSGAN((1, 8, 8), 4, "mlp", ["a", "b", "c", "d"])


@pytest.fixture(scope="module")
def digits_lt():
    tr, _ = load_dataset("digits")
    return make_long_tailed(tr, rho=10, seed=0)


class TupleData(Dataset):
    """Items of a given type: 'tensor01' floats in [0, 1], 'uint8' CHW, 'numpy' HWC uint8, 'pil'."""

    def __init__(self, kind, n=20, classes=4):
        g = torch.Generator().manual_seed(1)
        self.x = torch.rand(n, 1, 8, 8, generator=g)
        self.targets = [i % classes for i in range(n)]
        self.kind = kind

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        x = self.x[i]
        if self.kind == "uint8":
            x = (x * 255).round().to(torch.uint8)
        elif self.kind == "numpy":
            x = (x * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        elif self.kind == "pil":
            from PIL import Image
            x = Image.fromarray((x[0] * 255).round().to(torch.uint8).numpy(), mode="L")
        return x, self.targets[i]


# ------------------------------------------------------------------ imbalance tools
def test_long_tail_profile():
    assert long_tail_counts(100, 3, 100) == [100, 10, 1]
    assert long_tail_counts(500, 10, 10)[0] == 500 and long_tail_counts(500, 10, 10)[-1] == 50
    with pytest.raises(ValueError, match="rho"):
        long_tail_counts(10, 3, 0.5)


def test_make_long_tailed_digits(digits_lt):
    counts = digits_lt.class_counts()
    assert counts[0] / counts[-1] == pytest.approx(10, rel=0.05)
    assert counts == sorted(counts, reverse=True)


def test_balance_plans():
    assert balance_plan([5, 3, 1], "max") == [0, 2, 4]
    assert balance_plan([5, 3, 1], "mean") == [0, 0, 2]
    assert balance_plan([5, 3, 1], 4) == [0, 1, 3]
    assert balance_plan([5, 3, 1], {2: 7}) == [0, 0, 7]
    assert balance_plan([5, 3, 1], {"c": 7}, ["a", "b", "c"]) == [0, 0, 7]
    with pytest.raises(ValueError, match="unknown class 'z'"):
        balance_plan([5, 3, 1], {"z": 1}, ["a", "b", "c"])
    with pytest.raises(ValueError, match="unknown class 3"):
        balance_plan([5, 3, 1], {3: 1})
    with pytest.raises(ValueError, match="unknown balance"):
        balance_plan([5, 3, 1], "min")


def test_quotas_are_exact():
    q = quotas(10, [1, 1, 1])
    assert sum(q) == 10 and max(q) - min(q) == 1
    assert quotas(7, [0, 1]) == [0, 7]


# ------------------------------------------------------------------ SyntheticMix
def test_balance_max_equalises_long_tailed_digits(digits_lt):
    torch.manual_seed(0)
    m = CLSGAN((1, 8, 8), 10, "mlp")
    mix = SyntheticMix(digits_lt, m, balance="max")
    counts = mix.class_counts()
    assert len(set(counts)) == 1 and counts[0] == max(digits_lt.class_counts())
    assert mix.num_synthetic == sum(balance_plan(digits_lt.class_counts(), "max"))


def test_dataloader_with_workers_full_epoch_counts_match_plan(digits_lt):
    torch.manual_seed(0)
    m = CLSGAN((1, 8, 8), 10, "mlp")
    mix = SyntheticMix(digits_lt, m, fraction=0.25, seed=3)
    loader = DataLoader(mix, batch_size=64, num_workers=2, shuffle=True)
    ys, n_items = [], 0
    for x, y in loader:
        assert x.shape[1:] == (1, 8, 8) and x.dtype == torch.float32
        ys.append(y)
        n_items += len(y)
    y = torch.cat(ys)
    assert n_items == len(mix)
    assert class_counts(y, 10) == mix.class_counts()
    assert mix.num_synthetic / len(mix) == pytest.approx(0.25, abs=1 / len(mix))
    syn = torch.tensor(mix.targets[mix.n_real:])
    real_share = torch.tensor(digits_lt.class_counts(), dtype=torch.float) / len(digits_lt)
    assert class_counts(syn, 10) == quotas(mix.num_synthetic, real_share.tolist())


def test_same_seed_same_items_new_round_new_items(model, tiny):
    a = SyntheticMix(tiny, model, fraction=0.5, seed=7, refresh_every=2)
    b = SyntheticMix(tiny, model, fraction=0.5, seed=7, refresh_every=2)
    c = SyntheticMix(tiny, model, fraction=0.5, seed=8, refresh_every=2)
    i = a.n_real + 5
    assert a.is_synthetic(i) and not a.is_synthetic(0)
    assert torch.equal(a[i][0], b[i][0]) and a[i][1] == b[i][1]
    assert not torch.equal(a[i][0], c[i][0])
    before = a[i][0].clone()
    a.set_epoch(1)                      # same round (1 // 2 == 0): unchanged
    assert torch.equal(a[i][0], before)
    a.set_epoch(2)                      # round 1: new items, same labels
    assert not torch.equal(a[i][0], before) and a[i][1] == b[i][1]
    b.set_epoch(3)
    assert torch.equal(a[i][0], b[i][0])
    a.set_epoch(0)                      # back to round 0 reproduces it
    assert torch.equal(a[i][0], before)


def test_synthetic_items_match_real_item_format(model):
    for kind in ("tensor01", "uint8", "numpy", "pil"):
        data = TupleData(kind)
        mix = SyntheticMix(data, model, fraction=0.5)
        real, syn = mix[0][0], mix[len(mix) - 1][0]
        assert type(real) is type(syn), kind
        if kind == "pil":
            assert syn.mode == real.mode and syn.size == real.size
        else:
            assert syn.shape == real.shape and syn.dtype == real.dtype, kind
        if kind == "tensor01":
            assert 0 <= float(syn.min()) and float(syn.max()) <= 1


def test_transform_applies_to_real_and_synthetic(model, tiny):
    mix = SyntheticMix(tiny, model, fraction=0.5, transform=lambda x: x * 0 + 0.5)
    assert torch.all(mix[0][0] == 0.5) and torch.all(mix[len(mix) - 1][0] == 0.5)


def test_albumentations_compose_gets_hwc_uint8(model):
    A = pytest.importorskip("albumentations")
    seen = []

    def spy(image, **_):
        seen.append((image.dtype, image.shape))
        return image

    data = TupleData("tensor01")
    t = A.Compose([A.Lambda(image=spy), A.HorizontalFlip(p=1.0)])
    mix = SyntheticMix(data, model, fraction=0.5, transform=t)
    x, _ = mix[0]
    assert seen[-1] == (np.uint8, (8, 8, 1))
    assert isinstance(x, torch.Tensor) and x.shape == (1, 8, 8) and x.dtype == torch.float32
    expected = (data.x[0] * 255).round().flip(-1) / 255
    assert torch.allclose(x, expected, atol=1e-6)
    xs, _ = mix[len(mix) - 1]
    assert xs.shape == (1, 8, 8)


@pytest.mark.parametrize("kind", ["uint8", "tensor01"])
def test_albumentations_float_output_is_returned_as_it_is(model, kind):
    """A Compose that ends in Normalize returns floats: they are the transform's output, not
    0..255 values to scale back (before: divided by 255, and uint8 items wrapped -1 to 255)."""
    A = pytest.importorskip("albumentations")
    data = TupleData(kind)
    norm = A.Compose([A.Normalize(mean=(0.5,), std=(0.5,), max_pixel_value=255.0)])
    mix = SyntheticMix(data, model, fraction=0.5, transform=norm)
    x, _ = mix[0]
    assert isinstance(x, np.ndarray) and x.dtype == np.float32 and x.shape == (8, 8, 1)
    want = (data.x[0].permute(1, 2, 0).numpy() * 255).round() / 255 * 2 - 1    # (p - .5) / .5
    np.testing.assert_allclose(x, want, atol=1e-5)
    xs, _ = mix[len(mix) - 1]
    assert xs.dtype == np.float32 and -1 <= xs.min() and xs.max() <= 1


@pytest.mark.parametrize("gate,count", [(0.5, 5), (0.9, 5), (0.2, 20)])
def test_quality_gate_keeps_confident_samples(tiny, gate, count):
    """Kept samples reach the gate and have their intended class on top, also below a gate
    of 0.5 (where the threshold alone would let another class win); the rest are drawn
    again."""
    def clf(x):                         # a fixed classifier: 4 pixels are the logits
        return 10 * x.flatten(1)[:, :4]

    drawn = []

    def noise(y):
        drawn.append(len(y))
        return torch.rand(len(y), 1, 8, 8) * 2 - 1

    mix = SyntheticMix(tiny, noise, balance={0: count, 3: count}, gate=gate,
                       gate_classifier=clf, batch_size=64)
    x = torch.stack([mix[i][0] for i in range(mix.n_real, len(mix))])
    prob = torch.softmax(clf(x), 1)
    y = torch.tensor(mix.targets[mix.n_real:])
    assert len(y) == 2 * count and sum(drawn) > 2 * count      # some were turned away
    assert bool((prob.argmax(1) == y).all())
    assert bool((prob[torch.arange(len(y)), y] >= gate - 1e-6).all())


def test_balanced_sampler_draws_classes_equally_with_a_real_share(digits_lt):
    sampler = lambda y: torch.zeros(len(y), 1, 8, 8)            # noqa: E731
    mix = SyntheticMix(digits_lt, sampler, balance={9: 50, 8: 20})
    s = mix.balanced_sampler(real_share=0.25, num_samples=200_000,
                             generator=torch.Generator().manual_seed(0))
    idx = torch.tensor(list(s))
    t = torch.tensor(mix.targets)[idx]
    share = torch.bincount(t, minlength=10).double() / len(idx)
    assert share.tolist() == pytest.approx([0.1] * 10, abs=0.005)
    real = idx < mix.n_real
    for c, want in ((9, 0.25), (8, 0.25), (0, 1.0)):   # class 0 has no synthetic items
        assert real[t == c].double().mean().item() == pytest.approx(want, abs=0.01)
    with pytest.raises(ValueError, match="real_share"):
        mix.balanced_sampler(1.5)
    assert len(mix.balanced_sampler(0.25)) == len(mix)          # num_samples: len(mix)
    with pytest.raises(ValueError, match="num_samples"):         # 0 is not "the default"
        mix.balanced_sampler(0.25, num_samples=0)


def test_gate_modes_class_softmax_and_exp_minus_L(model, tiny):
    # "class": softmax over the C activations; "real": with the implicit "no known class"
    # logit, softmax([a, 0])[y] = exp(-L(x, y))
    c = int(model.predict(model.sample(torch.arange(4), torch.Generator().manual_seed(0)))[0])
    mix = SyntheticMix(tiny, model, balance={c: 3}, gate=0.05, gate_mode="real")
    x = torch.stack([mix[i][0] for i in range(mix.n_real, len(mix))])
    conf = torch.softmax(mix._gate_logits(x), 1)
    assert conf.shape == (3, 5)                       # 4 classes and "no known class"
    assert torch.allclose(conf[:, c], torch.exp(-model.loss(x, torch.full((3,), c))), atol=1e-5)
    assert bool((conf[:, c] >= 0.05).all()) and bool((conf.argmax(1) == c).all())
    mix = SyntheticMix(tiny, model, balance={c: 3}, gate=0.25)
    x = torch.stack([mix[i][0] for i in range(mix.n_real, len(mix))])
    conf = torch.softmax(mix._gate_logits(x), 1)
    assert torch.allclose(conf, torch.softmax(model.activations(x), 1), atol=1e-6)
    assert bool((conf[:, c] >= 0.25).all()) and bool((conf.argmax(1) == c).all())
    with pytest.raises(ValueError, match="gate_mode must be"):
        SyntheticMix(tiny, model, balance={c: 3}, gate=0.3, gate_mode="nope")


@pytest.mark.filterwarnings("ignore:the dataset's classes:UserWarning")
def test_bad_input_errors(model, tiny):
    with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\)"):
        SyntheticMix(tiny, model, fraction=1.0)
    with pytest.raises(ValueError, match="pass fraction="):
        SyntheticMix(tiny, model)
    with pytest.raises(ValueError, match="unknown class 'zebra'"):
        SyntheticMix(tiny, model, balance={"zebra": 3})
    with pytest.raises(ValueError, match="trained for 10 classes but the data has 4"):
        SyntheticMix(tiny, CLSGAN((1, 8, 8), 10, "mlp"), fraction=0.5)
    with pytest.raises(ValueError, match="shape"):
        SyntheticMix(tiny, lambda y: torch.zeros(len(y), 3, 8, 8), fraction=0.5)
    with pytest.raises(ValueError, match="dtype"):
        SyntheticMix(tiny, lambda y: torch.zeros(len(y), 1, 8, 8, dtype=torch.long), fraction=0.5)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        SyntheticMix(tiny, lambda y: torch.full((len(y), 1, 8, 8), 3.0), fraction=0.5)
    with pytest.raises(ValueError, match="could not fill class"):
        SyntheticMix(tiny, model, balance={1: 4}, gate=1.0, gate_max_draws=2)
    with pytest.raises(ValueError, match="gate= needs a classifier"):
        SyntheticMix(tiny, lambda y: torch.zeros(len(y), 1, 8, 8), fraction=0.5, gate=0.5)


def test_callable_sampler_and_run_folder(tmp_path, model, tiny):
    model.save(tmp_path / "m.pt")
    a = SyntheticMix(tiny, str(tmp_path / "m.pt"), fraction=0.5, device="cpu")
    b = SyntheticMix(tiny, model, fraction=0.5)
    assert torch.equal(a[len(a) - 1][0], b[len(b) - 1][0])
    c = SyntheticMix(tiny, lambda y: torch.rand(len(y), 1, 8, 8) * 2 - 1, fraction=0.5, seed=1)
    d = SyntheticMix(tiny, lambda y: torch.rand(len(y), 1, 8, 8) * 2 - 1, fraction=0.5, seed=1)
    assert torch.equal(c[len(c) - 1][0], d[len(d) - 1][0])    # seeded around the callable


# ------------------------------------------------------------------ BatchMixer
def test_batch_mixer_append_and_replace(model):
    x, y = torch.rand(12, 1, 8, 8), torch.arange(4).repeat(3)
    mix = BatchMixer(model, 0.25, value_range=(0, 1))
    x2, y2, mask = mix(x, y, return_mask=True)
    assert len(x2) == 16 and int(mask.sum()) == 4 and torch.equal(x2[:12], x)
    assert float(x2[12:].min()) >= 0 and set(y2[12:].tolist()) <= set(range(4))
    rep = BatchMixer(model, 0.25, mode="replace", seed=1)
    x3, y3 = rep(x, y)
    assert len(x3) == 12 and torch.equal(x3[:9], x[:9]) and not torch.equal(x3[9:], x[9:])
    again = BatchMixer(model, 0.25, mode="replace", seed=1)(x, y)[0]
    assert torch.equal(again, x3)
    probs = BatchMixer(model, 0.5, class_probs=[0, 0, 1, 0])(x, y)[1]
    assert bool((probs[12:] == 2).all())


def test_batch_mixer_errors(model):
    with pytest.raises(ValueError, match="fraction"):
        BatchMixer(model, -0.1)
    with pytest.raises(ValueError, match="num_classes"):
        BatchMixer(lambda y: torch.zeros(len(y), 1, 8, 8), 0.5)
    with pytest.raises(ValueError, match="shape"):
        BatchMixer(model, 0.5)(torch.rand(4, 3, 8, 8), torch.zeros(4, dtype=torch.long))
    x = torch.rand(4, 1, 8, 8)
    for y in (torch.zeros(3, dtype=torch.long), torch.zeros(0, dtype=torch.long),
              torch.zeros(4, 1, dtype=torch.long)):     # one label per image, 1-D
        with pytest.raises(ValueError, match="one per image"):
            BatchMixer(model, 0.5, labels="uniform")(x, y)


def test_targets_kept_as_class_names_are_read_from_the_items():
    """A dataset whose ``.targets`` are class names, its items (image, int label): counted
    by the items' labels, not refused."""
    class Named(torch.utils.data.Dataset):
        targets = ["cat", "dog", "dog"]

        def __len__(self):
            return 3

        def __getitem__(self, i):
            return torch.zeros(1, 2, 2), [0, 1, 1][i]

    assert dataset_targets(Named()).tolist() == [0, 1, 1]


def test_long_tailed_generic_dataset_and_subset_targets():
    data = TupleData("uint8", n=40, classes=4)
    lt = make_long_tailed(data, rho=4, seed=0)
    assert class_counts(lt.targets, 4) == long_tail_counts(10, 4, 4)
    from ganaug.imbalance import dataset_targets
    assert dataset_targets(lt).tolist() == [int(lt[i][1]) for i in range(len(lt))]


def test_long_tail_profile_cifar10_lt_and_at_least_one_item():
    # CIFAR-10-LT (Cao et al. 2019) with 5000 per class and rho = 100: floor, not round
    assert long_tail_counts(5000, 10, 100) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    with pytest.warns(UserWarning, match="ratio is 10, not 1000"):
        assert long_tail_counts(10, 3, 1000) == [10, 1, 1]      # no class is emptied


def test_long_tailed_subset_is_random_and_follows_the_seed():
    data = TupleData("uint8", n=400, classes=4)                 # 100 items per class
    a, b, c = (make_long_tailed(data, rho=10, seed=s).indices for s in (0, 0, 1))
    assert a == b and a != c
    keep = long_tail_counts(100, 4, 10)
    kept_1 = [i for i in a if data.targets[i] == 1]
    assert len(kept_1) == keep[1] and kept_1 != list(range(1, 400, 4))[:keep[1]]  # not the first ones


def test_balance_plan_mean_rounds_down_and_quotas_use_largest_remainder():
    assert balance_plan([5, 2], "mean") == [0, 1]               # mean 3.5 -> 3
    assert quotas(10, [0.57, 0.43]) == [6, 4]                   # 5.7, 4.3: the extra item to 0.7
    assert quotas(10, [0.43, 0.57]) == [4, 6]


def test_is_synthetic_at_the_boundaries(model, tiny):
    mix = SyntheticMix(tiny, model, fraction=0.5)
    n, N = mix.n_real, len(mix)
    got = [mix.is_synthetic(i) for i in (0, n - 1, n, N - 1, -1, -N)]
    assert got == [False, False, True, True, True, False]


def test_synthetic_items_differ_across_sampler_calls(model, tiny):
    mix = SyntheticMix(tiny, model, balance={0: 6}, batch_size=2)   # three sampler calls
    x = torch.stack([mix[i][0] for i in range(mix.n_real, len(mix))])
    assert len(x) == 6 and len(torch.unique(x.flatten(1), dim=0)) == 6


@pytest.mark.filterwarnings("ignore:class .* has no real item:UserWarning")
def test_balanced_sampler_class_with_only_synthetic_items(model, tiny):
    no_d = Subset(tiny, [i for i in range(len(tiny)) if int(tiny.targets[i]) != 3])
    mix = SyntheticMix(no_d, model, balance={"d": 6})
    s = mix.balanced_sampler(real_share=0.25, num_samples=40_000,
                             generator=torch.Generator().manual_seed(0))
    t = torch.tensor(mix.targets)[torch.tensor(list(s))]
    share = torch.bincount(t, minlength=4).double() / len(t)
    assert share.tolist() == pytest.approx([0.25] * 4, abs=0.01)


def test_batch_mixer_labels_follow_the_batch_or_are_uniform(model):
    x, y = torch.rand(400, 1, 8, 8), torch.full((400,), 1)
    assert BatchMixer(model, 0.5)(x, y)[1][400:].unique().tolist() == [1]
    assert BatchMixer(model, 0.5, labels="uniform")(x, y)[1][400:].unique().tolist() == [0, 1, 2, 3]


def test_batch_mixer_refuses_unlabeled_or_unknown_batch_labels_every_call(model):
    """labels="batch" draws from the batch's labels: a -1 (unlabeled) or an id past the
    classes is refused at every call, whichever labels the draw picks, and whatever the
    sampler (a callable used to receive them silently)."""
    x = torch.rand(8, 1, 8, 8)
    one_unlabeled = torch.tensor([0, 1, 2, 3, 0, 1, 2, -1])
    seen = []

    def callable_sampler(lab):
        seen.append(lab)
        return torch.zeros(len(lab), 1, 8, 8)

    for sampler in (model, callable_sampler):
        mixer = BatchMixer(sampler, 0.2, num_classes=4, seed=0)     # draws 2 of the 8 labels
        for _ in range(10):
            with pytest.raises(ValueError, match=r"\[0, 4\); this batch's labels span \[-1, 3\] "
                                                 r"\(-1 marks an unlabeled item.*'uniform'"):
                mixer(x, one_unlabeled)
        with pytest.raises(ValueError, match=r"span \[0, 7\] \(the sampler makes 4 classes"):
            mixer(x, torch.arange(8))
    assert len(seen) == 2                     # the shape probe and the label/diversity probe
    _, y = BatchMixer(model, 0.5, labels="uniform")(x, one_unlabeled)
    assert y[:8].tolist() == one_unlabeled.tolist() and 0 <= int(y[8:].min())
    _, y = BatchMixer(model, 0.5, class_probs=[0, 1, 0, 0])(x, one_unlabeled)
    assert y[8:].tolist() == [1] * 8


def test_batch_mixer_checks_batch_labels_also_where_it_adds_no_item(model):
    """A short batch that gets no synthetic item (fraction 0.1 of 4 rounds to 0) is checked
    as any other: its -1 labels are refused now, not only by the next, larger batch; an empty
    batch passes."""
    mixer = BatchMixer(model, 0.1, num_classes=4, label_check=0)
    assert mixer.count(4) == 0
    with pytest.raises(ValueError, match=r"this batch's labels span \[-1, -1\]"):
        mixer(torch.rand(4, 1, 8, 8), torch.full((4,), -1))
    x, y = mixer(torch.rand(4, 1, 8, 8), torch.arange(4))
    assert len(x) == 4 and y.tolist() == [0, 1, 2, 3]
    x, y = mixer(torch.rand(0, 1, 8, 8), torch.zeros(0, dtype=torch.long))
    assert len(x) == 0 and len(y) == 0


def test_batch_mixer_replace_keeps_the_first_labels_and_masks_the_rest(model):
    x, y = torch.rand(12, 1, 8, 8), torch.arange(12) % 4
    x3, y3, mask = BatchMixer(model, 0.25, mode="replace", seed=1)(x, y, return_mask=True)
    assert torch.equal(y3[:9], y[:9]) and mask.tolist() == [False] * 9 + [True] * 3


def test_batch_mixer_seed_gives_the_models_own_samples(model):
    # labels, then the model's noise, come from one generator seeded with `seed`
    x, y = torch.rand(8, 1, 8, 8), torch.arange(8) % 4
    x2, y2 = BatchMixer(model, 0.5, seed=5)(x, y)
    g = torch.Generator().manual_seed(5)
    lab = y[torch.randint(8, (8,), generator=g)]
    assert torch.equal(y2[8:], lab)
    torch.testing.assert_close(x2[8:], model.sample(lab, g))
    assert not torch.equal(BatchMixer(model, 0.5, seed=6)(x, y)[0][8:], x2[8:])


# ------------------------------------------------------------------ imbalance tools, edge cases
def test_class_counts_skip_unlabeled_and_refuse_out_of_range_targets():
    assert class_counts([0, -1, 1, 1, -1], 2) == [1, 2]
    assert class_counts(torch.tensor([-1, 2])) == [0, 0, 1]
    with pytest.raises(ValueError, match="target 3 is out of range for 3 classes"):
        class_counts([0, 3], 3)


def test_long_tail_cut_starts_from_the_smallest_class_and_indices_are_sorted():
    from ganaug.imbalance import long_tailed_indices
    order = torch.randperm(140, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([0] * 30 + [1] * 20 + [2] * 50 + [3] * 40)[order]   # class 1 smallest
    idx = long_tailed_indices(targets, rho=4, seed=1)
    assert class_counts(targets[idx], 4) == long_tail_counts(20, 4, 4) == [20, 12, 7, 5]
    assert idx.tolist() == sorted(idx.tolist()) and len(set(idx.tolist())) == len(idx)


def test_balance_plan_refuses_bools_zero_and_negative_counts_and_ids():
    for bad in (True, 0, -3):
        with pytest.raises(ValueError, match="balance"):
            balance_plan([5, 3, 1], bad)
    with pytest.raises(ValueError, match="non-negative"):
        balance_plan([5, 3, 1], {0: -1})
    for key in (-1, True):
        with pytest.raises(ValueError, match="unknown class"):
            balance_plan([5, 3, 1], {key: 3})
    assert balance_plan([5, 3, 1], {1: 0}) == [0, 0, 0]
    with pytest.raises(ValueError, match=r"names class 0 twice \(0 and 'a'\)"):
        balance_plan([5, 3, 1], {0: 2, "a": 4}, ["a", "b", "c"])
    for strategy in ("mean", "max", 3):
        with pytest.raises(ValueError, match="nothing to balance: the dataset has no classes"):
            balance_plan([], strategy)


def test_quotas_refuse_negative_zero_and_nested_probabilities():
    for bad in ([-1, 2], [0, 0], [[1, 1]], []):
        with pytest.raises(ValueError, match="class probabilities"):
            quotas(4, bad)
    for bad in (-3, 5.5, True):
        with pytest.raises(ValueError, match="items to split must be a whole number >= 0"):
            quotas(bad, [1, 1])
    assert quotas(3, [1e308, 1e308]) in ([2, 1], [1, 2])       # their sum overflows float64
    assert quotas(5, [1e308, 3e307]) == quotas(5, [10, 3])


def _largest_remainder(total, probs):
    """Hamilton's method written out: floors, then one more for the largest remainders,
    ties to the lower class id."""
    s = sum(probs)
    raw = [p / s * total for p in probs]
    base = [math.floor(r) for r in raw]
    for c in sorted(range(len(raw)), key=lambda c: (-(raw[c] - base[c]), c))[:total - sum(base)]:
        base[c] += 1
    return base


def test_quotas_are_the_largest_remainder_split_and_break_ties_to_lower_ids():
    assert quotas(10, [1, 1, 1]) == [4, 3, 3]
    assert quotas(3, [1, 1]) == [2, 1]
    assert quotas(5, [1, 2, 2, 1]) == [1, 2, 1, 1]           # 0.83 1.67 1.67 0.83 -> ties
    rng = np.random.default_rng(0)
    for total in (1, 7, 50, 1001):
        for n in (2, 3, 10):
            probs = [float(v) for v in rng.choice([0.0, 0.5, 1.0, 1.5, 2.0, 3.0], n)]
            if sum(probs) == 0:
                continue
            q = quotas(total, probs)
            assert sum(q) == total and q == _largest_remainder(total, probs), (total, probs)


def test_long_tail_profile_of_one_or_no_class():
    assert long_tail_counts(7, 1, 10) == [7]                   # one count per class
    assert long_tail_counts(7, 0, 10) == []


# ------------------------------------------------------------------ counts, labels, seeds
def test_fraction_rounds_the_synthetic_count_to_the_nearest_item(tiny):
    sampler = lambda y: torch.zeros(len(y), 1, 8, 8)            # noqa: E731
    mix = SyntheticMix(tiny, sampler, fraction=0.3)              # 48 * 0.3 / 0.7 = 20.57
    assert mix.num_synthetic == 21 and len(mix) == 69
    assert sum(mix.class_counts()) == 69
    mix = SyntheticMix(tiny, sampler, fraction=0.3, class_probs=[0, 0, 1, 0])
    assert mix.class_counts() == [12, 12, 12 + 21, 12]


def test_gated_items_keep_their_labels_when_a_draw_overshoots(tiny):
    def clf(x):                         # a fixed classifier: 4 pixels are the logits
        return 10 * x.flatten(1)[:, :4]

    def often_right(y):                 # about 60% of the samples are clearly of class y
        x = torch.rand(len(y), 1, 8, 8) - 1                     # logits 10 * [-1, 0]
        hit = torch.rand(len(y)) < 0.6
        x[hit, 0, 0, y[hit]] = 1.0
        return x

    # small batches: several draws per class, and a draw may accept more than still needed
    mix = SyntheticMix(tiny, often_right, balance={0: 7, 1: 7, 3: 7}, gate=0.3,
                       gate_classifier=clf, batch_size=4)
    x = torch.stack([mix[i][0] for i in range(mix.n_real, len(mix))])
    y = torch.tensor(mix.targets[mix.n_real:])
    assert y.tolist() == [0] * 7 + [1] * 7 + [3] * 7
    assert torch.equal(clf(x).argmax(1), y)


def test_the_gate_uses_the_given_classifier_over_the_models_own(model, tiny):
    seen = []

    def sure_it_is_c(x):                # every sample is confidently class 2
        seen.append(len(x))
        return torch.tensor([0.0, 0.0, 100.0, 0.0]).expand(len(x), 4)

    mix = SyntheticMix(tiny, model, balance={2: 6}, gate=0.99, gate_classifier=sure_it_is_c,
                       gate_max_draws=1, batch_size=6)
    assert mix.num_synthetic == 6 and seen == [6]


def test_each_class_draws_its_own_noise(tiny):
    def ignores_labels(y):              # a sampler whose images depend on its noise alone
        return torch.rand(len(y), 1, 8, 8) * 2 - 1

    mix = SyntheticMix(tiny, ignores_labels, balance={0: 2, 1: 2, 2: 2}, batch_size=1)
    x = torch.stack([mix[i][0] for i in range(mix.n_real, len(mix))])
    assert len(torch.unique(x.flatten(1), dim=0)) == 6


def test_set_epoch_without_refresh_every_keeps_the_bank(model, tiny):
    mix = SyntheticMix(tiny, model, fraction=0.5, seed=2)
    before = torch.stack([mix[i][0] for i in range(mix.n_real, len(mix))])
    for epoch in (1, 2, 7):
        mix.set_epoch(epoch)
        after = torch.stack([mix[i][0] for i in range(mix.n_real, len(mix))])
        assert torch.equal(after, before) and mix.round == 0


def test_indexing_past_the_end_raises_and_negative_indices_count_from_the_end(model, tiny):
    mix = SyntheticMix(tiny, model, fraction=0.5)
    N = len(mix)
    for bad in (N, N + 1, -N - 1):
        with pytest.raises(IndexError):
            mix[bad]
    for i in (-1, -2, -mix.num_synthetic, -N):
        x, y = mix[i]
        assert torch.equal(x, mix[N + i][0]) and y == mix[N + i][1]
    for i in (np.int64(N - 1), torch.tensor(1)):       # what custom samplers may yield
        assert torch.equal(mix[i][0], mix[int(i)][0])
    for bad in (1.5, 2.0, "3", None):                    # one error naming the index
        with pytest.raises(TypeError, match=f"SyntheticMix indices are whole numbers.*{bad!r}"):
            mix[bad]


def test_balanced_sampler_defaults_share_bounds_and_generator(model, tiny):
    mix = SyntheticMix(tiny, model, balance={0: 12, 1: 4})
    assert len(mix.balanced_sampler()) == len(mix) == 64
    for share, want_real in ((1.0, True), (0.0, False)):
        idx = torch.tensor(list(mix.balanced_sampler(share, num_samples=400)))
        t = torch.tensor(mix.targets)[idx]
        real = idx < mix.n_real
        assert bool((real[(t == 0) | (t == 1)] == want_real).all())
    draw = lambda: list(mix.balanced_sampler(0.5, generator=torch.Generator().manual_seed(4)))  # noqa: E731
    assert draw() == draw()


# ------------------------------------------------------------------ BatchMixer, more
def test_batch_mixer_rounds_the_count_to_the_nearest_item(model):
    x, y = torch.rand(7, 1, 8, 8), torch.arange(7) % 4
    _, _, mask = BatchMixer(model, 0.5, mode="replace")(x, y, return_mask=True)
    assert int(mask.sum()) == 4                                  # 3.5 -> 4
    x, y = torch.rand(10, 1, 8, 8), torch.arange(10) % 4
    x2, _ = BatchMixer(model, 0.35)(x, y)                        # 10 * 0.35 / 0.65 = 5.38
    assert len(x2) == 15


def test_batch_mixer_applies_its_transform_to_synthetic_items_only(model):
    x, y = torch.rand(6, 1, 8, 8), torch.arange(6) % 4
    x2, _ = BatchMixer(model, 0.5, transform=lambda t: t * 0 + 7)(x, y)
    assert torch.equal(x2[:6], x) and bool((x2[6:] == 7).all())


def test_batch_mixer_keeps_the_label_dtype(model):
    x, y = torch.rand(6, 1, 8, 8), (torch.arange(6) % 4).to(torch.int32)
    for kw in (dict(), dict(labels="uniform"), dict(class_probs=[1, 1, 0, 0])):
        _, y2 = BatchMixer(model, 0.5, **kw)(x, y)
        assert y2.dtype == torch.int32 and len(y2) == 12, kw


def test_batch_mixer_refuses_float_labels(model):
    x = torch.rand(6, 1, 8, 8)
    for y in (torch.full((6,), 3.0), torch.full((6,), 3.7, dtype=torch.float64)):
        for kw in (dict(), dict(labels="uniform")):
            with pytest.raises(ValueError, match=r"labels must be integer class ids.*float"):
                BatchMixer(model, 0.5, label_check=0, **kw)(x, y)


class _BatchNormSampler(torch.nn.Module):
    """A hand-written sampler with BatchNorm, in training mode unless told."""

    def __init__(self):
        super().__init__()
        self.emb, self.bn = torch.nn.Embedding(4, 64), torch.nn.BatchNorm1d(64)

    def forward(self, y):
        return torch.tanh(self.bn(self.emb(y) + torch.randn(len(y), 64))).view(-1, 1, 8, 8)

    def generate(self, y):
        return self(y)


@pytest.mark.filterwarnings("ignore:the dataset's classes:UserWarning")
def test_a_module_sampler_in_training_mode_gets_a_warning_to_call_eval(tiny):
    import warnings
    g = _BatchNormSampler()
    with pytest.warns(UserWarning, match=r"SyntheticMix: the sampler \(_BatchNormSampler\) is an "
                                         r"nn.Module in training mode.*\.eval\(\)"):
        SyntheticMix(tiny, g, fraction=0.5)
    with pytest.warns(UserWarning, match=r"SyntheticMix: .* in training mode"):
        SyntheticMix(tiny, g.generate, fraction=0.5)          # a method of one
    with pytest.warns(UserWarning, match=r"BatchMixer: .* in training mode"):
        BatchMixer(g, 0.5, num_classes=4, label_check=0)
    g.eval()
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*training mode")
        SyntheticMix(tiny, g, fraction=0.5)
        BatchMixer(g, 0.5, num_classes=4, label_check=0)
        m = CLSGAN((1, 8, 8), 4, "mlp").train()              # ganaug's own: switched to eval
        SyntheticMix(tiny, m, fraction=0.5)
        BatchMixer(m, 0.5, label_check=0)


def test_a_sampler_whose_images_stay_in_0_1_gets_a_warning(tiny):
    import warnings
    with pytest.warns(UserWarning, match=r"the sampler's images span \[[\d.e-]+, [\d.e-]+\] but a "
                                         r"sampler must return images in \[-1, 1\].*2 \* x - 1"):
        SyntheticMix(tiny, lambda y: torch.rand(len(y), 1, 8, 8), fraction=0.5)   # sigmoid-like
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*the sampler's images span")
        SyntheticMix(tiny, lambda y: torch.rand(len(y), 1, 8, 8) * 2 - 1, fraction=0.5)
        SyntheticMix(tiny, lambda y: torch.rand(len(y), 1, 8, 8), fraction=0)      # no bank


def test_a_batch_mixer_sampler_whose_images_stay_in_0_1_gets_a_warning():
    import warnings
    x, y = torch.rand(8, 1, 8, 8) * 2 - 1, torch.arange(8) % 4
    mixer = BatchMixer(lambda y: torch.rand(len(y), 1, 8, 8), 0.5, num_classes=4)
    with pytest.warns(UserWarning, match=r"BatchMixer: the sampler's images span \[[\d.e-]+, "
                                         r"[\d.e-]+\] but a sampler must return images in \[-1, 1\]"):
        mixer(x, y)
    with warnings.catch_warnings():                    # once only, and not for [-1, 1]
        warnings.filterwarnings("error", message=".*the sampler's images span")
        mixer(x, y)
        BatchMixer(lambda y: torch.rand(len(y), 1, 8, 8) * 2 - 1, 0.5, num_classes=4)(x, y)


def _concatenated_bank(mix, round_=0):
    """The bank as generated by keeping every batch and concatenating them."""
    from ganaug.mix import gate_mask
    from ganaug.sampling import seed_for
    parts = []
    for c, need in enumerate(mix.plan):
        n_got, k = 0, 0
        while n_got < need:
            size = mix.batch_size if mix.gate is not None else min(mix.batch_size, need - n_got)
            labels = torch.full((size,), c, dtype=torch.long)
            x = mix.sampler(labels, seed_for(mix.seed, round_, c, k))
            k += 1
            if mix.gate is not None:
                x = x[gate_mask(mix._gate_logits(x), labels, mix.gate)]
            x = x[: need - n_got]
            parts.append(mix.format.from_unit(x))
            n_got += len(x)
    return torch.cat(parts)


@pytest.mark.parametrize("kind", ["tensor01", "uint8"])
def test_the_bank_is_written_in_place_and_matches_concatenated_batches(tiny, kind):
    def clf(x):                         # a fixed classifier: 4 pixels are the logits
        return 10 * x.flatten(1)[:, :4]

    noise = lambda y: torch.rand(len(y), 1, 8, 8) * 2 - 1      # noqa: E731
    for kw in (dict(balance={0: 7, 2: 11}, batch_size=4),
               dict(balance={0: 7, 2: 11}, batch_size=4, gate=0.3, gate_classifier=clf),
               dict(fraction=0.5, batch_size=3, shared_bank=True)):
        mix = SyntheticMix(TupleData(kind), noise, refresh_every=1, seed=5, **kw)
        assert mix.bank.dtype == (torch.uint8 if kind == "uint8" else torch.float32)
        assert torch.equal(mix.bank, _concatenated_bank(mix)), kw
        mix.set_epoch(1)
        assert torch.equal(mix.bank, _concatenated_bank(mix, 1)), kw


def test_batch_mixer_samples_the_ema_generator_in_eval_mode():
    import copy
    torch.manual_seed(0)
    m = CLSGAN((1, 8, 8), 4, "mlp")
    with torch.no_grad():                       # the live generator drifts from the EMA one
        for p in m.generator.parameters():
            p.add_(0.5)
    m.train()
    x, y = torch.rand(8, 1, 8, 8), torch.arange(8) % 4
    ema = copy.deepcopy(m.generator_ema).eval()
    x2, y2 = BatchMixer(m, 0.5, seed=5)(x, y)
    g = torch.Generator().manual_seed(5)
    torch.randint(8, (8,), generator=g)                          # the labels' draw
    z = torch.rand(8, m.noise_dim, generator=g) * 2 - 1
    torch.testing.assert_close(x2[8:], ema(z, y2[8:]))
    assert m.generator_ema.training                              # its mode is given back


def test_batch_mixer_warns_once_when_the_batch_is_not_in_its_value_range(model):
    import warnings
    y = torch.arange(8) % 4
    mixer = BatchMixer(model, 0.5)                               # default value_range (-1, 1)
    with pytest.warns(UserWarning, match=r"span \[0\.00124, 1\] but .*value_range=\(-1, 1\)"):
        mixer(torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(0)), y)  # [0, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", LabelAgreementWarning)  # an untrained model's samples
        warnings.simplefilter("ignore", DiversityWarning)
        mixer(torch.rand(8, 1, 8, 8), y)                         # said once, not every step
        BatchMixer(model, 0.5)(torch.rand(8, 1, 8, 8) * 2 - 1, y)            # [-1, 1]: fine
        BatchMixer(model, 0.5, value_range=(0, 1))(torch.rand(8, 1, 8, 8), y)
        x = torch.rand(8, 1, 8, 8) * 2 - 1                       # [-1, 1] images, normalised:
        x[0, 0, 0, :2] = torch.tensor([-1.0, 1.0])               # compared with where the
        BatchMixer(model, 0.5, transform=lambda t: (t - 0.5) / 0.25)(   # transform takes
            (x - 0.5) / 0.25, y)                                 # (-1, 1): fine
        BatchMixer(model, 0.0)(torch.rand(8, 1, 8, 8), y)       # nothing mixed in, no check
    with pytest.warns(UserWarning, match=r"span \[0, 255\].*\(0, 255\)"):
        x = torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8)
        x[0, 0, 0, :2] = torch.tensor([0, 255], dtype=torch.uint8)
        BatchMixer(model, 0.5, value_range=(0, 1))(x, y)


# ------------------------------------------------ do the samples carry their labels

def _encode(labels):
    """A sampler that writes each label into its image: label k -> every pixel 2k/3 - 1."""
    return (labels.float() / 3 * 2 - 1)[:, None, None, None].expand(-1, 1, 8, 8).clone()


class _Reader:
    """A classifier that reads the label back from the pixels, calling the images of the
    classes in ``wrong`` class 0; counts the images it saw."""

    def __init__(self, wrong=()):
        self.wrong, self.seen = set(wrong), 0

    def __call__(self, x):
        self.seen += len(x)
        k = ((x[:, 0, 0, 0] + 1) / 2 * 3).round().long()
        pred = torch.where(torch.isin(k, torch.tensor(sorted(self.wrong), dtype=torch.long)),
                           torch.zeros_like(k), k)
        return torch.nn.functional.one_hot(pred, 4).float() * 5


def test_label_agreement_is_the_share_of_the_first_bank_the_classifier_calls_its_label():
    import warnings
    data = TupleData("tensor01", n=40)
    reader = _Reader(wrong=[2, 3])
    with pytest.warns(LabelAgreementWarning, match=r"assigns only 50\.0% of the synthetic images "
                      r"to their label.*ganaug eval --run RUN.*gate=.*--g-cond-weight"):
        mix = SyntheticMix(data, _encode, fraction=0.5, gate_classifier=reader, refresh_every=1)
    assert mix.plan == [10, 10, 10, 10]
    assert mix.label_agreement == 0.5 and reader.seen == 40       # the first bank, once
    with warnings.catch_warnings():
        warnings.simplefilter("error", LabelAgreementWarning)
        mix.set_epoch(1)                                         # a new round: not counted again
    assert reader.seen == 40 and mix.label_agreement == 0.5
    # a classifier that calls every sample its label: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", LabelAgreementWarning)
        right = SyntheticMix(data, _encode, fraction=0.5, gate_classifier=_Reader())
    assert right.label_agreement == 1.0
    # 0.75 is the line: 25 wrong items in 100 is 0.75, no warning; 26 in 100 warns
    plan = {0: 45, 1: 30, 3: 25}
    with warnings.catch_warnings():
        warnings.simplefilter("error", LabelAgreementWarning)
        edge = SyntheticMix(data, _encode, balance=plan, gate_classifier=_Reader(wrong=[3]))
    assert edge.label_agreement == pytest.approx(0.75)
    with pytest.warns(LabelAgreementWarning, match=r"74\.0%"):
        SyntheticMix(data, _encode, balance={0: 45, 1: 29, 3: 26},
                     gate_classifier=_Reader(wrong=[3]))


def test_label_agreement_is_none_without_a_classifier_or_with_a_gate(model):
    import warnings
    data = TupleData("tensor01", n=40)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LabelAgreementWarning)
        assert SyntheticMix(data, _encode, fraction=0.5).label_agreement is None
        gated = SyntheticMix(data, _encode, fraction=0.5, gate=0.5,
                             gate_classifier=_Reader(wrong=[3]), class_probs=[1, 1, 1, 0])
    assert gated.label_agreement is None              # the gate decides what is kept
    # a ganaug model is its own classifier: an untrained one calls few samples their label
    with pytest.warns(LabelAgreementWarning):
        mix = SyntheticMix(data, model, fraction=0.5, seed=3)
    y = mix.syn_labels
    bank = mix.bank.float() * 2 - 1                   # the items' [0, 1] back to [-1, 1]
    expect = (model.predict(bank) == y).float().mean().item()
    assert mix.label_agreement == pytest.approx(expect, abs=1 / len(y) + 1e-6)


def test_batch_mixer_checks_once_that_the_samples_carry_their_labels():
    import warnings
    reader = _Reader(wrong=[2, 3])
    with pytest.warns(LabelAgreementWarning, match=r"BatchMixer: .*only 50\.0% .*ganaug eval "
                      r"--run RUN.*SyntheticMix\(gate=0\.5\).*--g-cond-weight"):
        mixer = BatchMixer(_encode, 0.5, num_classes=4, classifier=reader)
    assert mixer.label_agreement == 0.5 and reader.seen == 4 * 20     # 20 per class, once
    x, y = torch.zeros(8, 1, 8, 8), torch.arange(4).repeat(2)
    mixer(x, y)
    assert reader.seen == 80                            # batches are not checked
    few = _Reader(wrong=[3])
    with warnings.catch_warnings():
        warnings.simplefilter("error", LabelAgreementWarning)
        m = BatchMixer(_encode, 0.5, num_classes=4, classifier=few, label_check=5)
        assert m.label_agreement == 0.75 and few.seen == 20
        assert BatchMixer(_encode, 0.5, num_classes=4).label_agreement is None   # no classifier
        off = _Reader(wrong=[0, 1, 2, 3])
        assert BatchMixer(_encode, 0.5, num_classes=4, classifier=off,
                          label_check=0).label_agreement is None and off.seen == 0
    for bad in (-1, 2.5, True, "20"):
        with pytest.raises(ValueError, match="label_check must be a non-negative int"):
            BatchMixer(_encode, 0.5, num_classes=4, label_check=bad)


def test_batch_mixers_label_check_leaves_its_batches_and_the_global_rng_as_they_were(model):
    from ganaug.batch_mixer import LABEL_CHECK
    from ganaug.sampling import Sampler, seed_for
    x, y = torch.rand(16, 1, 8, 8) * 2 - 1, torch.arange(4).repeat(4)
    with pytest.warns(LabelAgreementWarning):           # an untrained model: few right
        checked = BatchMixer(model, 0.5, seed=7)
    unchecked = BatchMixer(model, 0.5, seed=7, label_check=0)
    for _ in range(2):
        a, b = checked(x, y), unchecked(x, y)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    labels = torch.arange(4).repeat_interleave(LABEL_CHECK)
    probe = Sampler(model)(labels, seed_for(7, 0, 0, 0))
    expect = (model.predict(probe) == labels).float().mean().item()
    assert checked.label_agreement == pytest.approx(expect)
    # a callable draws from torch's global RNG: the check restores it
    noisy = lambda lab: (torch.rand(len(lab), 1, 8, 8) * 2 - 1)   # noqa: E731
    state = torch.get_rng_state()
    with pytest.warns(LabelAgreementWarning):
        BatchMixer(noisy, 0.5, num_classes=4, classifier=_Reader())
    assert torch.equal(torch.get_rng_state(), state)


# ------------------------------------------------------------------ mutation-testing gaps
def test_batch_mixer_warns_for_0_1_batches_that_reach_exactly_0(model):
    """[0, 1] batches from ToTensor (MNIST's black background) have a minimum of exactly 0:
    still not (-1, 1) images."""
    y = torch.arange(8) % 4
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    x[0, 0, 0, :2] = torch.tensor([0.0, 1.0])
    with pytest.warns(UserWarning, match=r"span \[0, 1\] but .*value_range=\(-1, 1\)"):
        BatchMixer(model, 0.5, label_check=0)(x, y)


def test_a_gate_of_1_keeps_samples_the_classifier_is_certain_of(tiny):
    """gate is a confidence in (0, 1], 1 included: a softmax of exactly 1 passes it."""
    def certain(x):                     # softmax([0, 0, 100, 0]) is exactly 1.0 in float32
        return torch.tensor([0.0, 0.0, 100.0, 0.0]).expand(len(x), 4)

    noise = lambda y: torch.rand(len(y), 1, 8, 8) * 2 - 1      # noqa: E731
    mix = SyntheticMix(tiny, noise, balance={2: 3}, gate=1.0, gate_classifier=certain,
                       gate_max_draws=1, batch_size=3)
    assert mix.num_synthetic == 3


def test_the_gate_gives_up_after_exactly_gate_max_draws_times_the_quota(tiny):
    calls = []

    def sampler(y):
        calls.append(len(y))
        return torch.rand(len(y), 1, 8, 8) * 2 - 1

    def never_c(x):                     # every sample confidently class 0
        return torch.tensor([100.0, 0.0, 0.0, 0.0]).expand(len(x), 4)

    with pytest.raises(ValueError, match=r"0 of 3 samples accepted after 6 draws"):
        SyntheticMix(tiny, sampler, balance={2: 3}, gate=0.5, gate_classifier=never_c,
                     gate_max_draws=2, batch_size=3)
    assert calls == [4, 3, 3]           # the probe, then 2 x 3 draws, no third batch


def test_batch_mixer_refuses_a_batch_label_equal_to_num_classes():
    """Class ids are [0, C): a label C is one past the last class."""
    seen = []

    def sampler(lab):
        seen.append(lab)
        return torch.zeros(len(lab), 1, 8, 8)

    mixer = BatchMixer(sampler, 0.5, num_classes=4, label_check=0)
    with pytest.raises(ValueError, match=r"\[0, 4\); this batch's labels span \[0, 4\]"):
        mixer(torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 4]))
    assert len(seen) == 1               # the shape probe only: no label 4 reached the sampler


def test_batch_mixer_label_check_draws_each_chunk_from_a_seed_of_its_own():
    """A probe of more than one sampler call (here 4 x 300 = 1200 samples, 1024 a call):
    each call has its own seed, so a callable's noise is not repeated."""
    out = []

    def ignores_labels(y):
        out.append(torch.rand(len(y), 1, 8, 8) * 2 - 1)
        return out[-1]

    BatchMixer(ignores_labels, 0.5, num_classes=4, label_check=300)
    assert [len(x) for x in out] == [4, 1024, 176]        # the shape probe, then two chunks
    assert not torch.equal(out[1][:176], out[2])
