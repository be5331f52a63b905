"""`ganaug eval`: the classifier's test error and every sample-quality metric, with its
protocol; the cached domain classifier; sanity of the metrics on real-vs-real; curves.png."""
import json
import math
import time

import pytest
import torch

from ganaug.cli import main
from ganaug.data import load_dataset
from ganaug.evaluation import evaluate_quality
from ganaug.features import domain_extractor, features_of, inception_features

METRICS = ("domain_fid", "domain_kid", "intra_class_fid", "precision", "recall", "diversity",
           "label_accuracy", "tstr_accuracy")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "r"
    assert main(["train", "--epochs", "1", "--batch-size", "128", "--out", str(out), "--quiet",
                 "--no-tensorboard"]) == 0
    return out


def test_a_run_folder_has_its_curves(run):
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_prints_every_metric_beside_its_protocol(run, tmp_path, capsys):
    t0 = time.perf_counter()
    assert main(["eval", "--run", str(run), "--cache-dir", str(tmp_path)]) == 0
    seconds = time.perf_counter() - t0
    out, err = capsys.readouterr()
    assert f"wrote {run / 'eval.json'}" in err
    print(f"ganaug eval on a digits run: {seconds:.1f}s")   # the budget is a minute on CPU
    for word in ("test accuracy", "balanced accuracy", "macro-F1", "per-class accuracy",
                 "test error"):
        assert word in out
    for name in ("domain FID", "domain KID", "intra-class FID", "precision", "recall",
                 "diversity", "label accuracy", "TSTR accuracy", "Inception FID",
                 "gate pass rates"):
        line = next(l for l in out.splitlines() if l.startswith(f"  {name} "))
        assert " -- " in line, line            # the protocol, beside the number
    for gate in ("0.0", "0.5", "0.7", "0.9"):
        assert any(l.startswith(f"    gate {gate}: ") for l in out.splitlines()), gate
    assert "450 generated" in out and "450 real test images" in out and "k=3" in out
    assert "trained only on 1350 generated images" in out and "not computed" in out
    assert "domain-mlp-v1" in out and "trained on all 1347 real training images" in out
    assert (run / "eval.json").exists()


