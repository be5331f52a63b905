"""Validation images: held out of training, scored every epoch, the best epoch kept."""
import importlib
import json

import pytest
import torch

from ganaug import CLSGAN, TrainConfig, build_model, train
from ganaug.cli import main
from ganaug.data import ImageSet, split_labeled, split_with_validation

from _tiny import FAST

T = importlib.import_module("ganaug.train")     # the module, not ganaug.train()


def _indices(part: ImageSet, data: ImageSet) -> set[int]:
    """Where ``part``'s images sit in ``data`` (every tiny image is distinct)."""
    flat = data.images.flatten(1)
    return {int((flat == x.flatten()).all(1).nonzero()) for x in part.images}


def test_validation_images_come_after_the_labeled_ones_and_leave_them_unchanged(tiny):
    lab0, unl0 = split_labeled(tiny, 3, seed=5)
    lab, unl, val = split_with_validation(tiny, 3, 2, seed=5)
    assert torch.equal(lab.images, lab0.images) and torch.equal(lab.targets, lab0.targets)
    assert val.class_counts() == [2, 2, 2, 2] and len(unl) == len(unl0) - 8
    assert (unl.targets == -1).all()
    parts = [_indices(p, tiny) for p in (lab, unl, val)]
    assert sum(map(len, parts)) == len(tiny) == len(set().union(*parts))   # disjoint, all
    assert torch.equal(val.targets, tiny.targets[sorted(parts[2])])        # labels kept
    _, _, other = split_with_validation(tiny, 3, 2, seed=6)
    assert not torch.equal(other.images, val.images)
    same = split_with_validation(tiny, 3, 0, seed=5)
    assert same[2] is None and torch.equal(same[1].images, unl0.images)


def test_with_every_label_the_validation_images_come_out_of_the_labeled_ones(tiny):
    lab, unl, val = split_with_validation(tiny, None, 5, seed=0)
    assert unl is None and val.class_counts() == [5] * 4 and lab.class_counts() == [7] * 4
    assert not _indices(lab, tiny) & _indices(val, tiny)
    full, none, no_val = split_with_validation(tiny, None, 0)
    assert full is tiny and none is None and no_val is None


def test_too_many_validation_images_is_an_error_that_says_how_many_fit(tiny):
    with pytest.raises(ValueError, match=r"val_per_class=3 and labels_per_class=10 need 13 "
                                         r"images of every class, but class 'a' has 12; use a "
                                         r"val_per_class \(--val-per-class\) of at most 2"):
        split_with_validation(tiny, 10, 3)
    with pytest.raises(ValueError, match=r"at least one labeled image need 13 .* at most 11"):
        split_with_validation(tiny, None, 12)
    with pytest.raises(ValueError, match=r"labels_per_class=13 \(--labels-per-class\) is "
                                         r"more than class 'a' has \(12 images\)"):
        split_with_validation(tiny, 13, 2)                 # the labels' own limit first
    three = ImageSet(tiny.images[:20], tiny.targets[:20] % 2, ["a", "b", "c"])  # 'c': none
    with pytest.raises(ValueError, match=r"class 'c' has 0; it has none to spare for "
                                         r"validation: use val_per_class 0 \(--val-per-class\)$"):
        split_with_validation(three, None, 1)
    with pytest.raises(ValueError, match=r"class 'a' has 12; it has none to spare for "
                                         r"validation: use val_per_class 0 \(--val-per-class\) or "
                                         r"fewer labels"):
        split_with_validation(tiny, 12, 1)
    for bad in (-1, True, 1.5):
        with pytest.raises(ValueError, match="val_per_class must be a whole number"):
            split_with_validation(tiny, 3, bad)
        with pytest.raises(ValueError, match="val_per_class must be a whole number"):
            TrainConfig(val_per_class=bad).resolved()


def _train(tiny, out, epochs, resume=False, scores=None, monkeypatch=None, snapshots=None,
           patience=0, log=None):
    """Train on tiny with 2 validation images per class; ``scores``: the validation
    accuracy each epoch reports instead of the measured one (the test's own script)."""
    cfg = TrainConfig(**{**FAST, "epochs": epochs, "val_per_class": 2, "patience": patience})
    lab, unl, val = split_with_validation(tiny, cfg.labels_per_class, 2, cfg.data_seed)
    if scores is not None:
        real = T.evaluate_accuracy
        feed = iter(scores)
        monkeypatch.setattr(T, "evaluate_accuracy",
                            lambda m, d: next(feed) if d is val else real(m, d))
    model = build_model(cfg.resolved(), tiny)
    on_epoch = None if snapshots is None else (
        lambda rec, m: snapshots.append({k: v.clone() for k, v in m.state_dict().items()}))
    return train(model, lab, unl, cfg, test=tiny, out=out, resume=resume, progress=False,
                 log=log or (lambda s: None), val=val, on_epoch=on_epoch)


