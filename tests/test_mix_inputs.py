"""SyntheticMix / BatchMixer / imbalance tools on the inputs users bring: other worker start
methods, Subset / ConcatDataset, value ranges that cannot be guessed, numpy numbers, bad
probabilities, transforms that fail."""
import copy
import math
import pickle
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset, TensorDataset

from ganaug import BatchMixer, CLSGAN, LabelAgreementWarning, SyntheticMix
from ganaug.checks import per_class
from ganaug.data import ImageSet, load_dataset
from ganaug.imbalance import (balance_plan, class_counts, dataset_classes, dataset_targets,
                              long_tail_counts, make_long_tailed, quotas)
from ganaug.sampling import Sampler

# the tests' batches, and their stand-in samplers' images, are arbitrary tensors; the range
# warnings have their own tests
pytestmark = [pytest.mark.filterwarnings("ignore:the batch's images span:UserWarning"),
              pytest.mark.filterwarnings("ignore:\\w+. the sampler's images span:UserWarning")]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return CLSGAN((1, 8, 8), 4, "mlp", ["a", "b", "c", "d"])


class Plain(Dataset):
    """Items (image, label) of a given dtype and scale; no .targets unless asked; counts reads."""

    def __init__(self, n=40, classes=4, dtype=torch.float32, scale=1.0, targets=False,
                 names=None):
        g = torch.Generator().manual_seed(2)
        self.x = (torch.rand(n, 1, 8, 8, generator=g) * scale).to(dtype)
        self.y = [i % classes for i in range(n)]
        if targets:
            self.targets = list(self.y)
        if names:
            self.classes = names
        self.reads = 0

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        self.reads += 1
        return self.x[i], self.y[i]


def _callable(value=None):
    def sampler(labels):
        if value is not None:
            return torch.full((len(labels), 1, 8, 8), float(value))
        return torch.rand(len(labels), 1, 8, 8) * 2 - 1
    return sampler


def _counting():
    calls = []

    def sampler(labels):
        calls.append(len(labels))
        return torch.zeros(len(labels), 1, 8, 8)
    return sampler, calls


class Items(Dataset):
    """Fixed items (an array or PIL image per item), labels i % 4."""

    def __init__(self, items):
        self.items, self.targets = items, [i % 4 for i in range(len(items))]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i], self.targets[i]


# ------------------------------------------------------------------ workers
def test_mix_pickles_without_its_sampler_and_spawn_workers_see_the_bank(model):
    data = Plain(n=24, names=["a", "b", "c", "d"], targets=True)
    mix = SyntheticMix(data, model, fraction=0.5, seed=3)
    with pytest.raises(RuntimeError):            # the model itself cannot be pickled ...
        pickle.dumps(model)
    copy = pickle.loads(pickle.dumps(mix))       # ... so workers get the mix without it
    assert copy.sampler is None and mix.sampler is not None
    assert all(torch.equal(copy[i][0], mix[i][0]) for i in range(len(mix)))
    with pytest.raises(RuntimeError, match="main process"):
        copy.set_epoch(0) or copy._generate(1)
    loader = DataLoader(mix, batch_size=len(mix), num_workers=1,
                        multiprocessing_context="spawn")
    assert not mix.bank.is_shared()
    x, y = next(iter(loader))
    assert torch.equal(x, torch.stack([mix[i][0] for i in range(len(mix))]))
    assert y.tolist() == mix.targets
    assert mix.bank.is_shared()         # as documented: spawn sends it through shared memory


def test_a_deep_copy_keeps_its_sampler_and_a_pickled_copy_says_what_it_is(model):
    data = Plain(n=24, names=["a", "b", "c", "d"], targets=True)
    mix = SyntheticMix(data, model, fraction=0.5, refresh_every=1, seed=3)
    deep = copy.deepcopy(mix)
    assert deep.sampler is mix.sampler and deep.bank is not mix.bank
    assert deep._live_round.is_shared()         # workers of the copy still see its rounds
    deep.set_epoch(1)
    assert deep.round == 1 and mix.round == 0 and int(mix._live_round) == 0
    mix.set_epoch(1)
    assert all(torch.equal(deep[i][0], mix[i][0]) for i in range(len(mix)))
    shared = SyntheticMix(data, model, fraction=0.5, seed=3, shared_bank=True)
    assert copy.deepcopy(shared).bank.is_shared()
    with pytest.raises(RuntimeError, match=r"pickled copy \(e\.g\. one made for a DataLoader "
                                           r"worker.*main process"):
        pickle.loads(pickle.dumps(mix)).set_epoch(2)


def _epochs_through_persistent_workers(mix, context, epochs=3):
    """(what the loader served, what the main process holds) for each epoch."""
    loader = DataLoader(mix, batch_size=len(mix), num_workers=1, persistent_workers=True,
                        multiprocessing_context=context)
    out = []
    for epoch in range(epochs):
        mix.set_epoch(epoch)
        x, _ = next(iter(loader))
        out.append((x, torch.stack([mix[i][0] for i in range(len(mix))])))
    return out


def test_persistent_workers_after_a_refresh_raise_instead_of_serving_the_old_bank(model):
    """Without shared_bank a worker keeps the bank of the round it started in: asked for a
    synthetic item after set_epoch moved on, it raises (it used to serve the old images)."""
    data = Plain(n=24, names=["a", "b", "c", "d"], targets=True)
    mix = SyntheticMix(data, model, fraction=0.5, refresh_every=1, seed=3)
    loader = DataLoader(mix, batch_size=len(mix), num_workers=1, persistent_workers=True)
    mix.set_epoch(0)
    next(iter(loader))
    mix.set_epoch(1)
    with pytest.raises(RuntimeError, match=r"round 0.*round 1.*persistent_workers.*shared_bank=True"):
        next(iter(loader))
    assert len(next(iter(DataLoader(mix, batch_size=len(mix), num_workers=1)))[0]) == len(mix)


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_shared_bank_reaches_persistent_workers_every_round(model, context):
    data = Plain(n=24, names=["a", "b", "c", "d"], targets=True)
    shared = SyntheticMix(data, model, fraction=0.5, refresh_every=1, seed=3, shared_bank=True)
    assert shared.bank.is_shared()
    served = _epochs_through_persistent_workers(shared, context)
    assert all(torch.equal(x, main) for x, main in served)
    syn = slice(shared.n_real, None)
    assert not torch.equal(served[0][0][syn], served[1][0][syn])        # a new round each epoch
    assert not torch.equal(served[1][0][syn], served[2][0][syn])
    plain = SyntheticMix(data, model, fraction=0.5, refresh_every=1, seed=3)
    plain.set_epoch(2)                           # the same images as without shared memory
    assert torch.equal(served[2][1], torch.stack([plain[i][0] for i in range(len(plain))]))


def test_without_shared_memory_the_mix_works_and_shared_bank_fails_before_generating(
        monkeypatch):
    """No /dev/shm (share_memory_ raises): the plain mix still works in the main process;
    shared_bank=True is refused with the bank's size and the fix, before the bank is made."""
    def no_shm(self):
        raise RuntimeError("unable to open shared memory object")

    calls = []

    def sampler(labels):
        calls.append(len(labels))
        return torch.zeros(len(labels), 1, 8, 8)

    data = Plain(n=24, names=["a", "b", "c", "d"], targets=True)
    monkeypatch.setattr(torch.Tensor, "share_memory_", no_shm)
    mix = SyntheticMix(data, sampler, fraction=0.5, refresh_every=1)
    mix.set_epoch(1)
    assert len(mix) == 48 and mix[47][0].shape == (1, 8, 8)
    calls.clear()
    with pytest.raises(RuntimeError, match=r"shared_bank=True could not put the 0\.0 MiB "
                                           r"synthetic bank .*--shm-size.*shared_bank=False"):
        SyntheticMix(data, sampler, fraction=0.5, shared_bank=True)
    assert calls == [4]                          # the probe (one image per class), no bank


def test_items_are_copies_of_the_bank(model):
    """An in-place transform (or a caller writing into an item) never changes the bank."""
    data = Plain(n=24, names=["a", "b", "c", "d"], targets=True)
    for shared in (False, True):
        mix = SyntheticMix(data, model, fraction=0.5, seed=3, shared_bank=shared)
        x, _ = mix[mix.n_real]
        before = x.clone()
        x.fill_(0.123)
        assert torch.equal(mix[mix.n_real][0], before)


# ------------------------------------------------------------------ datasets and targets
def test_targets_and_classes_through_subset_and_concat():
    a, b = Plain(targets=True, names=list("abcd")), Plain(targets=True, names=list("abcd"))
    cat = ConcatDataset([a, b])
    assert dataset_targets(cat).tolist() == a.y + b.y and a.reads == b.reads == 0
    assert dataset_classes(cat) == list("abcd")
    assert dataset_classes(ConcatDataset([a, Plain(names=list("wxyz"))])) is None
    sub = Subset(cat, [1, 2, 45])
    assert dataset_targets(sub).tolist() == [1, 2, 1] and dataset_classes(sub) == list("abcd")
    bare = Plain()                               # no .targets: read the subset's items only
    assert dataset_targets(Subset(bare, [3, 5])).tolist() == [3, 1] and bare.reads == 2