def test_eval_json_has_every_metric(run, tmp_path, capsys):
    assert main(["eval", "--run", str(run), "--json", "--cache-dir", str(tmp_path),
                 "--classifier-steps", "200", "--samples", "300"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["test_error"] == pytest.approx(1 - m["accuracy"])
    assert m["test_accuracy"] == m["accuracy"]
    assert len(m["per_class_accuracy"]) == 10
    q = m["quality"]
    for key in METRICS:
        assert math.isfinite(q[key]["value"]), key
        assert math.isfinite(q[key]["real_reference"]), key
        assert q[key]["protocol"], key
    assert q["inception_fid"]["value"] is None
    assert q["protocol"]["num_real"] == q["protocol"]["num_generated"] == 300
    # 300 images a side, fewer than a KID subset: one subset, both whole sets, no spread
    assert q["domain_kid"]["std"] is None
    assert "one subset, all 300 of each set" in q["domain_kid"]["protocol"]
    assert "unbiased MMD^2 (may dip below 0; not x1000)" in q["domain_kid"]["protocol"]
    assert q["protocol"]["extractor"]["steps"] == 200 and q["protocol"]["knn_k"] == 3
    assert len(q["intra_class_fid"]["per_class"]) == 10
    assert 0 <= q["precision"]["value"] <= 1 and 0 <= q["recall"]["value"] <= 1
    assert json.loads((run / "eval.json").read_text())["quality"]["protocol"]["num_real"] == 300
    # a ganaug model has a classifier of its own: the gate table, a stricter gate passing less
    rows = q["gate"]["rows"]
    assert q["gate"]["error"] is None and [r["gate"] for r in rows] == [0.0, 0.5, 0.7, 0.9]
    passing = [r["pass"] for r in rows]
    assert passing == sorted(passing, reverse=True) and 0 < passing[0] <= 1
    assert all(r["min_class_pass"] <= r["pass"] for r in rows)


def test_eval_quick_is_the_classifier_alone(run, capsys):
    assert main(["eval", "--run", str(run), "--quick"]) == 0
    out, err = capsys.readouterr()
    assert "test error" in out and "domain FID" not in out and "wrote" not in err


def test_domain_classifier_is_trained_once_and_loads_weights_only(tmp_path):
    train, _ = load_dataset("digits")
    net, info = domain_extractor(train, steps=30, cache_dir=tmp_path, device="cpu")
    path = tmp_path / "extractors" / f"domain-mlp-{info['key']}.pt"
    stamp = path.stat().st_mtime_ns
    saved = torch.load(path, weights_only=True)
    assert saved["steps"] == 30 and saved["train_images"] == 1347
    again, info2 = domain_extractor(train, steps=30, cache_dir=tmp_path, device="cpu")
    assert path.stat().st_mtime_ns == stamp and info2["key"] == info["key"]
    torch.testing.assert_close(features_of(net, train.images[:20]),
                               features_of(again, train.images[:20]))
    # training-split features have mean per-dimension variance 1
    var = features_of(net, train.images).double().var(0).mean().item()
    assert var == pytest.approx(1, rel=1e-3)
    _, other = domain_extractor(train, steps=31, cache_dir=tmp_path, device="cpu")
    assert other["key"] != info["key"]


class _Replay(torch.nn.Module):
    """A 'generator' that returns real images of the asked classes (or noise)."""

    def __init__(self, data, noise=False):
        super().__init__()
        self.data, self.noise = data, noise
        self.num_classes, self.image_shape = data.num_classes, data.image_shape

    def sample(self, labels, generator=None):
        if self.noise:
            return torch.rand(len(labels), *self.image_shape, generator=generator) * 2 - 1
        out = torch.empty(len(labels), *self.image_shape)
        for c in labels.unique().tolist():
            pool = torch.nonzero(self.data.targets == c).squeeze(1)
            rows = torch.nonzero(labels == c).squeeze(1)
            out[rows] = self.data.images[pool[torch.randint(len(pool), (len(rows),),
                                                            generator=generator)]]
        return out


def test_metrics_separate_a_perfect_generator_from_noise(tmp_path):
    train, test = load_dataset("digits")
    opts = dict(extractor_steps=300, cache_dir=tmp_path, device="cpu", tstr_per_class=50)
    good = evaluate_quality(_Replay(train), train, test, **opts)
    bad = evaluate_quality(_Replay(train, noise=True), train, test, **opts)
    assert good["domain_fid"]["value"] < 3 * good["domain_fid"]["real_reference"] + 1
    assert bad["domain_fid"]["value"] > 10 * good["domain_fid"]["value"]
    assert bad["domain_kid"]["value"] > 10 * abs(good["domain_kid"]["value"])
    assert bad["intra_class_fid"]["value"] > good["intra_class_fid"]["value"]
    assert good["precision"]["value"] > 0.7 and good["recall"]["value"] > 0.7
    assert bad["precision"]["value"] < 0.2
    assert good["tstr_accuracy"]["value"] > 0.8 and bad["tstr_accuracy"]["value"] < 0.4


def test_inception_features_from_a_local_file_only(tmp_path):
    from torchvision.models import inception_v3

    path = tmp_path / "inception.pth"
    torch.manual_seed(0)
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), path)
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    f = inception_features(x, path, device="cpu")
    assert f.shape == (2, 2048) and torch.isfinite(f).all()
    torch.save({"not": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"not a torchvision inception_v3 state dict: \d+ of "
                                         r"its \d+ tensors missing \(e.g. .*\), 1 others \(e.g. "
                                         r"\['not'\]\); pass the file of torch.save"):
        inception_features(x, tmp_path / "bad.pth", device="cpu")
    state = torch.load(path, weights_only=True)
    state["fc.weight"] = torch.zeros(3, 2048)           # the keys, a tensor of another shape
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(ValueError, match=r"state dict: Error\(s\) in loading state_dict for "
                                         r"Inception3: size mismatch for fc.weight"):
        inception_features(x, tmp_path / "shape.pth", device="cpu")
    older = {k: v for k, v in torch.load(path, weights_only=True).items()
             if not k.endswith("num_batches_tracked")}     # files without BatchNorm counters
    torch.save(older, tmp_path / "older.pth")                 # load as torch loads them
    assert inception_features(x, tmp_path / "older.pth", device="cpu").shape == (2, 2048)
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="it holds a list, not a dict of tensors"):
        inception_features(x, tmp_path / "list.pth", device="cpu")
    with pytest.raises(FileNotFoundError, match="do not exist"):
        inception_features(x, tmp_path / "none.pth")


def test_bad_inception_weights_fail_before_any_quality_work(run, tmp_path):
    from ganaug import CLSGAN

    tr, te = load_dataset("digits")
    text = tmp_path / "weights.pth"
    text.write_text("not a torch file")
    model = CLSGAN.load(run)
    for weights, error, match in ((text, ValueError, "cannot be read as a torch weights file"),
                                  (tmp_path / "none.pth", FileNotFoundError, "do not exist")):
        with pytest.raises(error, match=match):
            evaluate_quality(model, tr, te, cache_dir=tmp_path / "cache", inception_weights=weights)
    assert not (tmp_path / "cache").exists()            # no ruler was trained


def test_an_unwritable_cache_is_reported_and_skipped(tmp_path):
    tr, _ = load_dataset("digits")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    logs = []
    net, info = domain_extractor(tr, steps=20, cache_dir=blocker, log=logs.append)
    assert info["path"] is None and any("could not cache" in s for s in logs)
    assert features_of(net, tr.images[:4]).shape == (4, info["feature_dim"])