def test_best_pt_holds_the_first_epoch_of_highest_validation_accuracy(tiny, tmp_path,
                                                                      monkeypatch):
    snaps: list[dict] = []
    state = _train(tiny, tmp_path, 4, scores=[0.5, 0.75, 0.75, 0.625], monkeypatch=monkeypatch,
                   snapshots=snaps)
    assert [r["val_accuracy"] for r in state.history] == [0.5, 0.75, 0.75, 0.625]
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["epoch"] == 2 and best["val_accuracy"] == 0.75
    assert all(torch.equal(best["state"][k], snaps[1][k]) for k in snaps[1])   # epoch 2's
    assert not all(torch.equal(best["state"][k], snaps[3][k]) for k in snaps[3])
    loaded = CLSGAN.load(tmp_path / "best.pt").state_dict()          # a model file
    assert all(torch.equal(loaded[k], snaps[1][k]) for k in snaps[1])
    assert not list(tmp_path.glob("*.tmp"))


def test_resuming_keeps_the_best_epoch_as_never_stopping_does(tiny, tmp_path):
    full = _train(tiny, tmp_path / "a", 4)
    _train(tiny, tmp_path / "b", 2)
    resumed = _train(tiny, tmp_path / "b", 4, resume=True)
    assert [r["val_accuracy"] for r in full.history] == \
        [r["val_accuracy"] for r in resumed.history]
    a = torch.load(tmp_path / "a" / "best.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "best.pt", weights_only=True)
    assert a["epoch"] == b["epoch"]
    assert all(torch.equal(a["state"][k], b["state"][k]) for k in a["state"])


def test_files_of_an_epoch_stopped_mid_write_agree_with_the_checkpoint_on_resuming(
        tiny, tmp_path, monkeypatch):
    """A run stopped between writing an epoch's files (here: Ctrl-C in best.pt's write, after
    the checkpoint; and in the checkpoint's write, after metrics.jsonl) resumes with
    metrics.jsonl and best.pt as its checkpoint says, even when it trains nothing more; the
    best epoch's best.pt is the one never stopping writes."""
    full = _train(tiny, tmp_path / "full", 2, scores=[0.5, 0.75], monkeypatch=monkeypatch)
    real = T.CLSGAN.save

    def interrupted(self, path, extra=None):
        if extra and extra.get("epoch") == 2:
            raise KeyboardInterrupt
        return real(self, path, extra)

    monkeypatch.setattr(T.CLSGAN, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _train(tiny, tmp_path / "b", 2, scores=[0.5, 0.75], monkeypatch=monkeypatch)
    monkeypatch.setattr(T.CLSGAN, "save", real)
    assert torch.load(tmp_path / "b" / "best.pt", weights_only=True)["epoch"] == 1
    _train(tiny, tmp_path / "b", 2, resume=True)                  # trains nothing more
    got = torch.load(tmp_path / "b" / "best.pt", weights_only=True)
    want = torch.load(tmp_path / "full" / "best.pt", weights_only=True)
    assert got["epoch"] == want["epoch"] == 2
    assert all(torch.equal(got["state"][k], want["state"][k]) for k in want["state"])

    real_save = T.atomic_torch_save

    def no_checkpoint(path, obj):
        if path.name == "checkpoint.pt" and obj["epoch"] == 2:
            raise KeyboardInterrupt
        return real_save(path, obj)

    monkeypatch.setattr(T, "atomic_torch_save", no_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        _train(tiny, tmp_path / "c", 2)
    monkeypatch.setattr(T, "atomic_torch_save", real_save)
    metrics = tmp_path / "c" / "metrics.jsonl"
    assert len(metrics.read_text().splitlines()) == 2            # epoch 2 listed, not saved
    _train(tiny, tmp_path / "c", 1, resume=True)
    assert [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()] == [1]
    assert full.history[0]["val_accuracy"] == 0.5


def test_resuming_with_other_validation_images_is_refused_before_training(tiny, tmp_path):
    """best.pt is chosen by the validation images: a resume must score the same ones."""
    _train(tiny, tmp_path, 1)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    cfg = TrainConfig(**{**FAST, "epochs": 2, "val_per_class": 2})
    lab, unl, val = split_with_validation(tiny, cfg.labels_per_class, 2, cfg.data_seed)
    relabeled = ImageSet(val.images, val.targets.roll(1), val.classes)
    for other, detail in ((None, r"validation images 8 -> 0"),
                          (val.subset(torch.arange(4)), r"validation images 8 -> 4"),
                          (relabeled, r"the validation images or their labels differ")):
        with pytest.raises(ValueError, match=rf"not the data it trained on \({detail}\); pass "
                                             r"the run's own validation images \(val=\)"):
            train(build_model(cfg.resolved(), tiny), lab, unl, cfg, test=tiny, out=tmp_path,
                  resume=True, progress=False, log=lambda s: None, val=other)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before       # nothing trained
    state = train(build_model(cfg.resolved(), tiny), lab, unl, cfg, test=tiny, out=tmp_path,
                  resume=True, progress=False, log=lambda s: None, val=val)
    assert len(state.history) == 2


def test_validation_images_of_another_shape_are_refused_before_training(tiny):
    cfg = TrainConfig(**FAST)
    lab, unl = split_labeled(tiny, 4)
    wrong = ImageSet(torch.zeros(4, 1, 6, 6), torch.arange(4), tiny.classes)
    with pytest.raises(ValueError, match=r"validation images \(1, 6, 6\) do not match"):
        train(build_model(cfg.resolved(), tiny), lab, unl, cfg, val=wrong, progress=False)
    with pytest.raises(ValueError, match="validation set must be non-empty and every target"):
        train(build_model(cfg.resolved(), tiny), lab, unl, cfg, val=unl, progress=False)


def test_train_and_eval_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--epochs", "3", "--val-per-class", "5", "--out", str(out),
                 "--quiet", "--no-tensorboard"]) == 0
    printed = capsys.readouterr().out
    s = json.loads((out / "summary.json").read_text())
    hist = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    chosen = max(hist, key=lambda r: r["val_accuracy"])
    assert (s["num_val"], s["num_labeled"], s["num_unlabeled"]) == (50, 100, 1197)
    assert s["best_epoch"] == chosen["epoch"] and s["best_val_accuracy"] == chosen["val_accuracy"]
    assert s["best_test_accuracy"] == chosen["test_accuracy"]
    assert f"best epoch by validation accuracy: {chosen['epoch']}" in printed
    assert main(["eval", "--run", str(out), "--best", "--quick", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert (m["checkpoint"], m["epoch"]) == ("best.pt", chosen["epoch"])
    assert m["test_accuracy"] == pytest.approx(chosen["test_accuracy"], abs=1e-6)
    # a run without validation images has no best.pt: a one-line error that says why
    plain = tmp_path / "p"
    assert main(["train", "--epochs", "1", "--out", str(plain), "--quiet",
                 "--no-tensorboard"]) == 0
    capsys.readouterr()
    assert main(["eval", "--run", str(plain), "--best", "--quick"]) == 2
    err = capsys.readouterr().err
    assert "has no best.pt" in err and "--val-per-class N" in err and err.count("\n") == 1
    assert not (plain / "eval-best.json").exists()


def test_seeds_report_the_best_epochs_test_error_over_seeds(tmp_path, monkeypatch, capsys):
    import statistics

    from ganaug import experiment as E

    def fake_fit(c, folder, **k):
        acc = {0: 0.5, 1: 0.75}[c.seed]
        return {"test_accuracy": acc, "test_error": 1 - acc, "balanced_accuracy": acc,
                "macro_f1": acc, "epochs": 2, "epochs_planned": 2, "stopped": None,
                "seed": c.seed, "train_seconds": 1.0, "dataset": "digits", "num_labeled": 10,
                "num_unlabeled": 20, "num_test": 30, "objective": "sscls", "arch": "mlp",
                "recipe": None, "run": str(folder), "num_val": 5, "best_epoch": 1 + c.seed,
                "best_val_accuracy": 0.8, "best_test_accuracy": acc + 0.125,
                "best_test_error": 0.875 - acc}

    monkeypatch.setattr(E, "fit", fake_fit)
    s = E.fit_seeds(E.TrainConfig(epochs=2, val_per_class=5), (0, 1), tmp_path / "m",
                    progress=False, log=lambda m: None)
    assert s["best_test_error_mean"] == pytest.approx(0.25)
    assert s["best_test_error_std"] == pytest.approx(statistics.stdev([0.375, 0.125]))
    assert (s["num_val"], s["best_epoch_per_seed"]) == (5, [1, 2])
    plain = E.aggregate_seeds([{k: v for k, v in fake_fit(E.TrainConfig(seed=0), "x").items()
                                if not k.startswith("best")}])
    assert "best_test_error_mean" not in plain


# ----------------------------------------------------------------------------- patience

def test_patience_stops_once_the_validation_accuracy_stops_rising(tiny, tmp_path, monkeypatch):
    # best at epoch 2; epoch 4 only equals it, which is no rise: 3 epochs without one by 5
    scores = [0.5, 0.75, 0.7, 0.75, 0.6, 0.9]
    st = _train(tiny, tmp_path / "a", 6, scores=scores, monkeypatch=monkeypatch, patience=3)
    assert [r["epoch"] for r in st.history] == [1, 2, 3, 4, 5]
    assert st.stopped_by == "patience" and st.stopped.startswith(
        "patience: stopped after epoch 5 of 6: no higher validation accuracy in the 3 epochs "
        "since epoch 2 (0.7500), whose model best.pt holds")
    assert torch.load(tmp_path / "a" / "best.pt", weights_only=True)["epoch"] == 2
    assert torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["epoch"] == 5
    roomy = _train(tiny, tmp_path / "b", 6, scores=scores, monkeypatch=monkeypatch, patience=4)
    assert roomy.stopped is None and len(roomy.history) == 6      # epoch 6 rose again
    last = _train(tiny, tmp_path / "c", 5, scores=scores, monkeypatch=monkeypatch, patience=3)
    assert last.stopped is None and len(last.history) == 5        # no epoch left to save


def test_a_run_patience_stopped_resumes_to_nothing_unless_patience_is_raised(tiny, tmp_path,
                                                                            monkeypatch):
    out = tmp_path / "r"
    _train(tiny, out, 6, scores=[0.5, 0.75, 0.7, 0.6], monkeypatch=monkeypatch, patience=2)
    again = _train(tiny, out, 6, resume=True, scores=[], monkeypatch=monkeypatch, patience=2)
    assert again.stopped_by == "patience" and len(again.history) == 4    # nothing evaluated
    more = _train(tiny, out, 6, resume=True, scores=[0.8, 0.7], monkeypatch=monkeypatch,
                  patience=0)
    assert more.stopped is None and [r["val_accuracy"] for r in more.history][4:] == [0.8, 0.7]
    assert torch.load(out / "best.pt", weights_only=True)["epoch"] == 5
    # stopped by its epochs first, then resumed with patience: as if it had never stopped
    part = tmp_path / "p"
    _train(tiny, part, 3, scores=[0.5, 0.75, 0.7], monkeypatch=monkeypatch, patience=2)
    whole = _train(tiny, part, 6, resume=True, scores=[0.6], monkeypatch=monkeypatch, patience=2)
    assert whole.stopped.startswith("patience: stopped after epoch 4 of 6")


def test_patience_needs_validation_images_and_a_whole_number(tiny, tmp_path, capsys):
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="patience is a number of epochs"):
            TrainConfig(patience=bad).resolved()
    cfg = TrainConfig(**FAST, patience=2)
    lab, unl = split_labeled(tiny, 4)
    with pytest.raises(ValueError, match="patience=2 stops on the validation accuracy, and "
                                         "there are no validation images: pass val="):
        train(build_model(cfg.resolved(), tiny), lab, unl, cfg, progress=False)
    out = tmp_path / "r"
    assert main(["train", "--patience", "3", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "add --val-per-class N" in err and err.count("\n") == 1 and not out.exists()
    assert main(["train", "--patience", "3", "--seeds", "0,1", "--out", str(out),
                 "--quiet"]) == 2
    err = capsys.readouterr().err                     # before the first seed starts
    assert "add --val-per-class N" in err and err.count("\n") == 1 and not out.exists()


def test_the_command_line_reports_a_run_patience_stopped(tmp_path, capsys, monkeypatch):
    real = T.evaluate_accuracy                        # the 20 validation images score flat
    monkeypatch.setattr(T, "evaluate_accuracy", lambda m, d: 0.5 if len(d) == 20 else real(m, d))
    out = tmp_path / "r"
    assert main(["train", "--epochs", "6", "--val-per-class", "2", "--patience", "2",
                 "--out", str(out), "--quiet", "--no-tensorboard"]) == 0
    printed = capsys.readouterr().out
    s = json.loads((out / "summary.json").read_text())
    assert (s["epochs"], s["epochs_planned"], s["stopped_by"], s["best_epoch"]) == \
        (3, 6, "patience", 1)
    assert "after epoch 3 of 6 (patience)" in printed
    seeds = tmp_path / "s"
    assert main(["train", "--epochs", "6", "--val-per-class", "2", "--patience", "2",
                 "--seeds", "0,1", "--out", str(seeds), "--quiet", "--no-tensorboard"]) == 0
    assert "epochs 3/3 of 6 (patience)" in capsys.readouterr().out
    s = json.loads((seeds / "summary.json").read_text())
    assert (s["stopped_seeds"], s["stopped_by_seed"]) == ([0, 1], ["patience", "patience"])


def test_a_resume_never_writes_best_pt_for_an_epoch_before_the_checkpoints(tiny, tmp_path,
                                                                         monkeypatch):
    """best.pt of an earlier epoch than the checkpoint's cannot be rebuilt from the
    checkpoint's weights: a resume that finds it missing or unreadable must not write the
    last epoch's model under the best epoch's name."""
    snaps: list[dict] = []
    _train(tiny, tmp_path, 3, scores=[0.5, 0.75, 0.625], monkeypatch=monkeypatch,
           snapshots=snaps)
    for broken in (None, b"not a checkpoint"):
        if broken is None:
            (tmp_path / "best.pt").unlink()
        else:
            (tmp_path / "best.pt").write_bytes(broken)
        _train(tiny, tmp_path, 3, resume=True)                   # trains nothing more
        try:
            best = torch.load(tmp_path / "best.pt", weights_only=True)
        except Exception:                                        # left missing or as it was
            continue
        assert best["epoch"] == 2
        assert all(torch.equal(best["state"][k], snaps[1][k]) for k in snaps[1])



def test_an_epoch_scoring_zero_on_validation_is_still_the_best_one(tiny, tmp_path, monkeypatch):
    """A validation accuracy of 0.0 is a score (best_record must not drop it as falsy)."""
    assert T.best_record([{"epoch": 1, "val_accuracy": 0.0}]) == {"epoch": 1, "val_accuracy": 0.0}
    st = _train(tiny, tmp_path, 4, scores=[0.0] * 4, monkeypatch=monkeypatch, patience=2)
    assert torch.load(tmp_path / "best.pt", weights_only=True)["epoch"] == 1
    assert st.stopped_by == "patience" and len(st.history) == 3   # 2 epochs after epoch 1


def test_best_pt_records_the_datas_fingerprint(tiny, tmp_path):
    """best.pt carries the data fingerprint, as checkpoint.pt does (ganaug eval --best checks
    it, check_same_data, before evaluating on the run's test split)."""
    _train(tiny, tmp_path, 1)
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert isinstance(best.get("data"), dict) and best["data"] == ckpt["data"]


def test_an_unreadable_best_pt_of_the_last_epoch_is_rewritten_on_resuming(tiny, tmp_path,
                                                                         monkeypatch):
    """A resume that finds best.pt unreadable (CheckpointError) while the checkpoint's epoch is
    the best one rewrites it from the checkpoint, and does not fail."""
    _train(tiny, tmp_path, 2, scores=[0.5, 0.75], monkeypatch=monkeypatch)   # best: the last
    (tmp_path / "best.pt").write_bytes(b"not a checkpoint")
    lines = []
    _train(tiny, tmp_path, 2, resume=True, scores=[], monkeypatch=monkeypatch,   # trains nothing
           log=lines.append)
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert best["epoch"] == 2
    assert all(torch.equal(best["state"][k], ckpt["state"][k]) for k in ckpt["state"])
    assert any(s.startswith("wrote best.pt for epoch 2") for s in lines)


def test_a_lost_best_pt_of_an_earlier_epoch_is_told_on_resuming_and_not_pointed_at(
        tiny, tmp_path, monkeypatch, capsys):
    """best.pt of an epoch before the checkpoint's, missing or unreadable on a resume: its
    weights are gone, so the resume warns (an unreadable one is removed, so that `ganaug eval
    --best` cannot read it), and `ganaug eval --best` says the run's best.pt is lost, not
    that the run had no validation images."""
    _train(tiny, tmp_path, 3, scores=[0.5, 0.75, 0.625], monkeypatch=monkeypatch)
    for broken, why in ((b"not a checkpoint", "unreadable"), (None, "missing")):
        if broken is not None:
            (tmp_path / "best.pt").write_bytes(broken)
        lines: list[str] = []
        _train(tiny, tmp_path, 3, resume=True, log=lines.append)      # trains nothing more
        warned = [s for s in lines if s.startswith("warning: ")]
        assert len(warned) == 1 and f"best.pt should hold epoch 2, the best by validation " \
            f"accuracy (0.7500), but it is {why}" in warned[0]
        assert ("(removed)" in warned[0]) == (why == "unreadable")
        assert not (tmp_path / "best.pt").exists()
    with pytest.raises(Exception, match=r"was trained with validation images, but its best.pt "
                                        r"is missing .*drop --best"):
        from ganaug.experiment import evaluate_run
        evaluate_run(tmp_path, best=True, device="cpu")
    from ganaug.cli import _best
    line = _best({"best_epoch": 2, "best_val_accuracy": 0.75, "num_val": 6,
                  "best_test_accuracy": 0.5, "run": str(tmp_path)})
    assert line.endswith(f"(its model is lost: no {tmp_path / 'best.pt'})")
    _train(tiny, tmp_path / "ok", 1)
    line = _best({"best_epoch": 1, "best_val_accuracy": 0.75, "num_val": 6,
                  "best_test_accuracy": 0.5, "run": str(tmp_path / "ok")})
    assert line.endswith(f"-> {tmp_path / 'ok' / 'best.pt'}")


def test_a_new_run_in_a_folder_of_an_earlier_runs_files_without_checkpoint_is_refused(
        tiny, tmp_path):
    """An earlier run's checkpoint deleted (as a damaged one's error advises): a new run in
    its folder would leave the old best.pt, summary and epoch grids beside its own, so it is
    refused, naming them. A run stopped in its first epoch (config.json, metrics.jsonl and
    the first grid only) starts again there."""
    _train(tiny, tmp_path / "old", 3)
    (tmp_path / "old" / "checkpoint.pt").unlink()
    (tmp_path / "old" / "summary.json").write_text("{}")
    with pytest.raises(ValueError, match=r"holds files of an earlier run but no checkpoint.pt "
                                         r"\(best.pt, summary.json, samples/epoch_0002.png, "
                                         r"samples/epoch_0003.png\): .*delete them, or the "
                                         r"folder, or choose another --out"):
        _train(tiny, tmp_path / "old", 1)
    first = tmp_path / "first"
    (first / "samples").mkdir(parents=True)
    for name in ("config.json", "metrics.jsonl", "samples/epoch_0001.png"):
        (first / name).write_text("")
    _train(tiny, first, 1)
    assert (first / "checkpoint.pt").is_file()
    from ganaug.runs import earlier_run_files
    many = tmp_path / "many"
    (many / "samples").mkdir(parents=True)
    for e in range(2, 9):
        (many / "samples" / f"epoch_{e:04d}.png").write_text("")
    assert earlier_run_files(many) == [f"samples/epoch_000{e}.png" for e in (2, 3, 4, 5)] + \
        ["3 more"]


@pytest.mark.parametrize("text", ["[2]", "3", "null"])
def test_a_config_json_that_is_no_object_reads_as_without_validation(tmp_path, text):
    """Valid JSON that is not an object is an unreadable config.json: no validation images."""
    from ganaug.experiment import _trained_with_validation
    (tmp_path / "config.json").write_text(text)
    assert _trained_with_validation(tmp_path) is False
    (tmp_path / "config.json").write_text('{"val_per_class": 2}')
    assert _trained_with_validation(tmp_path) is True


@pytest.mark.parametrize("name", ["eval.json", "eval-best.json"])
def test_an_earlier_runs_evaluation_alone_refuses_a_new_run_and_is_named(tiny, tmp_path, name):
    from ganaug.runs import earlier_run_files
    old = tmp_path / "old"
    old.mkdir()
    (old / name).write_text("{}")
    assert earlier_run_files(old) == [name]
    with pytest.raises(ValueError, match=rf"holds files of an earlier run but no checkpoint.pt "
                                         rf"\({name}\)"):
        _train(tiny, old, 1)
    assert not (old / "checkpoint.pt").exists()
