"""ganaug eval's protocol, number by number: the references, seeds and sample counts that
eval.json states are the ones its metrics used (the ruler's cache, the real references,
TSTR's own samples and test set, Inception's input), and label checks of the metrics. From
a mutation run of evaluation.py and metrics.py; each test failed on its mutant."""
import math

import pytest
import torch

from ganaug import quality as Q
from ganaug.data import ImageSet, load_dataset
from ganaug.evaluation import _matching_train, _reference_indices, evaluate_quality
from ganaug.features import (accuracy_of, domain_extractor, features_of, inception_features,
                             load_inception)
from ganaug.metrics import classification_metrics

from test_evaluation import _Replay          # real training images of the asked classes


class _Noise(torch.nn.Module):
    """A 'generator' of uniform noise images; records (count, generator seed) of each call."""

    def __init__(self, data):
        super().__init__()
        self.num_classes, self.image_shape, self.calls = data.num_classes, data.image_shape, []

    def sample(self, labels, generator=None):
        self.calls.append((len(labels), generator.initial_seed()))
        return torch.rand(len(labels), *self.image_shape, generator=generator) * 2 - 1


def _small():
    g = torch.Generator().manual_seed(0)
    return ImageSet(torch.rand(20, 1, 8, 8, generator=g) * 2 - 1, torch.arange(20) % 2, ["a", "b"])


# ------------------------------------------------------------------------ the ruler's cache
def test_the_rulers_cache_key_covers_its_seed(tmp_path):
    data = _small()
    net0, a = domain_extractor(data, steps=2, seed=0, cache_dir=tmp_path, device="cpu")
    net1, b = domain_extractor(data, steps=2, seed=1, cache_dir=tmp_path, device="cpu")
    assert a["key"] != b["key"] and a["path"] != b["path"]
    assert b["seed"] == 1 and torch.load(b["path"], weights_only=True)["seed"] == 1
    assert not torch.equal(features_of(net0, data.images), features_of(net1, data.images))


class _Payload:                     # any class: torch.load(weights_only=True) refuses it
    ran = False

    def __reduce__(self):
        return (_touch, ())


def _touch():
    _Payload.ran = True
    return "touched"


def test_a_cached_ruler_holding_python_objects_is_not_unpickled(tmp_path):
    """A cache file that holds arbitrary Python objects is never unpickled: it is reported
    and the ruler retrained."""
    data = _small()
    _, info = domain_extractor(data, steps=2, cache_dir=tmp_path, device="cpu")
    saved = torch.load(info["path"], weights_only=True)
    torch.save({**saved, "extra": _Payload()}, info["path"])     # a planted object
    logs = []
    domain_extractor(data, steps=2, cache_dir=tmp_path, device="cpu", log=logs.append)
    assert not _Payload.ran
    assert any("ignoring unreadable" in s for s in logs), logs
    assert "extra" not in torch.load(info["path"], weights_only=True)   # retrained, re-cached


# ------------------------------------------------------------------- the real references
def test_the_reference_images_are_a_seeded_random_draw():
    """With --samples below the test split's size: a seeded draw over the whole split, in
    test order, not its first images."""
    _, test = load_dataset("digits")
    a, b = _reference_indices(test, 60, 0), _reference_indices(test, 60, 1)
    assert len(a) == 60 and len(set(a.tolist())) == 60
    assert torch.equal(a, _reference_indices(test, 60, 0)) and not torch.equal(a, b)
    assert torch.equal(a, a.sort().values) and int(a.max()) >= 60     # not the first 60
    assert torch.equal(_reference_indices(test, 450, 3), torch.arange(450))   # all of them


def test_the_matching_training_images_are_a_seeded_random_draw():
    """The real reference's training images: a seeded draw with the reference's class
    counts, not the first training images of each class."""
    train, test = load_dataset("digits")
    labels = test.targets[:60]
    a, b = _matching_train(train, labels, 0), _matching_train(train, labels, 1)
    assert torch.equal(a, _matching_train(train, labels, 0))              # reproducible
    for picks in (a, b):
        assert torch.equal(torch.bincount(train.targets[picks], minlength=10),
                           torch.bincount(labels, minlength=10))
    assert not torch.equal(a, b)                                          # seed-dependent
    first = torch.cat([torch.nonzero(train.targets == c).squeeze(1)[:int((labels == c).sum())]
                       for c in range(10)]).sort().values
    assert not torch.equal(a, first)                          # not the first of each class


def test_kids_real_reference_uses_the_same_subsets_and_seed(tmp_path, monkeypatch):
    """Recomputed by hand: the same subsets (size, count, seed) as the generated images'
    KID, on the ruler's features."""
    import ganaug.evaluation as E
    monkeypatch.setattr(E, "KID_SUBSET_SIZE", 20)        # 60 images: 100 subsets of 20
    train, test = load_dataset("digits")
    q = evaluate_quality(_Noise(train), train, test, extractor_steps=20, max_samples=60,
                         tstr_per_class=2, seed=4, cache_dir=tmp_path, device="cpu")
    net, _ = domain_extractor(train, steps=20, cache_dir=tmp_path, device="cpu")
    ref = _reference_indices(test, 60, 4)
    tr = _matching_train(train, test.targets[ref], 4)
    mean, _ = Q.kid(features_of(net, test.images[ref]), features_of(net, train.images[tr]),
                    subsets=100, subset_size=20, seed=4)
    assert "100 subsets of 20" in q["domain_kid"]["protocol"]
    assert q["domain_kid"]["real_reference"] == pytest.approx(mean, rel=1e-9)