def test_a_cached_ruler_leaves_the_global_rng_alone(tmp_path):
    tr, _ = load_dataset("digits")
    domain_extractor(tr, steps=20, cache_dir=tmp_path)              # trains and caches
    for _ in range(2):                                              # miss, then hits
        state = torch.get_rng_state()
        domain_extractor(tr, steps=20, cache_dir=tmp_path)
        assert torch.equal(torch.get_rng_state(), state)


def test_eval_device_names_are_checked(run, capsys):
    assert main(["eval", "--run", str(run), "--quick", "--device", "gpu"]) == 2
    assert "unknown device 'gpu'" in capsys.readouterr().err


def test_runs_without_a_label_following_generator(tmp_path, capsys):
    sup, gan = tmp_path / "sup", tmp_path / "gan"
    for out, objective in ((sup, "supervised"), (gan, "gan")):
        assert main(["train", "--epochs", "1", "--batch-size", "128", "--objective", objective,
                     "--out", str(out), "--quiet", "--no-tensorboard"]) == 0
    capsys.readouterr()
    assert main(["eval", "--run", str(sup), "--cache-dir", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "sample quality: not measured, objective 'supervised' trains no generator" in out
    assert "domain FID" not in out
    m = json.loads((sup / "eval.json").read_text())
    assert m["quality"] is None and "no generator" in m["quality_skipped"]
    assert main(["eval", "--run", str(gan), "--json", "--cache-dir", str(tmp_path / "c"),
                 "--classifier-steps", "50", "--samples", "100", "--tstr-per-class", "5"]) == 0
    q = json.loads(capsys.readouterr().out)["quality"]
    for key in ("intra_class_fid", "diversity", "label_accuracy", "gate", "tstr_accuracy"):
        assert "unconditional" in q[key]["note"]
    assert "note" not in q["domain_fid"]
    assert [r["gate"] for r in q["gate"]["rows"]] == [0.0, 0.5, 0.7, 0.9]


def test_the_note_on_runs_whose_generator_ignores_its_labels():
    from ganaug import TrainConfig
    from ganaug.experiment import _labels_note
    def note(**kw):                                  # a run's saved (resolved) config
        return _labels_note(TrainConfig(**kw).resolved(), True)

    assert "feature matching alone (g_cond_weight 0)" in note(g_cond_weight=0.0)
    assert note() is None                                             # the default weight 3
    assert note(g_cond_share=0.5) is None                             # weight resolved to 0
    assert "unconditional" in _labels_note(TrainConfig(objective="gan").resolved(), False)


def test_classification_metrics_by_hand():
    from ganaug.metrics import classification_metrics

    y_true = [0, 0, 0, 0, 1, 1, 2, 2]
    y_pred = [0, 0, 0, 1, 1, 0, 2, 0]
    m = classification_metrics(y_true, y_pred, num_classes=4)      # class 3: no items at all
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["per_class_accuracy"] == pytest.approx([3 / 4, 1 / 2, 1 / 2, None])  # recall per class
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 1 / 2 + 1 / 2) / 3)    # classes present
    f1 = [2 * 0.6 * 0.75 / (0.6 + 0.75), 0.5, 2 * 1.0 * 0.5 / 1.5]   # P=3/5,R=3/4; 1/2,1/2; 1,1/2
    assert m["macro_f1"] == pytest.approx(sum(f1) / 3)   # unweighted over the 3 classes seen
    assert m["num_test"] == 8


def test_classification_metrics_quiet_when_a_class_is_only_predicted_or_alone():
    """Values as sklearn's, without its warnings ("y_pred contains classes not in y_true",
    "A single label was found"): a small test split often lacks a predicted class."""
    import warnings

    from sklearn.metrics import balanced_accuracy_score

    from ganaug.metrics import classification_metrics

    for y_true, y_pred in (([0, 0, 1, 1], [0, 0, 1, 2]), ([1, 1, 1], [1, 1, 1])):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            m = classification_metrics(y_true, y_pred, num_classes=4)
        assert [str(w.message) for w in seen] == []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    with pytest.raises(ValueError, match="no labels to score"):
        classification_metrics([], [], num_classes=2)


def test_classification_metrics_refuse_labels_that_are_not_1_d():
    from ganaug.metrics import classification_metrics

    with pytest.raises(ValueError, match="1-D"):
        classification_metrics([[0], [1]], [[0], [1]], num_classes=2)
    with pytest.raises(ValueError, match="1-D"):
        classification_metrics([0, 1, 1], [0, 1], num_classes=2)