def test_targets_from_labels_attribute_and_from_a_concat_of_mixed_parts():
    svhn_like = Plain()                          # SVHN keeps its targets in .labels
    svhn_like.labels = np.array(svhn_like.y)
    assert dataset_targets(svhn_like).tolist() == svhn_like.y and svhn_like.reads == 0
    stored, bare = Plain(n=8, targets=True), Plain(n=8, classes=3)
    cat = ConcatDataset([stored, bare])          # one part has no stored targets: read the items
    assert dataset_targets(cat).tolist() == stored.y + bare.y


def test_long_tailed_generic_dataset_keeps_its_class_names_or_has_none():
    named = make_long_tailed(Plain(n=80, targets=True, names=list("abcd")), rho=4)
    assert named.classes == list("abcd") and dataset_classes(named) == list("abcd")
    assert dataset_classes(make_long_tailed(Plain(n=80, targets=True), rho=4)) is None


@pytest.mark.filterwarnings("ignore:class .* has no real item:UserWarning")
def test_subset_keeps_class_names_and_num_classes_covers_missing_top_class(model):
    data = Plain(targets=True, names=["a", "b", "c", "d"])
    no_d = Subset(data, [i for i in range(len(data)) if data.y[i] != 3])
    mix = SyntheticMix(no_d, model, balance={"d": 5})
    assert mix.classes == ["a", "b", "c", "d"] and mix.class_counts()[3] == 5
    bare = Subset(Plain(targets=True), [i for i in range(40) if i % 4 != 3])
    mix = SyntheticMix(bare, _callable(), balance="max", num_classes=4)
    assert mix.num_classes == 4 and mix.class_counts() == [10, 10, 10, 10]
    with pytest.raises(ValueError, match="num_classes"):
        SyntheticMix(no_d, model, balance="max", num_classes=5)


@pytest.mark.filterwarnings("ignore:classes .* have no real item:UserWarning")
def test_a_sampler_with_more_classes_than_the_largest_label_needs_num_classes(model):
    two = Plain(targets=True, classes=2)          # labels 0 and 1, no .classes; model: 4
    for kw in (dict(balance="max"), dict(fraction=0.5)):
        with pytest.raises(ValueError, match=r"trained for 4 classes but the data's largest "
                                             r"label is 1.*pass num_classes=4 if its last 2"):
            SyntheticMix(two, model, **kw)
    mix = SyntheticMix(two, model, balance="max", num_classes=4)
    assert mix.num_classes == 4 and mix.class_counts() == [20, 20, 20, 20]


class Labeled(Dataset):
    """Items labelled 3, 7 and 9, with the given .classes or none."""

    def __init__(self, names=None):
        self.targets = [3] * 4 + [7] * 4 + [9] * 4
        self.x = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        if names is not None:
            self.classes = names

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.x[i], self.targets[i]


def test_a_grey_sampler_on_grey_images_read_as_rgb_names_the_fix(model):
    """ganaug trains on a grey folder as 1 channel; torchvision's ImageFolder reads it as
    RGB: the shape error says to add Grayscale(), not to retrain or resize."""
    from torch.utils.data import TensorDataset
    y = torch.arange(8) % 4
    with pytest.raises(ValueError, match=r"\(1, 8, 8\) but the real items are \(3, 8, 8\).*"
                                         r"grey images read as RGB.*Grayscale\(\)"):
        SyntheticMix(TensorDataset(torch.rand(8, 3, 8, 8), y), model, fraction=0.5)
    with pytest.raises(ValueError, match=r"\(1, 8, 8\) but the real items are \(1, 16, 16\).*"
                                         r"train the sampler on this data or resize"):
        SyntheticMix(TensorDataset(torch.rand(8, 1, 16, 16), y), model, fraction=0.5)


@pytest.mark.filterwarnings("ignore:classes .* have no real item:UserWarning")
def test_labels_that_are_not_class_indices_are_refused_with_the_fix():
    sampler, calls = _counting()
    for names in ([3, 7, 9], ["three", "seven", "nine"]):
        with pytest.raises(ValueError, match=r"labels go up to 9 but it has 3 \.classes: label i "
                                             r"must be the index of its class in \.classes"):
            SyntheticMix(Labeled(names), sampler, balance="max")
    with pytest.raises(ValueError, match=r"labels go up to 9 but num_classes=3"):
        SyntheticMix(Labeled(), sampler, balance="max", num_classes=3)
    assert calls == []

    def three_classes(y):
        return torch.tanh(torch.tensor([-0.5, 0.0, 0.5])[y]).view(-1, 1, 1, 1).expand(-1, 1, 8, 8)

    with pytest.raises(ValueError, match=r"failed on labels 0\.\.9: IndexError.*took 10 classes "
                                         r"from its largest label, 9, though only 3 have items"):
        SyntheticMix(Labeled(), three_classes, balance="max")