def test_label_accuracys_reference_reads_the_same_real_images(tmp_path):
    """The ruler's accuracy on the sampled real test images the generated ones are compared
    with, not on the whole test split."""
    train, test = load_dataset("digits")
    q = evaluate_quality(_Noise(train), train, test, extractor_steps=30, max_samples=40,
                         tstr_per_class=2, seed=3, cache_dir=tmp_path, device="cpu")
    ruler, _ = domain_extractor(train, steps=30, cache_dir=tmp_path, device="cpu")
    ref = _reference_indices(test, 40, 3)
    on_ref = accuracy_of(ruler, test.images[ref], test.targets[ref])
    assert on_ref != accuracy_of(ruler, test.images, test.targets)    # the check can tell
    assert q["label_accuracy"]["real_reference"] == pytest.approx(on_ref)
    assert "its accuracy on the 40 real test images" in q["label_accuracy"]["protocol"]


def test_the_protocol_records_the_numbers_it_used(tmp_path):
    """num_train_reference is the number of matched training images (fewer than the
    reference images when a class has too few), tstr_per_class the number used (also the
    default's, not None)."""
    train, test = load_dataset("digits")
    keep = (train.targets != 3) | (torch.cumsum(train.targets == 3, 0) <= 2)   # 2 of class 3
    sub = ImageSet(train.images[keep], train.targets[keep], train.classes)
    q = evaluate_quality(_Noise(sub), sub, test, extractor_steps=20, max_samples=100,
                         cache_dir=tmp_path, device="cpu")               # default TSTR size
    p = q["protocol"]
    assert p["num_real"] == 100 and p["num_train_reference"] < 100
    assert f"real reference: {p['num_train_reference']} real training images" in \
        q["domain_fid"]["protocol"]
    assert p["tstr_per_class"] == math.ceil(len(sub) / 10)
    assert f"({p['tstr_per_class']} per class)" in q["tstr_accuracy"]["protocol"]


# --------------------------------------------------------------------------------- TSTR
def test_tstr_samples_come_from_the_sampling_seed_plus_one(tmp_path):
    """TSTR does not train on the very images the FID set measured."""
    train, test = load_dataset("digits")
    model = _Noise(train)
    evaluate_quality(model, train, test, extractor_steps=20, max_samples=40, tstr_per_class=3,
                     seed=7, cache_dir=tmp_path, device="cpu")
    assert model.calls == [(40, 7), (30, 8)]          # the FID set, then TSTR's training set


def test_tstr_is_tested_on_the_whole_test_split_whatever_samples_says(tmp_path, monkeypatch):
    import ganaug.features as FT
    train, test = load_dataset("digits")
    fits, fit = [], FT.train_domain_classifier
    monkeypatch.setattr(FT, "train_domain_classifier",
                        lambda *a, **k: fits.append(fit(*a, **k)) or fits[-1])
    q = evaluate_quality(_Replay(train), train, test, extractor_steps=30, max_samples=40,
                         tstr_per_class=3, cache_dir=tmp_path, device="cpu")
    clf = fits[-1]                                       # the ruler, then TSTR's classifier
    assert q["protocol"]["num_real"] == 40
    assert f"tested on all {len(test)} real test images" in q["tstr_accuracy"]["protocol"]
    assert q["tstr_accuracy"]["value"] == pytest.approx(accuracy_of(clf, test.images, test.targets))


# ---------------------------------------------------------------------------- Inception
class _Flat(torch.nn.Module):
    """A stand-in for inception_v3: the input it got, flattened."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return x.flatten(1)


def test_inception_reads_images_resized_bilinearly():
    """299x299 bilinear (as the protocol says), grey images repeated to 3 channels."""
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    f = inception_features(x, _Flat())
    want = torch.nn.functional.interpolate(x.repeat(1, 3, 1, 1), size=(299, 299),
                                           mode="bilinear", align_corners=False)
    torch.testing.assert_close(f, want.flatten(1))


def test_inception_weights_wrapped_in_a_state_dict_key_load(tmp_path):
    """{"state_dict": ...} files load, as load_inception documents."""
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    sd = inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict()
    torch.save({"state_dict": sd}, tmp_path / "wrapped.pth")
    net = load_inception(tmp_path / "wrapped.pth", device="cpu")
    assert not net.training and isinstance(net.fc, torch.nn.Identity)
    key = "Conv2d_1a_3x3.conv.weight"
    assert torch.equal(net.state_dict()[key], sd[key])


# ------------------------------------------------------------------------------ metrics
def test_a_label_just_past_the_last_class_is_refused():
    """The usual off-by-one is refused, not dropped from the per-class counts."""
    with pytest.raises(ValueError, match=r"y_true holds labels outside 0\.\.1 \(min 0, max 2\)"):
        classification_metrics([0, 1, 2], [0, 1, 1], num_classes=2)
    with pytest.raises(ValueError, match=r"y_pred holds labels outside 0\.\.1"):
        classification_metrics([0, 1, 1], [0, 1, 2], num_classes=2)
    assert classification_metrics([0, 1, 1], [0, 1, 1], num_classes=2)["accuracy"] == 1.0