def test_classification_metrics_refuse_labels_outside_the_classes():
    # balanced accuracy would count class 5, per-class accuracy and macro-F1 would not
    from ganaug.metrics import classification_metrics

    with pytest.raises(ValueError, match=r"y_true holds labels outside 0\.\.1.*max 5"):
        classification_metrics([0, 1, 5, 5], [0, 1, 0, 0], num_classes=2)
    with pytest.raises(ValueError, match=r"y_pred holds labels outside 0\.\.1.*min -1"):
        classification_metrics([0, 1], [-1, 1], num_classes=2)


# ------------------------------------------------ what each number is computed on, checked

class _Oracle(_Replay):
    """A 'generator' that has memorised the test split: asked for exactly the test labels, it
    returns the test images themselves (else it replays training images). Records every call:
    (labels, its generator's seed, the images it returned)."""

    def __init__(self, train, test):
        super().__init__(train)
        self.test, self.calls = test, []

    def sample(self, labels, generator=None):
        out = self.test.images.clone() if torch.equal(labels, self.test.targets) else \
            super().sample(labels, generator)
        self.calls.append((labels.clone(), generator.initial_seed(), out))
        return out


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    """evaluate_quality of an _Oracle at seed 5, 60 classifier steps, 7 TSTR images per class,
    with every training of a small classifier recorded as (images, targets, options, net)."""
    import ganaug.features as FT
    train, test = load_dataset("digits")
    model, fits, fit = _Oracle(train, test), [], FT.train_domain_classifier

    def spy(images, targets, *args, **kw):
        net = fit(images, targets, *args, **kw)
        fits.append((images, targets, kw, net))
        return net
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FT, "train_domain_classifier", spy)
        q = evaluate_quality(model, train, test, extractor_steps=60, tstr_per_class=7, seed=5,
                             cache_dir=tmp_path_factory.mktemp("cache"), device="cpu")
    return q, model, fits, train, test


def test_a_generator_that_copies_the_real_test_images_scores_perfectly(oracle):
    """The real side is the test split, and the generated images get its labels: a copy of
    the test split is at distance 0 from it, class by class."""
    q, model, _, _, test = oracle
    assert q["protocol"]["num_real"] == len(test) == 450 and q["protocol"]["real_split"] == "test"
    assert abs(q["domain_fid"]["value"]) < 1e-3 < q["domain_fid"]["real_reference"]
    assert abs(q["intra_class_fid"]["value"]) < 1e-2 < q["intra_class_fid"]["real_reference"]
    assert q["precision"]["value"] == 1.0 and q["recall"]["value"] == 1.0
    assert q["diversity"]["value"] == pytest.approx(1.0)         # the same images: as varied
    assert q["diversity"]["real_reference"] != pytest.approx(1.0, abs=1e-6)
    assert "the first 20 of each class" in q["diversity"]["protocol"]
    labels, seed, _ = model.calls[0]                 # the FID set: the test labels, seed 5
    assert torch.equal(labels, test.targets) and seed == 5
    assert q["protocol"]["sample_seed"] == 5
    assert q["domain_fid"]["protocol"].startswith(
        "450 generated (labels = the real images' labels, seed 5) vs 450 real test images")


def test_tstr_trains_only_on_generated_images_and_tests_on_the_real_test_split(oracle):
    from ganaug.features import accuracy_of
    q, model, fits, train, test = oracle
    (r_x, r_y, r_kw, ruler), (t_x, t_y, t_kw, clf) = fits       # the ruler, then TSTR's
    assert torch.equal(r_x, train.images) and torch.equal(r_y, train.targets)
    labels, _, generated = model.calls[1]
    assert torch.equal(t_x, generated) and torch.equal(t_y, labels)
    assert torch.bincount(t_y).tolist() == [7] * 10                 # --tstr-per-class 7
    assert r_kw["steps"] == t_kw["steps"] == 60 and r_kw["seed"] == t_kw["seed"] == 0
    assert q["tstr_accuracy"]["value"] == accuracy_of(clf, test.images, test.targets)
    # the train-on-real reference: the ruler's accuracy on the test split, not on its own data
    ref = accuracy_of(ruler, test.images, test.targets)
    assert q["tstr_accuracy"]["real_reference"] == ref == q["protocol"]["extractor"]["test_accuracy"]
    assert ref != accuracy_of(ruler, train.images, train.targets)
    p = q["tstr_accuracy"]["protocol"]
    for words in ("60 Adam steps", "trained only on 70 generated images (7 per class)",
                  "tested on all 450 real test images", "the 1347 real training images"):
        assert words in p, p
    assert q["protocol"]["tstr_per_class"] == 7