def test_class_names_in_another_order_are_refused_and_other_names_warned_about(model):
    import warnings
    with pytest.raises(ValueError, match=r"in another order.*remap its targets"):
        SyntheticMix(Plain(targets=True, names=list("bacd")), model, fraction=0.5)
    with pytest.warns(UserWarning, match=r"\['w', 'x', 'y', 'z'\] are not the sampler's"):
        SyntheticMix(Plain(targets=True, names=list("wxyz")), model, fraction=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # the same names, or the model's and more
        warnings.simplefilter("ignore", LabelAgreementWarning)    # untrained: it would warn
        SyntheticMix(Plain(targets=True, names=list("abcd")), model, fraction=0.5)
        torch.manual_seed(0)
        digits = CLSGAN((1, 8, 8), 4, "mlp")           # "0".."3", as digits and MNIST name them
        SyntheticMix(Plain(targets=True, names=["0 - zero", "1 - one", "2 - two", "3-three"]),
                     digits, fraction=0.5)
    # a digits or MNIST model's names are real ones: words in their sorted order, or its own
    # names sorted as strings, are another order and are warned about (not refused: a model
    # without names of its own, "0".."K-1", trained on the dataset's labels is right)
    with pytest.warns(UserWarning, match=r"\['four', 'one', 'three', 'two'\] are not the "):
        SyntheticMix(Plain(targets=True, names=["four", "one", "three", "two"]), digits,
                     fraction=0.5)
    with pytest.warns(UserWarning, match=r"\['0', '2', '1', '3'\] are the sampler's "
                                         r"\['0', '1', '2', '3'\] in another order: label i "
                                         r"is the sampler's i-th class .*label 1, named '2' "
                                         r"here, gets images of the sampler's '1'"):
        SyntheticMix(Plain(targets=True, names=list("0213")), digits, fraction=0.5)
    with pytest.warns(UserWarning, match=r"\['0x', '1', '2', '3'\] are not the sampler's"):
        SyntheticMix(Plain(targets=True, names=["0x", "1", "2", "3"]), digits, fraction=0.5)


class Remapped(Dataset):
    """torchvision's way: raw ``.targets``, items' labels through ``target_transform``; the
    raw targets are long-tailed (14, 2, 2, 2), the served ones (2, 2, 2, 14)."""
    classes = ["a", "b", "c", "d"]

    def __init__(self, target_transform=lambda y: 3 - y, n=None):
        g = torch.Generator().manual_seed(0)
        self.x = torch.rand(20, 1, 8, 8, generator=g)
        self.targets = [0] * 14 + [1, 1, 2, 2, 3, 3]
        self.target_transform, self.n = target_transform, n

    def __len__(self):
        return self.n or len(self.targets)

    def __getitem__(self, i):
        y = self.targets[i]
        return self.x[i], (self.target_transform(y) if self.target_transform else y)


def test_counts_come_from_the_served_labels_under_a_target_transform(model):
    data = Remapped()
    assert dataset_targets(data).tolist() == [int(data[i][1]) for i in range(20)]
    g = torch.Generator().manual_seed(0)
    image_set = ImageSet(torch.rand(20, 1, 8, 8, generator=g) * 2 - 1, torch.tensor(data.targets),
                         list("abcd"), target_transform=lambda t: 3 - t)
    for d in (data, image_set, Subset(data, list(range(20)))):
        mix = SyntheticMix(d, model, balance="max")
        served = class_counts([mix[i][1] for i in range(len(mix))], 4)
        assert mix.plan == [12, 12, 12, 0] and served == mix.class_counts() == [14] * 4
    raw = SyntheticMix(Remapped(target_transform=None), model, balance="max")  # as before
    assert raw.plan == [0, 12, 12, 12]
    lt = make_long_tailed(data, rho=2)          # the profile cuts the served classes
    assert class_counts([lt[i][1] for i in range(len(lt))], 4) == long_tail_counts(2, 4, 2)


def test_stale_targets_are_not_used(model):
    data = Remapped(target_transform=None, n=16)        # 20 stored targets, 16 items
    assert dataset_targets(data).tolist() == data.targets[:16]
    mix = SyntheticMix(data, model, fraction=0.5)
    assert mix.n_real == 16 and len(mix.targets) == len(mix) == 32
    assert [mix[i][1] for i in range(len(mix))] == mix.targets
    assert mix.class_counts() == [28, 4, 0, 0]


@pytest.mark.parametrize("as_array", [np.array, torch.tensor])
def test_classes_as_an_array_or_tensor(model, as_array):
    data = Plain(n=80, targets=True)
    data.targets = np.array(data.y)
    data.classes = as_array([0, 1, 2, 3])
    assert dataset_classes(data) == [0, 1, 2, 3]
    assert all(type(c) is int for c in dataset_classes(data))
    plain = CLSGAN((1, 8, 8), 4, "mlp")                # default names "0".."3": no warning
    assert SyntheticMix(data, plain, fraction=0.5).classes == [0, 1, 2, 3]
    assert make_long_tailed(data, rho=4).classes == [0, 1, 2, 3]
    data.classes = np.array(list("abcd"))
    assert dataset_classes(data) == list("abcd")
    assert SyntheticMix(data, model, fraction=0.5).classes == list("abcd")
    data.classes = np.array([])
    assert dataset_classes(data) is None


class DictItems(Dataset):
    """Hugging Face style items: {"image": ..., "label": ...}."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return {"image": torch.rand(1, 8, 8), "label": i % 4}


class Triples(Dataset):
    """(image, label, metadata) items, with .targets unless asked."""

    def __init__(self, targets=True):
        if targets:
            self.targets = [i % 4 for i in range(8)]

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return torch.rand(1, 8, 8), i % 4, "meta"


def test_items_that_are_not_image_label_pairs_are_refused_at_construction():
    sampler, calls = _counting()
    with pytest.raises(ValueError, match=r"\(image, label\) pairs, got a dict with keys "
                                         r"\['image', 'label'\]; wrap the dataset"):
        SyntheticMix(DictItems(), sampler, fraction=0.5)
    with pytest.raises(ValueError, match=r"\(image, label\) pairs, got a tuple of 3 elements"):
        SyntheticMix(Triples(), sampler, fraction=0.5)
    assert calls == []
    with pytest.raises(ValueError, match=r"\(image, label\) pairs, got a dict"):
        dataset_targets(DictItems())
    # reading labels alone (make_long_tailed) takes any item's second element, as before
    assert dataset_targets(Triples(targets=False)).tolist() == [i % 4 for i in range(8)]


@pytest.mark.parametrize("bad", [(1, -1), (0, 0), (0, math.inf), (math.nan, 1), ("0", "1"),
                                 (0, 1, 2), 255])
def test_bad_value_ranges_are_refused(model, bad):
    sampler, calls = _counting()
    with pytest.raises(ValueError, match=r"value_range must be two finite numbers \(lo, hi\) "
                                         r"with lo < hi"):
        SyntheticMix(Plain(targets=True), sampler, fraction=0.5, value_range=bad)
    assert calls == []
    with pytest.raises(ValueError, match="value_range must be"):
        BatchMixer(model, 0.5, value_range=bad)


# ------------------------------------------------------------------ value ranges
def test_value_range_is_not_guessed_for_non_8_bit_items():
    twelve_bit = Plain(dtype=torch.int16, scale=4095, targets=True)
    with pytest.raises(ValueError, match="value_range=.*12-bit"):
        SyntheticMix(twelve_bit, _callable(), fraction=0.5)
    mix = SyntheticMix(twelve_bit, _callable(1.0), fraction=0.5, value_range=(0, 4095))
    x, _ = mix[mix.n_real]
    assert x.dtype == torch.int16 and int(x.max()) == 4095
    sixteen = Plain(scale=16, targets=True)                 # digits' raw 0..16 scale
    with pytest.raises(ValueError, match="value_range="):
        SyntheticMix(sixteen, _callable(), fraction=0.5)
    x, _ = SyntheticMix(sixteen, _callable(1.0), fraction=0.5, value_range=(0, 16))[40]
    assert float(x.max()) == 16
    dark = Plain(dtype=torch.uint8, scale=40, targets=True)  # uint8 is 0..255 whatever it holds
    x, _ = SyntheticMix(dark, _callable(1.0), fraction=0.5)[40]
    assert x.dtype == torch.uint8 and int(x.max()) == 255


# ------------------------------------------------------------------ bad input, early
def test_bad_probabilities_and_numpy_numbers(model):
    data = Plain(targets=True, names=list("abcd"))
    with pytest.raises(ValueError, match="class_probs= goes with fraction="):
        SyntheticMix(data, model, balance="max", class_probs=[1, 0, 0, 0])
    for bad in ([math.nan, 1, 1, 1], [math.inf, 1, 1, 1]):
        with pytest.raises(ValueError, match="finite"):
            SyntheticMix(data, model, fraction=0.3, class_probs=bad)
        with pytest.raises(ValueError, match="finite"):
            BatchMixer(model, 0.3, class_probs=bad)
    assert SyntheticMix(data, model, balance=np.int64(12)).class_counts() == [12] * 4
    assert SyntheticMix(data, model, balance={np.int64(2): np.int32(3)}).plan == [0, 0, 3, 0]
    mixer = BatchMixer(_callable(), 0.5, class_probs=np.array([0.0, 0, 1, 0]))
    _, y = mixer(torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.long))
    assert y[4:].tolist() == [2] * 4


def test_a_failing_transform_fails_before_the_bank_is_generated():
    sampler, calls = _counting()

    def broken(x):
        raise RuntimeError("bug in my transform")

    with pytest.raises(RuntimeError, match="bug in my transform"):
        SyntheticMix(Plain(targets=True), sampler, balance=10_000, transform=broken)
    assert calls == [4]                          # the one probe, no bank


def test_batch_mixer_rounds_for_integer_batches():
    mixer = BatchMixer(_callable(-0.5), 0.5, num_classes=4, value_range=(0, 255))
    x, _ = mixer(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), torch.zeros(2, dtype=torch.long))
    assert x.dtype == torch.uint8 and x[2:].unique().tolist() == [64]      # 63.75, not 63


def test_batch_mixer_clamps_a_callables_stray_values_before_the_cast():
    """A callable past the [-1, 1] contract after its probe (1.01): white stays 255 in a
    uint8 batch, as SyntheticMix keeps it, instead of wrapping to 0."""
    calls = []

    def sampler(labels):
        calls.append(len(labels))
        return torch.full((len(labels), 1, 8, 8), 1.0 if len(calls) == 1 else 1.01)
    mixer = BatchMixer(sampler, 0.5, num_classes=4, value_range=(0, 255))
    x, _ = mixer(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), torch.zeros(2, dtype=torch.long))
    assert len(calls) >= 2 and x[2:].unique().tolist() == [255]


# ------------------------------------------------------------------ long-tailed copies
def test_make_long_tailed_keeps_transforms_and_refuses_empty_classes():
    tr, _ = load_dataset("digits")
    tr = ImageSet(tr.images, tr.targets, tr.classes, transform=lambda x: x + 10,
                  target_transform=lambda y: 9 - y)
    lt = make_long_tailed(tr, rho=10)
    assert float(lt[0][0].min()) >= 9 and lt.target_transform is tr.target_transform
    served = class_counts([lt[i][1] for i in range(len(lt))], 10)    # cut by the served labels
    assert served == long_tail_counts(min(tr.class_counts()), 10, 10)
    no9 = ImageSet(tr.images[tr.targets != 9], tr.targets[tr.targets != 9], tr.classes)
    with pytest.raises(ValueError, match=r"class\(es\) \[9\] of 10 have no items"):
        make_long_tailed(no9, rho=10)
    for rho in (math.nan, math.inf, 0.5, True):
        with pytest.raises(ValueError, match="rho"):
            make_long_tailed(tr, rho=rho)


@pytest.mark.gpu
def test_device_copies_the_callers_model_instead_of_moving_it(model):
    data = Plain(targets=True, names=list("abcd"))
    mix = SyntheticMix(data, model, fraction=0.3, device="cuda")
    assert model.device.type == "cpu" and mix.sampler.device.type == "cuda"
    BatchMixer(model, 0.3, device="cuda")
    assert model.device.type == "cpu"
    on_gpu = CLSGAN((1, 8, 8), 4, "mlp", ["a", "b", "c", "d"]).to("cuda:0")
    mix = SyntheticMix(data, on_gpu, fraction=0.3, device="cuda")     # same GPU: no copy
    assert mix.sampler.model is on_gpu


class Shaped(Dataset):
    """Non-square 6x8 images (H != W) with a left-to-right ramp, as numpy HWC uint8 or PIL."""

    def __init__(self, kind, n=8):
        ramp = (np.arange(8) * 30).astype(np.uint8)              # along the width
        self.img = np.broadcast_to(ramp, (6, 8)).copy()
        self.kind, self.targets = kind, [i % 4 for i in range(n)]

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        if self.kind == "pil":
            from PIL import Image
            return Image.fromarray(self.img, mode="L"), self.targets[i]
        return self.img[..., None], self.targets[i]


@pytest.mark.parametrize("kind", ["numpy", "pil"])
def test_non_square_items_keep_height_and_width(kind):
    ramp = torch.linspace(-1, 1, 8).expand(1, 6, 8)             # synthetic ramp along the width
    mix = SyntheticMix(Shaped(kind), lambda y: ramp.expand(len(y), 1, 6, 8), fraction=0.5)
    real, syn = mix[0][0], mix[len(mix) - 1][0]
    arr = np.asarray(syn)
    assert arr.shape == np.asarray(real).shape == ((6, 8, 1) if kind == "numpy" else (6, 8))
    row = arr[0, :, 0] if kind == "numpy" else arr[0]
    assert row[0] == 0 and row[-1] == 255 and (np.diff(row.astype(int)) > 0).all()


def test_synthetic_items_use_the_real_items_range(tiny):
    # tiny's images are floats in [-1, 1]: -1 stays -1 (not 0, as for [0, 1] items)
    mix = SyntheticMix(tiny, _callable(-1.0), fraction=0.5)
    assert mix.format.value_range == (-1.0, 1.0)
    assert float(mix[len(mix) - 1][0].min()) == -1.0


def test_integer_items_are_rounded_not_truncated():
    dark = Plain(dtype=torch.uint8, scale=40, targets=True)
    x, _ = SyntheticMix(dark, _callable(-0.5), fraction=0.5)[40]   # 63.75
    assert x.dtype == torch.uint8 and x.unique().tolist() == [64]


def test_sampler_outputs_are_clamped_into_the_items_range():
    # 1.0005 passes the sampler check (tolerance 1e-3) but items stay inside [0, 1]
    x, _ = SyntheticMix(Plain(targets=True), _callable(1.0005), fraction=0.5)[40]
    assert float(x.max()) == 1.0


def test_sampler_below_minus_one_is_refused():
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        SyntheticMix(Plain(targets=True), _callable(-3.0), fraction=0.5)


def test_a_callable_sampler_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    SyntheticMix(Plain(targets=True), _callable(), fraction=0.5)
    assert torch.equal(torch.rand(3), expected)


def test_albumentations_round_trips_items_in_minus_one_one(tiny):
    A = pytest.importorskip("albumentations")
    mix = SyntheticMix(tiny, _callable(), fraction=0.5, transform=A.Compose([A.NoOp()]))
    plain = SyntheticMix(tiny, _callable(), fraction=0.5)
    for i in (0, len(mix) - 1):
        x, raw = mix[i][0], plain[i][0]
        assert x.dtype == raw.dtype and torch.allclose(x, raw, atol=1 / 255 + 1e-6), i


@pytest.mark.parametrize("kind", ["numpy", "tensor"])
def test_albumentations_back_to_integer_items_rounds(kind):
    A = pytest.importorskip("albumentations")
    img = np.full((8, 8, 1), 145, dtype=np.int16)             # 12-bit items, HWC or CHW
    img[0, 0, 0] = 4095
    if kind == "tensor":
        img = torch.from_numpy(img).permute(2, 0, 1).contiguous()
    mix = SyntheticMix(Items([img] * 8), _callable(), fraction=0.5, value_range=(0, 4095),
                       transform=A.Compose([A.NoOp()]))
    x, _ = mix[0]                       # 145 -> 9 of 255 -> 144.53 -> 145 (truncation gives 144)
    assert type(x) is type(img) and x.dtype == img.dtype and x.shape == img.shape
    assert x.flatten()[0] == 4095 and x.flatten()[9] == 145


# ------------------------------------------------------------------ more bad input, early
@pytest.mark.parametrize("kw,match", [
    (dict(fraction=0.5, balance="max"), "not both"),
    (dict(fraction=0.5, refresh_every=0), "refresh_every"),
    (dict(balance="max", gate=0.0, gate_classifier=lambda x: x.flatten(1)[:, :4]), "gate must be"),
    (dict(fraction=0.5, batch_size=-1), "batch_size"),
    (dict(balance={0: 3}, gate=0.5, gate_classifier=lambda x: x.flatten(1)[:, :4],
          gate_max_draws=0), "gate_max_draws"),
    (dict(fraction="0.3"), r"fraction must be a number in \[0, 1\).*str '0.3'"),
    (dict(fraction=0.5, seed=None), "seed must be an int.*got None"),
    (dict(fraction=0.5, batch_size=2.5), r"batch_size must be a positive int.*got float 2.5"),
    (dict(balance="max", gate="0.5", gate_classifier=lambda x: x.flatten(1)[:, :4]),
     r"gate must be a confidence in \(0, 1\].*got str '0.5'"),
    (dict(balance="max", num_classes="4"), "num_classes must be a positive int.*got str '4'"),
    (dict(balance="max", num_classes=4.0), "num_classes must be a positive int.*got float"),
    (dict(balance={0: 3}, gate=0.5, gate_classifier=lambda x: x.flatten(1)[:, :4],
          gate_max_draws=2.5), "gate_max_draws must be a positive int"),
    (dict(fraction=0.5, refresh_every=True), "refresh_every must be a positive int.*bool"),
    (dict(fraction=0.5, class_probs="abcd"), "class_probs must be a list of numbers"),
    (dict(fraction=0.5, class_probs=["1", "1", "1", "1"]), "class_probs must be a list of"),
    (dict(fraction=0.5, transform="flip"), "transform must be a callable.*str 'flip'"),
])
def test_bad_arguments_are_refused_before_the_sampler_is_called(kw, match):
    sampler, calls = _counting()
    with pytest.raises(ValueError, match=match):
        SyntheticMix(Plain(targets=True), sampler, **kw)
    assert calls == []


@pytest.mark.parametrize("kw,match", [
    (dict(num_classes="4"), "num_classes must be a positive int.*got str '4'"),
    (dict(num_classes=0), "num_classes must be a positive int.*got int 0"),
    (dict(num_classes=4, class_probs=["a", "b", "c", "d"]), "class_probs must be a list of"),
    (dict(num_classes=4, transform=3), "transform must be a callable.*int 3"),
])
def test_batch_mixer_refuses_bad_arguments_before_the_sampler_is_called(kw, match):
    sampler, calls = _counting()
    with pytest.raises(ValueError, match=match):
        BatchMixer(sampler, 0.5, **kw)
    assert calls == []


def test_balanced_sampler_refuses_a_share_that_is_not_a_number():
    mix = SyntheticMix(Plain(targets=True), _callable(), fraction=0.5)
    for bad in ("0.5", None, True):
        with pytest.raises(ValueError, match="real_share must be a number in"):
            mix.balanced_sampler(bad)


def test_empty_unlabeled_or_uncounted_real_data_is_refused():
    sampler, calls = _counting()
    with pytest.raises(ValueError, match="empty"):
        SyntheticMix(Plain(n=0, targets=True), sampler, fraction=0.5)
    unlabeled = Plain(targets=True)
    unlabeled.targets[0] = unlabeled.y[0] = -1
    with pytest.raises(ValueError, match="unlabeled"):
        SyntheticMix(unlabeled, sampler, balance="max")
    for bad in (0, -2, True):
        with pytest.raises(ValueError, match="num_classes"):
            SyntheticMix(Plain(targets=True), sampler, balance="max", num_classes=bad)
    with pytest.raises(ValueError, match="class_probs has 3 entries for 4 classes"):
        SyntheticMix(Plain(targets=True), sampler, fraction=0.5, class_probs=[1, 1, 1])
    with pytest.raises(ValueError, match="class_probs has 5 entries for 4 classes"):
        SyntheticMix(Plain(targets=True), sampler, fraction=0.5, class_probs=[1, 1, 1, 1, 1])
    assert calls == []


def test_a_zero_fraction_adds_no_synthetic_items():
    mix = SyntheticMix(Plain(targets=True), _callable(), fraction=0)
    assert len(mix) == 40 and mix.num_synthetic == 0 and mix.class_counts() == [10] * 4
    with pytest.raises(IndexError):
        mix[40]


def test_samplers_that_break_the_contract_are_refused():
    data = Plain(targets=True)
    with pytest.raises(TypeError, match="sampler must be"):
        SyntheticMix(data, 42, fraction=0.5)
    with pytest.raises(ValueError, match="for 4 labels it returned shape"):
        SyntheticMix(data, lambda y: torch.zeros(1, 1, 8, 8), fraction=0.5)   # one image only
    with pytest.raises(ValueError, match="non-finite"):
        SyntheticMix(data, lambda y: torch.full((len(y), 1, 8, 8), math.nan), fraction=0.5)
    with pytest.raises(TypeError, match="sampler must be"):
        BatchMixer(42, 0.5, num_classes=4)


def test_batch_mixer_bad_arguments_are_refused(model):
    with pytest.raises(ValueError, match="fraction"):
        BatchMixer(model, 1.0)
    with pytest.raises(ValueError, match="mode must be"):
        BatchMixer(model, 0.5, mode="prepend")
    with pytest.raises(ValueError, match="labels must be"):
        BatchMixer(model, 0.5, labels="unifrom")
    with pytest.raises(ValueError, match="trained for 4 classes"):
        BatchMixer(model, 0.5, num_classes=10)
    with pytest.raises(ValueError, match="class_probs must be 4"):
        BatchMixer(model, 0.5, class_probs=[1, 1, 1])
    with pytest.raises(ValueError, match=r"fraction must be a number in \[0, 1\).*str '0.25'"):
        BatchMixer(model, "0.25")
    with pytest.raises(ValueError, match="seed must be an int.*got None"):
        BatchMixer(model, 0.5, seed=None)


# ------------------------------------------------------------------ formats
def test_value_range_is_read_from_many_items_not_the_first():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 1, 8, 8, generator=g) * 2 - 1
    x[0] = x[0].abs()                           # the first item alone looks like [0, 1]
    mix = SyntheticMix(Items(list(x)), _callable(-1.0), fraction=0.5)
    assert mix.format.value_range == (-1.0, 1.0)
    assert float(mix[len(mix) - 1][0].min()) == -1.0


@pytest.mark.parametrize("kind", ["numpy", "tensor"])
def test_grey_items_without_a_channel_axis_get_synthetic_items_alike(kind):
    grey = (np.arange(64, dtype=np.uint8) * 3).reshape(8, 8)          # (H, W) uint8
    items = [grey if kind == "numpy" else torch.from_numpy(grey)] * 4
    mix = SyntheticMix(Items(items), _callable(1.0), fraction=0.5)
    assert mix.format.shape_chw == (1, 8, 8) and mix.format.value_range == (0.0, 255.0)
    syn = mix[len(mix) - 1][0]
    assert type(syn) is type(items[0]) and syn.shape == (8, 8) and syn.dtype == items[0].dtype
    assert int(syn.max()) == int(syn.min()) == 255


def test_albumentations_on_grey_items_without_a_channel_axis():
    A = pytest.importorskip("albumentations")
    grey = torch.from_numpy((np.arange(64, dtype=np.uint8) * 3).reshape(8, 8))
    mix = SyntheticMix(Items([grey] * 4), _callable(), fraction=0.5,
                       transform=A.Compose([A.NoOp()]))
    plain = SyntheticMix(Items([grey] * 4), _callable(), fraction=0.5)
    for i in (0, len(mix) - 1):
        x, raw = mix[i][0], plain[i][0]
        assert x.shape == (8, 8) and x.dtype == torch.uint8 and torch.equal(x, raw), i


def test_items_that_are_not_images_are_refused():
    with pytest.raises(ValueError, match=r"numpy items must be images.*shape \(64,\)"):
        SyntheticMix(Items([np.zeros(64)] * 4), _callable(), fraction=0.5)
    with pytest.raises(ValueError, match=r"tensor items must be images.*shape \(2, 1, 8, 8\)"):
        SyntheticMix(Items([torch.zeros(2, 1, 8, 8)] * 4), _callable(), fraction=0.5)


def test_pil_items_are_rounded_not_truncated():
    from PIL import Image
    img = Image.fromarray(np.zeros((8, 8), dtype=np.uint8), mode="L")
    syn, _ = SyntheticMix(Items([img] * 4), _callable(-0.5), fraction=0.5)[-1]   # 63.75
    assert syn.mode == "L" and np.asarray(syn).flatten().tolist() == [64] * 64


def test_numpy_float64_and_chw_items_get_synthetic_items_alike():
    hwc = [np.zeros((8, 8, 1), dtype=np.float64)] * 4
    chw = [np.zeros((1, 8, 8), dtype=np.float32)] * 4
    for items in (hwc, chw):
        mix = SyntheticMix(Items(items), _callable(1.0), fraction=0.5)
        syn = mix[len(mix) - 1][0]
        assert isinstance(syn, np.ndarray)
        assert syn.shape == items[0].shape and syn.dtype == items[0].dtype
        assert float(syn.max()) == 1.0


def test_albumentations_on_pil_items_gives_pil_items():
    A = pytest.importorskip("albumentations")
    from PIL import Image
    ramp = np.tile((np.arange(8) * 30).astype(np.uint8), (8, 1))
    items = [Image.fromarray(ramp, mode="L")] * 4
    mix = SyntheticMix(Items(items), _callable(), fraction=0.5, transform=A.Compose([A.NoOp()]))
    plain = SyntheticMix(Items(items), _callable(), fraction=0.5)
    for i in (0, len(mix) - 1):
        x, raw = mix[i][0], plain[i][0]
        assert isinstance(x, Image.Image) and x.mode == "L" and x.size == (8, 8)
        assert np.array_equal(np.asarray(x), np.asarray(raw)), i


def test_a_transform_that_fails_on_synthetic_items_fails_at_construction():
    def picky(x):                       # the real items are in [0, 1); the sampler gives 1.0
        if float(x.max()) >= 1:
            raise RuntimeError("cannot take a white image")
        return x

    with pytest.raises(RuntimeError, match="white image"):
        SyntheticMix(Plain(targets=True), _callable(1.0), fraction=0.5, transform=picky)


# ------------------------------------------------------------------ mutation-testing gaps
def test_float_items_in_0_1_that_reach_exactly_0_are_read_as_0_1():
    """ToTensor's [0, 1] images have exact 0s (black backgrounds): still [0, 1], so a
    sampler's -1 is 0, not -1."""
    data = Plain(targets=True)
    data.x[:, :, :2] = 0.0                                      # black top rows
    mix = SyntheticMix(data, _callable(-1.0), fraction=0.5)
    assert mix.format.value_range == (0.0, 1.0)
    assert float(mix[len(mix) - 1][0].min()) == 0.0


# ------------------------------------------------------------------ inputs of the API test drive
class Labels(Plain):
    """Plain's images with the given labels, as the items' labels or as ``.targets``."""

    def __init__(self, labels, stored=False, **kw):
        super().__init__(n=len(labels), **kw)
        self.y = list(labels)
        if stored:
            self.targets = torch.tensor(labels)


def test_a_side_array_of_labels_not_one_per_item_is_not_read():
    """.labels holding something else than one label per item (soft scores, N x C) is not
    the targets: the items' own labels are read, as before the fractional-label check."""
    data = Labels([0, 1, 2, 3] * 2)
    data.labels = torch.rand(8, 4)
    assert dataset_targets(data).tolist() == [0, 1, 2, 3] * 2


@pytest.mark.parametrize("stored", [False, True], ids=["items", "targets"])
def test_fractional_labels_are_refused_and_whole_floats_taken(stored):
    """A label of 0.5 is no class id: refused (it was read as class 0), whether the items
    carry it or ``.targets`` does; 3.0 is class 3."""
    with pytest.raises(ValueError, match="labels must be whole class ids.*include 0.5"):
        SyntheticMix(Labels([0.5, 1.0, 2.0, 3.0] * 4, stored), _callable(), fraction=0.5)
    mix = SyntheticMix(Labels([0.0, 1.0, 2.0, 3.0] * 4, stored), _callable(), fraction=0.5)
    assert mix.targets[:4] == [0, 1, 2, 3] and mix[3][1] == 3


def test_a_value_range_that_the_items_leave_is_refused():
    """uint8 items (0..255) given value_range=(0, 1): every synthetic item would be black
    beside them; refused, naming both ranges."""
    with pytest.raises(ValueError, match=r"value_range=\(0, 1\) but the real items' values "
                                         r"span \[\d+, 2\d\d\], far outside it"):
        SyntheticMix(Plain(dtype=torch.uint8, scale=255), _callable(), fraction=0.5,
                     value_range=(0, 1))
    overshoot = Plain()                      # a bicubic resize's small overshoot is fine
    overshoot.x[0, 0, 0, :2] = torch.tensor([-0.015, 1.01])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SyntheticMix(overshoot, _callable(), fraction=0.5, value_range=(0, 1))


@pytest.mark.parametrize("given, why", [((0, 255), "under 2% of it"),
                                        ((-1, 1), "none below 0")])
def test_a_value_range_the_items_do_not_look_like_warns(given, why):
    """[0, 1] items given (0, 255) (synthetic ones up to 255) or (-1, 1) (synthetic ones
    darker) warn; their own range does not."""
    with pytest.warns(UserWarning, match=rf"value_range=.* but the real items' values span "
                                         rf"\[.*\], {why}"):
        mix = SyntheticMix(Plain(), _callable(1.0), fraction=0.5, value_range=given)
    assert float(mix[len(mix) - 1][0].max()) == given[1]     # as asked, not guessed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SyntheticMix(Plain(), _callable(), fraction=0.5, value_range=(0, 1))


def test_batch_images_using_a_sliver_of_value_range_warn(model):
    """BatchMixer: [0, 1] batches given value_range=(0, 255) warn at the first call."""
    mixer = BatchMixer(model, 0.5, value_range=(0, 255), label_check=0)
    x, y = torch.rand(8, 1, 8, 8), torch.arange(8) % 4
    with pytest.warns(UserWarning, match=r"the batch's images span \[.*\] but BatchMixer makes "
                                         r"synthetic ones in value_range=\(0, 255\)"):
        mixer(x, y)


def test_one_based_labels_are_told_to_shift():
    """Labels 1..4 for a 4-class sampler: the error names the shift (y - 1), not a new
    sampler."""
    with pytest.raises(ValueError, match=r"labels run from 1 to 4 \(class 0 has no items\).*"
                                         r"shift them \(y - 1"):
        SyntheticMix(Labels([1, 2, 3, 4] * 4), CLSGAN((1, 8, 8), 4, "mlp"), fraction=0.5)


def test_channels_last_tensor_items_are_told_to_permute(model):
    """(H, W, C) tensor items: the error says to permute them, not to train a sampler."""
    class HWC(Plain):
        def __getitem__(self, i):
            return self.x[i].permute(1, 2, 0), self.y[i]
    with pytest.raises(ValueError, match=r"channels-last \(H, W, C\).*x.permute\(2, 0, 1\)"):
        SyntheticMix(HWC(), model, fraction=0.5)


def test_set_epoch_and_is_synthetic_take_whole_numbers():
    mix = SyntheticMix(Plain(targets=True), _callable(), fraction=0.5, refresh_every=2)
    with pytest.raises(TypeError, match="set_epoch takes the epoch number, a whole number, "
                                        "got 2.5"):
        mix.set_epoch(2.5)
    with pytest.raises(ValueError, match="0 or more, got -1"):
        mix.set_epoch(-1)
    with pytest.raises(TypeError, match="got True"):
        mix.set_epoch(True)
    mix.set_epoch(torch.tensor(5))
    assert mix.round == 2 and type(mix.round) is int
    mix.set_epoch(np.int64(7))
    assert mix.round == 3
    with pytest.raises(TypeError, match="indices are whole numbers"):
        mix.is_synthetic(len(mix) - 0.5)
    assert mix.is_synthetic(np.int64(len(mix) - 1)) and not mix.is_synthetic(torch.tensor(0))


def test_a_model_of_an_objective_without_a_generator_is_no_sampler(tiny):
    """A `supervised` model object (as fit or build_model gives it) is refused as a sampler,
    as its run folder is: its generator is untrained."""
    from ganaug import TrainConfig, build_model
    sup = build_model(TrainConfig(objective="supervised").resolved(), tiny)
    assert sup.objective == "supervised"
    for make in (lambda: SyntheticMix(tiny, sup, fraction=0.5),
                 lambda: BatchMixer(sup, 0.5, label_check=0)):
        with pytest.raises(ValueError, match="trained with objective 'supervised', which "
                                             "trains no generator"):
            make()
    gan = build_model(TrainConfig().resolved(), tiny)
    assert gan.objective == "sscls"
    SyntheticMix(tiny, gan, fraction=0.5)


# ----------------------------------------------- mutation-testing gaps: mix, imbalance, sampling


def _overshooting(labels):
    g = torch.Generator().manual_seed(int(labels.sum()))
    x = torch.rand(len(labels), 1, 8, 8, generator=g) * 2 - 1
    x[:, 0, 0, 0], x[:, 0, 0, 1] = 1.0005, -1.0005          # e.g. after a bicubic resize
    return x


def test_a_sampler_a_hair_past_minus_one_one_is_not_warned_about():
    """Images a rounding hair outside their range (within the 1e-3 that the sampler check
    accepts) get no range warning: neither a sampler's that overshoot [-1, 1] slightly nor a
    batch whose values pass its value_range by float error."""
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.rand(16, 1, 8, 8, generator=g) * 2 - 1, torch.arange(16) % 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mix = SyntheticMix(data, _overshooting, fraction=0.5, num_classes=4)
    assert mix.num_synthetic == 16


def test_a_batch_a_hair_past_its_value_range_is_not_warned_about():
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    x[0, 0, 0, 0] = 1.0000002                               # float arithmetic past 1
    mixer = BatchMixer(lambda y: torch.rand(len(y), 1, 8, 8) * 2 - 1, 0.5, num_classes=4,
                       value_range=(0, 1), label_check=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, _ = mixer(x, torch.arange(8) % 4)
    assert len(out) == 16


def test_one_missing_last_class_needs_num_classes():
    """A dataset without .classes whose largest label leaves out only the sampler's last class
    is refused with the num_classes= advice, as when more classes are missing."""
    torch.manual_seed(0)
    model = CLSGAN((1, 8, 8), 4, "mlp", ["a", "b", "c", "d"])
    three = TensorDataset(torch.rand(12, 1, 8, 8), torch.arange(12) % 3)    # labels 0..2
    with pytest.raises(ValueError, match=r"trained for 4 classes but the data's largest label "
                                         r"is 2.*pass num_classes=4 if its last 1"):
        SyntheticMix(three, model, fraction=0.5)
    mix = SyntheticMix(three, model, fraction=0.5, num_classes=4)
    assert mix.num_classes == 4


def test_class_names_come_from_the_model_when_the_data_has_none():
    """For a dataset without .classes, SyntheticMix takes the class names of a ganaug model
    sampler with as many classes: mix.classes are the model's names, and balance= may name
    classes by them."""
    torch.manual_seed(0)
    model = CLSGAN((1, 8, 8), 4, "mlp", ["a", "b", "c", "d"])
    data = TensorDataset(torch.rand(16, 1, 8, 8), torch.arange(16) % 4)
    mix = SyntheticMix(data, model, balance={"c": 3, "a": 1})
    assert mix.classes == ["a", "b", "c", "d"]
    assert mix.plan == [1, 0, 3, 0]
    assert mix.class_counts() == [5, 4, 7, 4]


def test_value_range_is_read_past_the_first_few_items():
    """The real items' value range is read from many items: float items whose first few all look
    like [0, 1] (say, a dataset sorted by class whose first class is bright) but whose later
    items go below 0 are read as [-1, 1], and synthetic items use that range."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 1, 8, 8, generator=g) * 2 - 1
    x[:8] = x[:8].abs()                                 # the first 8 items stay in [0, 1]
    data = TensorDataset(x, torch.arange(40) // 10)
    mix = SyntheticMix(data, lambda y: torch.full((len(y), 1, 8, 8), -1.0), fraction=0.5,
                       num_classes=4)
    assert mix.format.value_range == (-1.0, 1.0)
    assert float(mix[len(mix) - 1][0].min()) == -1.0


@pytest.mark.filterwarnings("ignore:balance=.* adds no synthetic item:UserWarning")
def test_no_synthetic_items_with_a_model_sampler():
    """A SyntheticMix that adds no synthetic items (fraction=0, or balance='max' on a balanced
    dataset) with a ganaug model as its sampler works, and has no label agreement to report."""
    torch.manual_seed(0)
    model = CLSGAN((1, 8, 8), 4, "mlp", ["a", "b", "c", "d"])
    data = TensorDataset(torch.rand(16, 1, 8, 8) * 2 - 1, torch.arange(16) % 4)
    for kw in (dict(fraction=0), dict(balance="max")):
        mix = SyntheticMix(data, model, **kw)
        assert mix.num_synthetic == 0 and len(mix) == 16
        assert mix.label_agreement is None


def _sampler(labels):
    # class c's images are the constant (c - 1.5) / 2, plus a little seeded noise
    x = (labels.float() - 1.5).div(2).view(-1, 1, 1, 1).expand(-1, 1, 8, 8)
    return (x + 0.05 * torch.randn(len(labels), 1, 8, 8)).clamp(-1, 1)


def _classifier(x):
    # the exact class of each image (its mean brightness), as one-hot logits
    c = (x.mean((1, 2, 3)) * 2 + 1.5).round().clamp(0, 3).long()
    return F.one_hot(c, 4).float() * 10


def test_label_agreement_over_several_sampler_calls_per_class():
    """label_agreement is the share of the drawn samples that the classifier assigns to their
    label, also when each class's quota takes several sampler calls (batch_size smaller than
    the quota): a classifier that is always right gives exactly 1 and no warning."""
    data = TensorDataset(_sampler(torch.arange(40) % 4), torch.arange(40) % 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        mix = SyntheticMix(data, _sampler, fraction=0.5, gate_classifier=_classifier,
                           batch_size=3, num_classes=4)
    assert mix.num_synthetic == 40
    assert mix.label_agreement == 1.0


class NumpyLabels(Dataset):
    def __init__(self):
        self.x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1

    def __len__(self):
        return 16

    def __getitem__(self, i):
        return self.x[i], torch.tensor(i % 4) if i % 2 else np.int64(i % 4)


def test_real_labels_are_ints_and_batch_with_synthetic_ones():
    """Real items come out with a plain int label, like the synthetic ones, whatever type the
    real dataset's labels have (numpy integers, 0-d tensors), so a DataLoader batches real and
    synthetic items together."""
    mix = SyntheticMix(NumpyLabels(), lambda y: torch.rand(len(y), 1, 8, 8) * 2 - 1,
                       fraction=0.5, num_classes=4)
    assert all(type(mix[i][1]) is int for i in range(len(mix)))
    xb, yb = next(iter(DataLoader(mix, batch_size=len(mix))))
    assert yb.dtype == torch.long and yb.tolist() == mix.targets


class Positional:
    """Class c's first ``first`` samples (after the one-per-class construction check) are all
    one image, the rest random: a sampler that collapses exactly over the images read."""

    def __init__(self, first):
        self.first, self.seen = first, {}

    def __call__(self, labels):
        out = torch.empty(len(labels), 1, 4, 4)
        for j, c in enumerate(labels.tolist()):
            pos = self.seen.get(c, -1)                      # -1: the construction check
            self.seen[c] = pos + 1
            if 0 <= pos < self.first:
                out[j] = c / 2 - 0.75
            else:
                out[j] = torch.rand(1, 4, 4) * 2 - 1
        return out


def test_only_the_first_per_class_samples_enter_the_diversity_check():
    """BatchMixer's diversity check compares, of its label-check samples, only the first
    per_class of each class (as SyntheticMix reads the first ones of its bank): later samples
    of a class do not enter it."""
    C = 250
    n = per_class(C) + 1                              # one sample more than the check reads
    mixer = BatchMixer(Positional(per_class(C)), 0.5, num_classes=C, label_check=n)
    g = torch.Generator().manual_seed(0)
    y = torch.arange(8).repeat_interleave(4)          # 8 classes of 4 items each
    x = torch.rand(32, 1, 4, 4, generator=g) * 2 - 1
    mixer(x, y)
    assert mixer.diversity == 0.0                     # the images it read are one per class


class OnDevice:
    def __init__(self, device):
        self.device = device

    def __call__(self, labels):
        return torch.zeros(len(labels), 1, 4, 4)


def test_a_callables_device_attribute_as_a_string_is_read():
    """A callable sampler is taken to run where it lives: its ``.device`` (a torch.device or a
    string such as "cuda:1"), or for an nn.Module without one, the device of its parameters.
    Its labels are sent there, and BatchMixer draws its labels there. Checked without a GPU,
    on devices that need none to be named: a "cuda:1" string, "meta" parameters."""
    assert Sampler(OnDevice("cuda:1")).device == torch.device("cuda:1")
    assert Sampler(OnDevice(torch.device("cuda:1"))).device == torch.device("cuda:1")


def test_a_modules_device_is_that_of_its_parameters():
    net = torch.nn.Linear(2, 2, device="meta")
    assert Sampler(net).device == torch.device("meta")


class Arrays(Dataset):
    def __init__(self):
        rng = np.random.default_rng(0)
        self.x = rng.uniform(-1, 1, size=(16, 8, 8, 1)).astype(np.float32)
        self.x[0] = np.abs(self.x[0])                   # the first item alone looks like [0, 1]

    def __len__(self):
        return 16

    def __getitem__(self, i):
        return self.x[i], i % 4


def test_numpy_value_range_is_read_from_many_items():
    """For numpy items too, the value range is read from many items: float arrays whose first
    item alone looks like [0, 1] but whose others go below 0 are read as [-1, 1]."""
    mix = SyntheticMix(Arrays(), lambda y: torch.full((len(y), 1, 8, 8), -1.0), fraction=0.5,
                       num_classes=4)
    assert mix.format.value_range == (-1.0, 1.0)
    assert float(mix[len(mix) - 1][0].min()) == -1.0


class Narrow(Dataset):
    def __init__(self):
        rng = np.random.default_rng(0)
        self.x = rng.uniform(-1, 1, size=(8, 3, 6, 3)).astype(np.float32)

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return self.x[i], i % 2


def test_an_ambiguous_numpy_item_is_read_as_chw():
    """A numpy item whose first and last axes could both be channels (e.g. a 3-channel image 3
    pixels wide, (3, H, 3)) is read as (C, H, W), and synthetic items come out in that shape."""
    mix = SyntheticMix(Narrow(), lambda y: torch.rand(len(y), 3, 6, 3) * 2 - 1, fraction=0.5,
                       num_classes=2)
    assert mix.format.shape_chw == (3, 6, 3) and mix.format.layout == "CHW"
    assert mix[len(mix) - 1][0].shape == (3, 6, 3)


def test_rho_one_cuts_every_class_to_the_smallest_count():
    """rho=1 (no imbalance) is a valid ratio: every class keeps the smallest class's count."""
    assert long_tail_counts(50, 4, 1) == [50] * 4
    assert long_tail_counts(50, 4, 1.0) == [50] * 4
    y = torch.tensor([0] * 6 + [1] * 4 + [2] * 5)
    lt = make_long_tailed(TensorDataset(torch.rand(15, 1, 4, 4), y), rho=1)
    assert class_counts(dataset_targets(lt)) == [4, 4, 4]


def test_ties_go_to_the_lower_ids_for_many_classes():
    """quotas breaks ties in the remainders towards the lower class ids also for many classes
    (>16, where an unstable sort stops keeping the order), and so does a SyntheticMix split."""
    assert quotas(5, [1] * 20) == [1] * 5 + [0] * 15
    assert quotas(37, [1] * 100) == [1] * 37 + [0] * 63


def test_a_synthetic_split_over_many_equal_classes_fills_the_first_ones():
    data = TensorDataset(torch.rand(20, 1, 4, 4) * 2 - 1, torch.arange(20))   # 20 classes, 1 each
    mix = SyntheticMix(data, lambda y: torch.rand(len(y), 1, 4, 4) * 2 - 1, fraction=0.2,
                       num_classes=20)                   # 5 synthetic items
    assert mix.plan == [1] * 5 + [0] * 15


class OneLabel(Dataset):
    """Three blank items, all with the given label."""

    def __init__(self, label):
        self.label = label

    def __len__(self):
        return 3

    def __getitem__(self, i):
        return torch.zeros(1, 4, 4), self.label


@pytest.mark.parametrize("label", [torch.tensor([0.0, 1.0, 0.0]), "cat"])
def test_labels_that_are_not_class_ids_are_refused_with_a_clear_message(label):
    """Items read for their labels must carry an integer class id: a one-hot or class-name label
    is refused with a ValueError that says so, not torch's or int()'s own error."""
    with pytest.raises(ValueError, match=r"with an integer class id as the label, got a label "
                                         r"of type"):
        dataset_targets(OneLabel(label))


# ------------------------------------------------------------------ a test drive of imbalance
def test_a_balance_that_adds_nothing_or_fills_a_class_alone_warns(model):
    """balance= that adds no synthetic item (an int under every count) says the mix is the
    real data alone; a class without real items that balance fills says its items are all
    synthetic; an ordinary plan says nothing."""
    with pytest.warns(UserWarning, match=r"balance=5 adds no synthetic item \(the real class "
                                         r"counts are \[10, 10, 10, 10\]\)"):
        assert SyntheticMix(Plain(targets=True), _callable(), balance=5).num_synthetic == 0
    no_c = Labels([0, 1, 3] * 4, names=list("abcd"))
    with pytest.warns(UserWarning, match=r"class 'c' has no real item: its items are all "
                                         r"synthetic"):
        assert SyntheticMix(no_c, _callable(), balance="max").plan == [0, 0, 4, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SyntheticMix(Labels([0, 1, 1, 2, 3] * 4), _callable(), balance="max")


def test_an_int_balance_key_that_is_another_class_name_warns():
    """With numeric class names sorted as strings ('1', '10', '2'), the key 10 is class id
    10, not the class named '10': said, with the name to use."""
    names = ["1", "10", "11", "2", "3", "4", "5", "6", "7", "8", "9"]
    data = Labels(list(range(11)) * 2, names=names)
    with pytest.warns(UserWarning, match=r"balance key 10 is class id 10 \(named '9'\); the "
                                         r"class named '10' is id 1: to mean that one, use the "
                                         r"name '10' as the key"):
        mix = SyntheticMix(data, _callable(), balance={10: 2}, num_classes=11)
    assert mix.plan[10] == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert SyntheticMix(data, _callable(), balance={"10": 2}).plan[1] == 2


def test_a_rho_the_smallest_class_cannot_reach_warns():
    """rho larger than the smallest class's count: every class keeps one item at least, so
    the ratio is that count, which the warning says."""
    with pytest.warns(UserWarning, match=r"rho=1000 asks the last class for 10/1000 < 1 item; "
                                         r".* ratio is 10, not 1000") as got:
        assert long_tail_counts(10, 3, 1000) == [10, 1, 1]
    with pytest.warns(UserWarning, match="rho=50") as deep:        # from inside ganaug too,
        make_long_tailed(ImageSet(torch.zeros(30, 1, 4, 4), torch.arange(30) % 3, list("abc")),
                         50)
    assert {w.filename for w in [*got, *deep]} == {__file__}       # the caller's line is named
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert long_tail_counts(10, 3, 10) == [10, 3, 1]


class _Labels(Dataset):
    def __init__(self, labels, names):
        self.x = torch.rand(len(labels), 1, 8, 8, generator=torch.Generator().manual_seed(0))
        self.x = self.x * 2 - 1
        self.targets, self.classes = list(labels), list(names)

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.x[i], self.targets[i]


def _noise(labels):
    return torch.rand(len(labels), 1, 8, 8) * 2 - 1


def test_an_empty_class_that_gets_no_synthetic_item_is_not_warned_about():
    """A class without real items that balance= does not fill is not called all-synthetic."""
    data = _Labels([0, 1, 3] * 4, "abcd")               # class 'c' has no real item
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", "the sampler's images span")
        mix = SyntheticMix(data, _noise, balance={"a": 2})
    assert mix.plan == [2, 0, 0, 0]


def test_two_classes_without_real_items_are_both_named():
    """Two classes that balance= fills with synthetic items alone are both named."""
    data = _Labels([0, 3] * 4, "abcd")                  # 'b' and 'c' have no real item
    with pytest.warns(UserWarning, match=r"classes 'b', 'c' have no real item: their items "
                                         r"are all synthetic"):
        mix = SyntheticMix(data, _noise, balance="max")
    assert mix.plan == [0, 4, 4, 0]


class _Stored(Dataset):
    def __init__(self, targets):
        self.targets = targets

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return torch.zeros(1, 4, 4), int(self.targets[i])


def test_float_and_int32_stored_targets_are_read_as_long():
    """Stored targets come back as class ids (int64) whatever dtype the dataset keeps them in."""
    for t in (torch.tensor([0.0, 1.0, 2.0, 1.0]), torch.tensor([0, 1, 2, 1], dtype=torch.int32)):
        got = dataset_targets(_Stored(t))
        assert got.dtype == torch.long and got.tolist() == [0, 1, 2, 1]


class _LabelItems(Dataset):
    def __init__(self, labels):
        self.labels_ = labels

    def __len__(self):
        return len(self.labels_)

    def __getitem__(self, i):
        return torch.zeros(1, 4, 4), self.labels_[i]


@pytest.mark.parametrize("kind", [torch.tensor, np.float32], ids=["tensor", "numpy"])
def test_fractional_tensor_or_numpy_labels_are_refused(kind):
    """A fractional label carried by the items as a 0-d float tensor is refused, as a Python
    float is; a whole one (3.0) is class 3."""
    with pytest.raises(ValueError, match="labels must be whole class ids.*include 0.5"):
        dataset_targets(_LabelItems([kind(0.5), kind(1.0)]))
    assert dataset_targets(_LabelItems([kind(3.0), kind(1.0)])).tolist() == [3, 1]


def test_rho_a_little_over_n_max_warns():
    """rho just above the largest count (the last class would need under 1 item) warns."""
    with pytest.warns(UserWarning, match=r"rho=15 asks the last class for 10/15 < 1 item; .* "
                                         r"ratio is 10, not 15"):
        assert long_tail_counts(10, 3, 15) == [10, 2, 1]


def test_an_int_key_naming_its_own_class_is_silent():
    """An int balance key whose class is named that number (digits' names) is not warned about."""
    names = ["0", "1", "2", "3"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert balance_plan([5, 5, 5, 5], {3: 2}, names) == [0, 0, 0, 2]


# --- from a drive of the Python API (run 13) ---------------------------------------------
def test_a_bad_sampler_fails_before_the_pass_over_the_labels(model, tmp_path):
    """A dataset without .targets is read item by item for its labels (minutes for a large
    one on disk): a mistyped checkpoint path, a model for other images or a missing GPU
    fail before that pass, having read the first item alone."""
    from ganaug import CheckpointError
    data = Plain(n=40)
    with pytest.raises(CheckpointError, match="does not exist"):
        SyntheticMix(data, tmp_path / "no.pt", fraction=0.5)
    big = CLSGAN((1, 16, 16), 4, "mlp")
    with pytest.raises(ValueError, match=r"images of shape \(1, 16, 16\) but the real items "
                                         r"are \(1, 8, 8\)"):
        SyntheticMix(data, big, fraction=0.5)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            SyntheticMix(data, model, fraction=0.5, device="cuda")
    assert data.reads == 3                     # the first item, once per attempt


def test_a_sampler_making_channels_last_images_is_told_to_permute_its_output():
    """A callable returning (N, H, W, C): the fix is to permute its output, not to train a
    sampler or resize the data."""
    def hwc(labels):
        return torch.rand(len(labels), 8, 8, 1) * 2 - 1
    with pytest.raises(ValueError, match=r"sampler's images look channels-last \(N, H, W, C\)"
                                         r".*x.permute\(0, 3, 1, 2\)"):
        SyntheticMix(Plain(), hwc, fraction=0.5)


def test_building_a_mix_with_a_random_transform_leaves_the_global_rng(model):
    """The constructor tries the transform on a real and a synthetic item: a random
    transform must not move torch's, numpy's or Python's global RNG (code seeded before the
    mix would draw other numbers after it)."""
    import random

    def jitter(x):
        random.random()
        np.random.rand()
        return x + 0.01 * torch.randn_like(x)
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    SyntheticMix(Plain(), _callable(), fraction=0.5, transform=jitter)
    after = (torch.rand(2), np.random.rand(), random.random())
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    assert torch.equal(after[0], torch.rand(2))
    assert after[1:] == (np.random.rand(), random.random())


class _Same(Dataset):
    """20 copies of one image: any difference between items is the transform's."""
    x = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(0))

    def __len__(self):
        return 20

    def __getitem__(self, i):
        return self.x.clone(), i % 4


def _worker_items(mix, **kw):
    """Items of a 2-worker DataLoader (batches of 5): worker 0's and worker 1's."""
    loader = DataLoader(mix, batch_size=5, num_workers=2, **kw)
    batches = [x for x, _ in loader]
    return torch.cat(batches[0::2]), torch.cat(batches[1::2])


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_albumentations_draws_differ_between_dataloader_workers(context):
    """albumentations keeps a generator of its own, which every DataLoader worker copied:
    each worker repeated the others' augmentations item for item. In a worker SyntheticMix
    seeds the transform from the worker's seed, so workers differ, and a seeded DataLoader
    repeats."""
    A = pytest.importorskip("albumentations")
    if context not in torch.multiprocessing.get_all_start_methods():
        pytest.skip(f"no {context} start method here")

    augment = A.Compose([A.Affine(translate_px=(-2, 2), rotate=(-30, 30), p=1.0)])
    mix = SyntheticMix(_Same(), _callable(0.0), fraction=0.5, transform=augment)
    kw = dict(multiprocessing_context=context)
    w0, w1 = _worker_items(mix, generator=torch.Generator().manual_seed(5), **kw)
    same = (w0.flatten(1) == w1.flatten(1)).all(1)
    assert same.float().mean() < 0.5, f"{int(same.sum())} of {len(same)} items alike"
    if context == "fork":                      # (spawn's workers take seconds to start)
        again = _worker_items(mix, generator=torch.Generator().manual_seed(5), **kw)
        assert torch.equal(w0, again[0]) and torch.equal(w1, again[1])


def test_tv_tensor_items_get_synthetic_items_of_their_class():
    """torchvision's tv_tensors.Image items (v2 transforms treat them apart from plain
    tensors): the synthetic items are tv_tensors.Image too, with the items' dtype."""
    tv_tensors = pytest.importorskip("torchvision.tv_tensors")

    class Images(Plain):
        def __getitem__(self, i):
            return tv_tensors.Image(self.x[i]), self.y[i]
    mix = SyntheticMix(Images(), _callable(), fraction=0.5)
    real, syn = mix[0][0], mix[len(mix) - 1][0]
    assert type(real) is type(syn) is tv_tensors.Image
    assert syn.dtype == real.dtype and syn.shape == real.shape
    plain = SyntheticMix(Plain(), _callable(), fraction=0.5)
    assert type(plain[len(plain) - 1][0]) is torch.Tensor


def test_one_albumentations_transform_shared_by_two_mixes_is_seeded_once_per_worker():
    """Two mixes with one Compose in one worker: the second must not reseed it to the same
    seed (it replayed the first's augmentations item for item)."""
    A = pytest.importorskip("albumentations")
    from torch.utils.data import ConcatDataset
    augment = A.Compose([A.Affine(translate_px=(-2, 2), rotate=(-30, 30), p=1.0)])
    a = SyntheticMix(_Same(), _callable(0.0), fraction=0.5, transform=augment)
    b = SyntheticMix(_Same(), _callable(0.0), fraction=0.5, transform=augment)
    both = ConcatDataset([a, b])
    x = torch.cat([x for x, _ in DataLoader(both, batch_size=10, num_workers=1,
                                             generator=torch.Generator().manual_seed(3))])
    first, second = x[:20], x[40:60]                  # the real items of each mix
    same = (first.flatten(1) == second.flatten(1)).all(1)
    assert same.float().mean() < 0.5, f"{int(same.sum())} of 20 alike"


def test_building_a_mix_leaves_the_rng_that_the_real_items_transforms_draw_from():
    """Reading the real items (their labels, the format probe) runs the dataset's own
    random transforms: the global RNG is as it was after the mix is built."""
    class Jitter(Plain):
        def __getitem__(self, i):
            x, y = super().__getitem__(i)
            return (x * 0.99 + 0.01 * torch.rand(x.shape)), y
    torch.manual_seed(0)
    SyntheticMix(Jitter(), _callable(), fraction=0.5)
    after = torch.rand(2)
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(2))


def test_albumentations_draws_repeat_without_workers_from_torchs_seed():
    """num_workers=0: albumentations' own generator was seeded from the OS, so a seeded run
    did not repeat (539 of 572 items differed in a drive). SyntheticMix seeds a transform
    without a seed of its own from torch.initial_seed(); a Compose(seed=...) keeps its seed."""
    A = pytest.importorskip("albumentations")

    def items(seed, compose_seed=None):
        torch.manual_seed(seed)
        augment = A.Compose([A.Affine(translate_px=(-2, 2), rotate=(-30, 30), p=1.0)],
                            seed=compose_seed)
        mix = SyntheticMix(_Same(), _callable(0.0), fraction=0.5, transform=augment)
        return torch.cat([x for x, _ in DataLoader(mix, batch_size=10)]), augment
    a, t = items(4)
    b, _ = items(4)
    assert torch.equal(a, b) and t.seed == 4
    c, _ = items(5)
    assert not torch.equal(a, c)
    d, t = items(4, compose_seed=11)
    assert t.seed == 11 and not torch.equal(a, d)
    e, _ = items(5, compose_seed=11)
    assert torch.equal(d, e)                       # its own seed decides, not torch's


def _zeros(labels):
    return torch.rand(len(labels), 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1


def _items(mix, seed):
    loader = DataLoader(mix, batch_size=10, num_workers=1, multiprocessing_context="fork",
                        generator=torch.Generator().manual_seed(seed))
    return torch.cat([x for x, _ in loader])


def test_albumentations_draws_in_a_worker_follow_the_dataloaders_seed():
    """The worker's seed comes from the DataLoader's generator: another generator seed gives
    other augmentations, the same seed the same ones."""
    A = pytest.importorskip("albumentations")
    if "fork" not in torch.multiprocessing.get_all_start_methods():
        pytest.skip("no fork start method here")
    augment = A.Compose([A.Affine(translate_px=(-2, 2), rotate=(-30, 30), p=1.0)])
    mix = SyntheticMix(_Same(), _zeros, fraction=0.5, transform=augment)
    a, again, b = _items(mix, 1), _items(mix, 1), _items(mix, 2)
    assert torch.equal(a, again)
    same = (a[:20].flatten(1) == b[:20].flatten(1)).all(1)
    assert same.float().mean() < 0.5, f"{int(same.sum())} of 20 real items alike"