def test_printed_lines_show_each_value_and_its_own_reference(oracle):
    from ganaug.evaluation import quality_lines
    q = oracle[0]
    lines = quality_lines(q)
    for name, key, spec in (("domain FID", "domain_fid", ".3f"), ("domain KID", "domain_kid", ".5f"),
                            ("intra-class FID", "intra_class_fid", ".3f"),
                            ("TSTR accuracy", "tstr_accuracy", ".4f")):
        line = next(l for l in lines if l.startswith(f"  {name} "))
        e = q[key]
        assert line.split()[len(name.split())] == format(e["value"], spec), line
        assert f"[real reference {format(e['real_reference'], spec)}]" in line, line
    intra = q["intra_class_fid"]
    assert len(intra["per_class"]) == 10
    assert sum(intra["per_class"].values()) / 10 == pytest.approx(intra["value"])


def test_label_accuracy_is_the_rulers_reading_of_the_generated_images(oracle, tmp_path):
    """The oracle's images are the test images: the ruler reads them exactly as it reads the
    real ones, so label accuracy equals its real reference, the ruler's test accuracy."""
    q = oracle[0]
    la = q["label_accuracy"]
    assert la["value"] == la["real_reference"] == q["protocol"]["extractor"]["test_accuracy"]
    assert "share of the 450 generated images" in la["protocol"]
    # the oracle is not a ganaug model: no classifier of its own, so no gate table
    assert q["gate"]["rows"] == [] and "no classifier of its own" in q["gate"]["error"]
    from ganaug.evaluation import quality_lines
    assert any(l.startswith("  gate pass rates n/a (the sampler has no classifier")
               for l in quality_lines(q))


class _Graded(_Oracle):
    """The oracle with a classifier of its own whose confidence in each test image's label
    is set by the image's index i: i % 4 == 0: 0.95, 1: 0.6, 2: 0.3 (still the argmax of
    10 classes), 3: the argmax is the next class."""
    CONF = (0.95, 0.6, 0.3, 0.3)

    def activations(self, x):
        assert torch.equal(x, self.test.images)          # the FID set, in test order
        y, C = self.test.targets, self.num_classes
        i = torch.arange(len(y))
        p = torch.tensor(self.CONF)[i % 4]
        top = torch.where(i % 4 == 3, (y + 1) % C, y)
        probs = ((1 - p) / (C - 1))[:, None].repeat(1, C)
        probs[i, top] = p
        return probs.log()


def test_the_gate_table_counts_what_syntheticmix_would_keep(tmp_path):
    from ganaug.evaluation import gate_lines, quality_lines
    from ganaug.features import domain_extractor, outputs_of
    train, test = load_dataset("digits")
    q = evaluate_quality(_Graded(train, test), train, test, extractor_steps=60,
                         tstr_per_class=2, cache_dir=tmp_path, device="cpu")
    ruler, _ = domain_extractor(train, steps=60, cache_dir=tmp_path, device="cpu")
    right = outputs_of(ruler, test.images)[0].argmax(1) == test.targets
    y, k = test.targets, torch.arange(len(test)) % 4
    rows = {r["gate"]: r for r in q["gate"]["rows"]}
    assert q["gate"]["error"] is None and list(rows) == [0.0, 0.5, 0.7, 0.9]
    for g, keep in ((0.0, k < 3), (0.5, k < 2), (0.7, k == 0), (0.9, k == 0)):
        r = rows[g]
        assert r["pass"] == pytest.approx(keep.float().mean().item())
        share = [keep[y == c].float().mean().item() for c in range(10)]
        assert r["min_class_pass"] == pytest.approx(min(share))
        assert r["min_class"] == min(range(10), key=share.__getitem__)
        assert r["passing_label_accuracy"] == pytest.approx(right[keep].float().mean().item())
    lines = gate_lines(q["gate"], [f"c{c}" for c in range(10)])
    assert lines[0].startswith("  gate pass rates -- the run's own classifier")
    assert lines[2].startswith(f"    gate 0.5:  {100 * rows[0.5]['pass']:.1f}% pass (fewest: "
                               f"class c{rows[0.5]['min_class']}")
    assert "cannot fill" not in "".join(lines)           # every class passes > 1 in 50
    # a class that passes under 1 in 50 draws is named as one SyntheticMix cannot fill
    starved = {**q["gate"], "rows": [{**rows[0.9], "min_class_pass": 0.01}]}
    assert "under 1 in 50: SyntheticMix cannot fill that class" in gate_lines(starved)[1]
    # an eval.json written before label accuracy and the gate table still prints
    old = {k: v for k, v in q.items() if k not in ("label_accuracy", "gate")}
    assert len(quality_lines(old)) == len(quality_lines(q)) - 1 - len(lines)


def test_precision_and_recall_of_a_collapsed_generator(oracle, tmp_path):
    """Every sample the same real test image: all inside the real manifold (precision 1),
    covering none of it (recall about 0)."""
    _, _, _, train, test = oracle

    class Collapsed(_Replay):
        def sample(self, labels, generator=None):
            return test.images[:1].repeat(len(labels), 1, 1, 1)
    q = evaluate_quality(Collapsed(train), train, test, extractor_steps=60, max_samples=200,
                         tstr_per_class=2, cache_dir=tmp_path, device="cpu")
    assert q["precision"]["value"] == 1.0 and q["recall"]["value"] < 0.01
    assert q["diversity"]["value"] == 0.0 and 0.5 < q["diversity"]["real_reference"] < 2


def test_the_ruler_is_an_mlp_up_to_28x28x1_and_its_layers_are_the_documented_ones():
    from ganaug.features import DomainNet, domain_kind
    assert domain_kind((1, 28, 28)) == domain_kind((1, 8, 8)) == "mlp"
    assert domain_kind((1, 28, 29)) == domain_kind((3, 32, 32)) == "cnn"
    mlp = DomainNet("mlp", (1, 8, 8), 10)
    assert [(m.in_features, m.out_features) for m in mlp.modules()
            if isinstance(m, torch.nn.Linear)] == [(64, 256), (256, 64), (64, 10)]
    cnn = DomainNet("cnn", (3, 32, 32), 10)
    assert [(m.in_channels, m.out_channels, m.kernel_size) for m in cnn.modules()
            if isinstance(m, torch.nn.Conv2d)] == [(3, 32, (3, 3)), (32, 64, (3, 3)),
                                                   (64, 128, (3, 3))]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in cnn.modules()) == 3
    assert cnn(torch.rand(2, 3, 32, 32), features=True)[1].shape == (2, 128)


def test_a_cnn_ruler_measures_in_eval_mode_trained_or_loaded(tmp_path):
    """Its BatchNorm must use running statistics: a feature must not depend on the batch."""
    from ganaug.data import ImageSet
    g = torch.Generator().manual_seed(0)
    data = ImageSet(torch.rand(16, 1, 32, 32, generator=g) * 2 - 1, torch.arange(16) % 2, ["a", "b"])
    for _ in range(2):                                       # trained, then from the cache
        net, info = domain_extractor(data, steps=3, cache_dir=tmp_path, device="cpu")
        assert info["kind"] == "cnn" and not net.training
        torch.testing.assert_close(features_of(net, data.images)[:1],
                                   features_of(net, data.images[:1]))


def test_the_rulers_cache_key_covers_the_labels(tmp_path):
    from ganaug.data import ImageSet
    g = torch.Generator().manual_seed(0)
    x = torch.rand(20, 1, 8, 8, generator=g) * 2 - 1
    _, a = domain_extractor(ImageSet(x, torch.arange(20) % 2, ["a", "b"]), steps=2,
                            cache_dir=tmp_path, device="cpu")
    _, b = domain_extractor(ImageSet(x, torch.arange(20) // 10, ["a", "b"]), steps=2,
                            cache_dir=tmp_path, device="cpu")
    assert a["key"] != b["key"] and a["path"] != b["path"]


def test_eval_prints_each_class_beside_its_own_accuracy(run, capsys):
    assert main(["eval", "--run", str(run), "--quick", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert main(["eval", "--run", str(run), "--quick"]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = lines.index("per-class accuracy")
    assert lines[at + 1:at + 11] == [f"  {name:>12}  {acc:.4f}  ({n} images)" for name, acc, n
                                     in zip(m["classes"], m["per_class_accuracy"],
                                            m["per_class_support"])]
    assert sum(m["per_class_support"]) == m["num_test"]
    assert len(set(m["per_class_accuracy"])) > 1          # a mislabelling would show


def test_real_references_compare_training_images_with_the_same_test_images(tmp_path):
    """A training split with exactly the test split's class counts: every training image is
    the reference, so each real reference can be recomputed by hand on the ruler's features."""
    from ganaug import quality as Q
    from ganaug.data import ImageSet
    train, test = load_dataset("digits")
    idx = torch.cat([torch.nonzero(train.targets == c).squeeze(1)[:int((test.targets == c).sum())]
                     for c in range(10)]).sort().values
    sub = ImageSet(train.images[idx], train.targets[idx], train.classes)
    q = evaluate_quality(_Replay(sub), sub, test, extractor_steps=60, tstr_per_class=2,
                         cache_dir=tmp_path, device="cpu")
    net, _ = domain_extractor(sub, steps=60, cache_dir=tmp_path, device="cpu")
    f_test, f_train = features_of(net, test.images), features_of(net, sub.images)
    assert q["protocol"]["num_train_reference"] == len(sub) == len(test)
    assert q["domain_fid"]["real_reference"] == pytest.approx(Q.fid(f_test, f_train), rel=1e-6)
    intra, per_class = Q.intra_class_fid(f_test, test.targets, f_train, sub.targets)
    assert q["intra_class_fid"]["real_reference"] == pytest.approx(intra, rel=1e-6)
    p, r = Q.precision_recall(f_test, f_train, k=3)
    assert (q["precision"]["real_reference"], q["recall"]["real_reference"]) == \
        pytest.approx((p, r))


def test_intra_class_fid_and_its_reference_average_the_same_classes(tmp_path):
    """A class with one training image has no reference FID: it leaves the generated
    images' mean too (both numbers over the same 9 classes), and the protocol says how many
    images of a class each FID reads."""
    from ganaug.data import ImageSet
    train, test = load_dataset("digits")
    keep = (train.targets != 3) | (torch.cumsum(train.targets == 3, 0) == 1)
    sub = ImageSet(train.images[keep], train.targets[keep], train.classes)
    q = evaluate_quality(_Replay(sub, noise=True), sub, test, extractor_steps=20,
                         tstr_per_class=2, cache_dir=tmp_path, device="cpu")
    intra = q["intra_class_fid"]
    assert sorted(intra["per_class"]) == [str(c) for c in range(10) if c != 3]
    counts = torch.bincount(test.targets)[[c for c in range(10) if c != 3]]
    assert f"mean over 9 classes of the per-class FID ({counts.min()} to {counts.max()} " \
        "generated and real images a class)" in intra["protocol"]
    assert intra["value"] == pytest.approx(sum(intra["per_class"].values()) / 9)


def test_inception_fid_has_a_real_reference_too(tmp_path, monkeypatch):
    """From local weights, the Inception FID comes with the same real reference as the
    domain metrics: the matched training images against the same test images (a stand-in
    for inception_v3 here: mean-pooled pixels, so the reference can be checked by hand)."""
    from ganaug import evaluation as E
    from ganaug import features as FT
    from ganaug import quality as Q
    pooled = lambda x, net, **kw: torch.nn.functional.avg_pool2d(x, 2).flatten(1)  # noqa: E731
    monkeypatch.setattr(FT, "load_inception", lambda weights, device: "stand-in")
    monkeypatch.setattr(FT, "inception_features", pooled)
    train, test = load_dataset("digits")
    q = evaluate_quality(_Replay(train), train, test, extractor_steps=20, tstr_per_class=2,
                         cache_dir=tmp_path, device="cpu", inception_weights="w.pth",
                         max_samples=200)
    e = q["inception_fid"]
    ref = E._reference_indices(test, 200, 0)
    tr = E._matching_train(train, test.targets[ref], 0)
    assert e["real_reference"] == pytest.approx(
        Q.fid(pooled(test.images[ref], None), pooled(train.images[tr], None)), rel=1e-6)
    assert math.isfinite(e["value"]) and "real reference: 200 real training images" in \
        e["protocol"]
    line = next(x for x in E.quality_lines(q) if "Inception FID" in x)
    assert f"[real reference {e['real_reference']:.3f}]" in line


def test_the_classifiers_training_reports_progress_and_stays_the_same(monkeypatch):
    """A progress line every PROGRESS_EVERY_S seconds (here 0: every step), the same net."""
    from ganaug import features as FT
    x, y = torch.rand(20, 1, 8, 8) * 2 - 1, torch.arange(20) % 2
    quiet = FT.train_domain_classifier(x, y, 2, steps=3)
    monkeypatch.setattr(FT, "PROGRESS_EVERY_S", 0.0)
    lines: list[str] = []
    told = FT.train_domain_classifier(x, y, 2, steps=3, log=lines.append, name="TSTR classifier")
    assert [s.split(" (")[0] for s in lines] == [f"eval: TSTR classifier step {i}/3"
                                                 for i in range(3)]
    assert "left" not in lines[0] and all(", about " in s and " left for it)" in s
                                          for s in lines[1:])
    assert (FT._duration(42.4), FT._duration(89), FT._duration(600)) == ("42 s", "89 s", "10 min")
    assert all(torch.equal(a, b) for a, b in zip(quiet.state_dict().values(),
                                                  told.state_dict().values()))


# ------------------------------------------------ audit fixes

@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")  # balanced acc.
def test_macro_f1_leaves_out_classes_absent_from_both_sides():
    from sklearn.metrics import f1_score
    from ganaug.metrics import classification_metrics

    # a perfect classifier on a test split that lacks class 2 (never predicted either)
    assert classification_metrics([0, 0, 1, 1], [0, 0, 1, 1], num_classes=3)["macro_f1"] == 1.0
    # a class predicted but absent from y_true is a mistake: F1 = 0 for it
    m = classification_metrics([0, 0, 1, 1], [0, 2, 1, 1], num_classes=3)
    assert m["macro_f1"] == pytest.approx((2 * 1 * 0.5 / 1.5 + 1.0 + 0.0) / 3)
    # every class present: as before, sklearn's mean over all classes
    y_true, y_pred = [0, 1, 2, 2, 1, 0], [0, 2, 2, 1, 1, 1]
    assert classification_metrics(y_true, y_pred, num_classes=3)["macro_f1"] == f1_score(
        y_true, y_pred, labels=[0, 1, 2], average="macro", zero_division=0)


class _Diverged(_Replay):
    """Replayed training images, one pixel of each batch set to ``value`` (NaN or inf)."""

    def __init__(self, data, value):
        super().__init__(data)
        self.value = value

    def sample(self, labels, generator=None):
        out = super().sample(labels, generator)
        out.view(-1)[7] = self.value
        return out


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_diverged_generator_gets_every_quality_metric_as_na(value, tmp_path, monkeypatch):
    import ganaug.features as FT
    train, test = load_dataset("digits")
    domain_extractor(train, steps=30, cache_dir=tmp_path, device="cpu")       # cached now
    fits = []
    monkeypatch.setattr(FT, "train_domain_classifier", lambda *a, **k: fits.append(a))
    q = evaluate_quality(_Diverged(train, value), train, test, extractor_steps=30,
                         max_samples=60, tstr_per_class=3, cache_dir=tmp_path, device="cpu")
    why = "generated images contain NaN or inf values (the generator diverged)"
    for key in METRICS:
        assert q[key]["value"] is None and q[key]["error"] == why, key
    assert math.isfinite(q["domain_fid"]["real_reference"])            # the real side stands
    assert math.isfinite(q["tstr_accuracy"]["real_reference"])
    assert fits == []                              # no TSTR classifier trained on NaN images
    from ganaug.evaluation import quality_lines
    line = next(l for l in quality_lines(q) if l.startswith("  TSTR accuracy "))
    assert "n/a [real reference" in line and why in line


def test_a_negative_sampling_seed_measures_kid(tmp_path):
    train, test = load_dataset("digits")
    q = evaluate_quality(_Replay(train), train, test, extractor_steps=30, max_samples=60,
                         tstr_per_class=2, seed=-1, cache_dir=tmp_path, device="cpu")
    for key in METRICS:
        assert math.isfinite(q[key]["value"]) and q[key]["error"] is None, key
    assert q["protocol"]["sample_seed"] == -1


def test_too_few_samples_name_the_flag_to_change(tmp_path):
    from ganaug.data import ImageSet
    train, test = load_dataset("digits")
    opts = dict(extractor_steps=30, tstr_per_class=1, cache_dir=tmp_path, device="cpu")
    q = evaluate_quality(_Replay(train), train, test, max_samples=3, **opts)
    assert q["precision"]["error"] == ("features_real needs at least 4 samples, got 3; pass a "
                                       "--samples larger than 3")
    assert q["intra_class_fid"]["error"].endswith("pass a --samples larger than 3")
    assert q["domain_fid"]["error"] is None
    # the whole test split is used already: --samples cannot help
    small = ImageSet(test.images[:3], test.targets[:3], test.classes)
    q = evaluate_quality(_Replay(train), train, small, **opts)
    assert q["precision"]["error"].endswith("; the test split has only 3 images")
    with pytest.raises(ValueError, match=r"\(--classifier-steps\) must be positive, got 0"):
        evaluate_quality(_Replay(train), train, test, extractor_steps=0, cache_dir=tmp_path)


@pytest.mark.parametrize("flags, named", [
    (["--samples", "100"], "--samples would be ignored: drop it,"),
    (["--seed", "-1"], "--seed would be ignored"),
    (["--seed", "0"], "--seed would be ignored"),
    (["--tstr-per-class", "3", "--inception-weights", "w.pth"],
     "--tstr-per-class, --inception-weights would be ignored: drop them,"),
    (["--classifier-steps", "9", "--cache-dir", "c"], "--classifier-steps, --cache-dir"),
])
def test_eval_quick_refuses_the_sample_quality_flags(flags, named, tmp_path, capsys):
    # refused before the run is even read: the run folder need not exist
    assert main(["eval", "--run", str(tmp_path / "none"), "--quick", *flags]) == 2
    err = capsys.readouterr().err
    assert named in err and "--quick measures no sample quality" in err
    assert err.count("\n") == 1


def test_every_seed_eval_accepts_gives_seeds_for_its_other_streams(tiny):
    """The ruler's batches (seed + 1), the matching training images (seed + 17) and TSTR's
    samples (seed + 1) wrap past the largest seed torch takes; below it they are unchanged."""
    from ganaug.evaluation import _matching_train
    from ganaug.features import offset_seed
    top = 2 ** 64 - 1
    assert offset_seed(5, 17) == 22 and offset_seed(top - 17, 17) == top
    assert offset_seed(top, 1) == 0 and offset_seed(top, 17) == 16
    assert offset_seed(-2 ** 63, 1) == -2 ** 63 + 1
    labels = torch.tensor([0, 1, 1, 3])
    for seed in (top, top - 16):
        picks = _matching_train(tiny, labels, seed)
        assert sorted(tiny.targets[picks].tolist()) == [0, 1, 1, 3]
    assert torch.equal(_matching_train(tiny, labels, top), _matching_train(tiny, labels, -1))
